/**
 * One flat JSON object per line: `{"timestamp","level","message",...fields,...annotations}`. Log calls pass a
 * message and an optional object of fields (`Effect.logInfo("order filled", { symbol, qty })`); the fields are
 * merged at the top level so log tools can filter on them. Secrets never reach here: they are Redacted values.
 */
import { writeSync } from "node:fs"
import { Logger, References } from "effect"

const flatten = (parts: ReadonlyArray<unknown>): { message: string; fields: Record<string, unknown> } => {
  const words: Array<string> = []
  const fields: Record<string, unknown> = {}
  for (const part of parts) {
    if (part !== null && typeof part === "object" && !Array.isArray(part) && !(part instanceof Error)) Object.assign(fields, part)
    else words.push(part instanceof Error ? part.message : String(part))
  }
  return { message: words.join(" "), fields }
}

const bigintAsText = (_key: string, v: unknown) => (typeof v === "bigint" ? v.toString() : v)

/** JSON.stringify without a replacer (a replacer is called per key: several times slower on every line); the
 * replacer only for a line that holds a bigint (plain stringify throws on it). */
const safeJson = (value: unknown): string => {
  try {
    return JSON.stringify(value)
  } catch {
    return JSON.stringify(value, bigintAsText)
  }
}

export const flatJson = Logger.map(Logger.formatStructured, (entry) => {
  const { message, fields } = flatten(Array.isArray(entry.message) ? entry.message : [entry.message])
  const cause = entry.cause === undefined ? {} : { cause: entry.cause }
  return safeJson({ timestamp: entry.timestamp, level: entry.level, message, ...fields, ...entry.annotations, ...cause })
})

/**
 * Formatted lines wait for the event loop's next turn and leave in one write to stdout: the write of each line (a
 * syscall through console.log) was on the tick → order path, between a stage's publish and the next stage's turn.
 * Lines still written in order; what is pending when the process exits is written synchronously on the way out.
 */
type LogOptions = Parameters<typeof flatJson.log>[0]
/**
 * Lines are also formatted on that turn, not where they are logged: a stage's per-candidate Info line (annotations
 * walked, ISO date, JSON) sat on the tick → order path. What the line needs from its fiber (annotations, log spans,
 * id) is taken when it is logged: the fiber moves on and its annotations with it. Messages and fields are the values
 * passed to the log call, formatted as they are at the flush (callers pass fresh objects).
 */
const pending: Array<LogOptions> = []
let flushScheduled = false
const format = (options: LogOptions): string => flatJson.log(options)
const formatAll = (entries: ReadonlyArray<LogOptions>): string => `${entries.map(format).join("\n")}\n`
const flush = (): void => {
  flushScheduled = false
  if (pending.length === 0) return
  const text = formatAll(pending)
  pending.length = 0
  process.stdout.write(text)
}
let exitHooked = false

/** The parts of the logging fiber a line reads (Logger.formatStructured: its id, annotations and log spans), as they are now. */
const snapshotFiber = (fiber: LogOptions["fiber"]): LogOptions["fiber"] => {
  const annotations = fiber.getRef(References.CurrentLogAnnotations)
  const spans = fiber.getRef(References.CurrentLogSpans)
  const getRef = (ref: unknown) =>
    ref === References.CurrentLogAnnotations ? annotations : ref === References.CurrentLogSpans ? spans : fiber.getRef(ref as never)
  return { id: fiber.id, getRef } as unknown as LogOptions["fiber"]
}

export const consoleFlatJson = Logger.make<unknown, void>((options) => {
  pending.push({ ...options, fiber: snapshotFiber(options.fiber) })
  if (!exitHooked) {
    exitHooked = true
    process.once("exit", () => {
      if (pending.length > 0) writeSync(1, formatAll(pending.splice(0)))
    })
  }
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flush)
  }
})
