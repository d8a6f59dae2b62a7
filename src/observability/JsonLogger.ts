/**
 * One flat JSON object per line: `{"timestamp","level","message",...fields,...annotations}`. Log calls pass a
 * message and an optional object of fields (`Effect.logInfo("order filled", { symbol, qty })`); the fields are
 * merged at the top level so log tools can filter on them. Secrets never reach here: they are Redacted values.
 */
import { writeSync } from "node:fs"
import { Logger } from "effect"

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
const pending: Array<string> = []
let flushScheduled = false
const flush = (): void => {
  flushScheduled = false
  if (pending.length === 0) return
  const text = `${pending.join("\n")}\n`
  pending.length = 0
  process.stdout.write(text)
}
let exitHooked = false

export const consoleFlatJson = Logger.make<unknown, void>((options) => {
  pending.push(flatJson.log(options))
  if (!exitHooked) {
    exitHooked = true
    process.once("exit", () => {
      if (pending.length > 0) writeSync(1, `${pending.splice(0).join("\n")}\n`)
    })
  }
  if (!flushScheduled) {
    flushScheduled = true
    setImmediate(flush)
  }
})
