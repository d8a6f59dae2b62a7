/**
 * One flat JSON object per line: `{"timestamp","level","message",...fields,...annotations}`. Log calls pass a
 * message and an optional object of fields (`Effect.logInfo("order filled", { symbol, qty })`); the fields are
 * merged at the top level so log tools can filter on them. Secrets never reach here: they are Redacted values.
 */
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

const safeJson = (value: unknown): string =>
  JSON.stringify(value, (_key, v) => (typeof v === "bigint" ? v.toString() : v))

export const flatJson = Logger.map(Logger.formatStructured, (entry) => {
  const { message, fields } = flatten(Array.isArray(entry.message) ? entry.message : [entry.message])
  const cause = entry.cause === undefined ? {} : { cause: entry.cause }
  return safeJson({ timestamp: entry.timestamp, level: entry.level, message, ...fields, ...entry.annotations, ...cause })
})

export const consoleFlatJson = Logger.withConsoleLog(flatJson)
