/**
 * The console for humans: one short aligned line per event (`time level stage  what happened`), prices to the
 * symbol's tick size, quantities to its step, amounts with their asset. The same log calls feed the JSON logger
 * (src/observability/JsonLogger.ts); only the rendering differs. Per-candidate lines (`candidate`, `rejected`,
 * `order submitted`) are shown only at Debug: at Info they are aggregated into the periodic status line.
 */
import { Cause, Logger, type LogLevel, References } from "effect"

export interface DisplayRules {
  readonly tickSize: number
  readonly stepSize: number
  readonly baseAsset: string
  readonly quoteAsset: string
}

/**
 * Display precision per symbol, filled from the exchange's exchangeInfo at start. A registry rather than a
 * service because a Logger cannot read services; it only changes how numbers are printed.
 */
export const displayRules = new Map<string, DisplayRules>()

const decimalsOf = (step: number): number => {
  if (!(step > 0)) return 8
  const d = Math.round(-Math.log10(step))
  return Math.max(0, Math.min(12, d))
}

/** `value` to the symbol's tick size (price) or step (quantity); 8 significant digits when the rules are unknown. */
export const formatPrice = (symbol: string | undefined, value: number): string => {
  const rules = symbol === undefined ? undefined : displayRules.get(symbol)
  return rules === undefined ? trim(value.toPrecision(8)) : value.toFixed(decimalsOf(rules.tickSize))
}
export const formatQty = (symbol: string | undefined, value: number): string => {
  const rules = symbol === undefined ? undefined : displayRules.get(symbol)
  return rules === undefined ? trim(value.toPrecision(8)) : value.toFixed(decimalsOf(rules.stepSize))
}
/** A quote-asset amount (PnL, fees): 2 decimals at least, more for tiny amounts, with the asset. */
export const formatAmount = (value: number, asset: string): string => {
  const abs = Math.abs(value)
  const digits = abs === 0 || abs >= 1 ? 2 : Math.min(8, 2 + Math.ceil(-Math.log10(abs)))
  return `${value < 0 ? "-" : value > 0 ? "+" : ""}${abs.toFixed(digits)} ${asset}`
}
export const quoteOf = (symbol: string): string => displayRules.get(symbol)?.quoteAsset ?? guessQuote(symbol)
export const baseOf = (symbol: string): string => displayRules.get(symbol)?.baseAsset ?? symbol.slice(0, symbol.length - guessQuote(symbol).length)

const guessQuote = (symbol: string): string => {
  for (const q of ["FDUSD", "USDT", "USDC", "BUSD", "TUSD", "USD", "EUR", "BTC", "ETH", "BNB"]) if (symbol.endsWith(q) && symbol.length > q.length) return q
  return ""
}

const trim = (s: string): string => (s.includes(".") && !s.includes("e") ? s.replace(/0+$/, "").replace(/\.$/, "") : s)

type Fields = Record<string, unknown>

const num = (v: unknown): number | undefined => (typeof v === "number" ? v : undefined)
const str = (v: unknown): string | undefined => (typeof v === "string" ? v : undefined)

/** The event in words, for the events a trader follows; undefined: the generic `message key=value` form. */
const describe = (message: string, f: Fields): string | undefined => {
  const symbol = str(f.symbol)
  const price = (key: string) => (num(f[key]) === undefined ? "?" : formatPrice(symbol, num(f[key])!))
  const qty = (key: string) => (num(f[key]) === undefined ? "?" : formatQty(symbol, num(f[key])!))
  switch (message) {
    case "candidate":
      return `${symbol} ${f.side} signal at ${price("price")}`
    case "approved":
      return `${symbol} ${f.action === "OPEN" ? "open" : "close"} approved, ${qty("qty")} ${symbol === undefined ? "" : baseOf(symbol)}`
    case "rejected":
      return `${symbol} signal rejected: ${f.reason}${f.detail === undefined ? "" : ` (${f.detail})`}`
    case "order submitted":
      return `${symbol} ${f.side} ${qty("qty")} submitted`
    case "order filled": {
      const fee = num(f.commission)
      const asset = str(f.commissionAsset) ?? ""
      return `${symbol} ${f.side} ${qty("executedQty")} filled at ${price("avgPrice")}${fee === undefined ? "" : `, fee ${trim(fee.toFixed(8))} ${asset}`.trimEnd()}`
    }
    case "order rejected":
      return `${symbol} ${f.side} order rejected: ${f.reason} (${f.code})`
    case "status": {
      if (symbol === undefined) return undefined
      const quote = quoteOf(symbol)
      const position = num(f.position) ?? 0
      const held = position > 0 ? `${formatQty(symbol, position)} ${baseOf(symbol)} @ ${price("entry")}` : "flat"
      return [
        pad(symbol, 9),
        `${pad((num(f.ticksPerSecond) ?? 0).toFixed(1), 5)} ticks/s`,
        `last ${num(f.last) === undefined ? "-" : price("last")}`,
        `pos ${held}`,
        `uPnL ${formatAmount(num(f.unrealizedPnl) ?? 0, quote)}`,
        `rPnL ${formatAmount(num(f.realizedPnl) ?? 0, quote)}`,
        `orders ${f.orders ?? 0}`,
        `rejected ${rejectionsText(f.rejections)}`,
        ...(f.paused === true ? ["PAUSED"] : [])
      ].join("  ")
    }
    case "summary": {
      const open = Array.isArray(f.open) ? (f.open as Array<Fields>) : []
      const quote = open.length > 0 ? quoteOf(String(open[0].symbol)) : summaryQuote
      return [
        `summary: ${formatSeconds(num(f.durationSeconds) ?? 0)}`,
        `ticks ${f.ticks}`,
        `candidates ${f.candidates}`,
        `approved ${f.approvals}`,
        `rejected ${rejectionsText(f.rejections)}`,
        `orders ${f.orders}`,
        `fills ${f.fills}`,
        `realized ${formatAmount(num(f.realizedPnl) ?? 0, quote)}`,
        `fees ${formatAmount(num(f.fees) ?? 0, quote).replace(/^\+/, "")}`,
        open.length === 0
          ? "no open position"
          : `open ${open.map((p) => `${p.symbol} ${formatQty(String(p.symbol), num(p.qty) ?? 0)} @ ${formatPrice(String(p.symbol), num(p.entry) ?? 0)}, last ${num(p.last) === undefined ? "-" : formatPrice(String(p.symbol), num(p.last)!)}, uPnL ${formatAmount(num(p.unrealizedPnl) ?? 0, quoteOf(String(p.symbol)))}`).join("; ")}`
      ].join(", ")
    }
    default:
      return undefined
  }
}

/** The quote asset of the summary when no position is open: the first symbol's (all quote in one asset here). */
let summaryQuote = "USDT"
export const setSummaryQuote = (asset: string) => {
  summaryQuote = asset
}

const rejectionsText = (v: unknown): string => {
  const entries = v !== null && typeof v === "object" ? Object.entries(v as Record<string, number>) : []
  const n = entries.reduce((a, [, k]) => a + k, 0)
  return n === 0 ? "0" : `${n} (${entries.map(([r, k]) => `${r} ${k}`).join(", ")})`
}

const formatSeconds = (s: number): string => {
  const m = Math.floor(s / 60)
  return m > 0 ? `${m}m${String(Math.round(s - m * 60)).padStart(2, "0")}s` : `${s.toFixed(1)}s`
}

const HIDDEN = new Set(["stage", "service", "id", "signalId", "clientOrderId", "ma10", "ma30", "delta", "orderId", "timestamp"])

const renderValue = (v: unknown): string => {
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : trim(v.toPrecision(8))
  if (typeof v === "string") return /\s/.test(v) ? JSON.stringify(v) : v
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x))
}

const LEVEL_WIDTH = 5
const STAGE_WIDTH = 8
/** Messages shown only when the minimum level is Debug or lower (they are aggregated in the status line). */
export const QUIET_AT_INFO = new Set(["candidate", "rejected", "order submitted", "approved"])

const pad = (s: string, n: number) => (s.length >= n ? s : s + " ".repeat(n - s.length))

const time = (d: Date): string => d.toISOString().slice(11, 23)

export interface PrettyOptions {
  readonly minimum: LogLevel.LogLevel
  readonly colors: boolean
}

const COLORS: Record<string, string> = { ERROR: "\x1b[31m", FATAL: "\x1b[31m", WARN: "\x1b[33m", DEBUG: "\x1b[2m", TRACE: "\x1b[2m" }

const splitParts = (parts: ReadonlyArray<unknown>): { message: string; fields: Fields } => {
  const words: Array<string> = []
  const fields: Fields = {}
  for (const part of parts) {
    if (part !== null && typeof part === "object" && !Array.isArray(part) && !(part instanceof Error)) Object.assign(fields, part)
    else words.push(part instanceof Error ? part.message : String(part))
  }
  return { message: words.join(" "), fields }
}

/** Renders one entry, or undefined when it is one of the per-candidate lines hidden at Info. */
export const renderPretty = (
  entry: { readonly date: Date; readonly logLevel: LogLevel.LogLevel; readonly message: unknown; readonly annotations: Fields; readonly cause?: string },
  options: PrettyOptions
): string | undefined => {
  const { message, fields: own } = splitParts(Array.isArray(entry.message) ? entry.message : [entry.message])
  const fields = { ...own, ...entry.annotations }
  const verbose = options.minimum === "Debug" || options.minimum === "Trace" || options.minimum === "All"
  if (!verbose && QUIET_AT_INFO.has(message) && entry.logLevel === "Info") return undefined
  const level = entry.logLevel === "Warn" ? "WARN" : entry.logLevel.toUpperCase()
  const stage = (str(entry.annotations.stage) ?? str(entry.annotations.service) ?? "").slice(0, STAGE_WIDTH)
  const words = describe(message, fields)
  const rest = words !== undefined
    ? ""
    : Object.entries(fields)
      .filter(([k, v]) => !HIDDEN.has(k) && v !== undefined)
      .map(([k, v]) => `${k}=${renderValue(v)}`)
      .join(" ")
  const text = words ?? (rest === "" ? message : `${message}  ${rest}`)
  const line = `${time(entry.date)} ${pad(level, LEVEL_WIDTH)} ${pad(stage, STAGE_WIDTH)} ${text}${entry.cause === undefined ? "" : `\n${entry.cause}`}`
  const color = options.colors ? COLORS[level] : undefined
  return color === undefined ? line : `${color}${line}\x1b[0m`
}

export const prettyLogger = (options: PrettyOptions) =>
  Logger.make((entry) => {
    const cause = entry.cause.reasons.length > 0 ? Cause.pretty(entry.cause) : undefined
    const annotations: Fields = { ...entry.fiber.getRef(References.CurrentLogAnnotations) }
    const line = renderPretty(
      { date: entry.date, logLevel: entry.logLevel, message: entry.message, annotations, ...(cause === undefined ? {} : { cause }) },
      options
    )
    if (line !== undefined) process.stdout.write(`${line}\n`)
  })
