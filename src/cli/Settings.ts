/**
 * Every environment variable autotrader reads, with what it allows, checked once at start before anything runs:
 * one line per problem naming the variable, the value and what is allowed (`validateEnv`). The stages still read
 * their own values through `Config` (with the same defaults); this table is what makes a bad value stop the
 * process before it starts instead of surfacing later as an internal error. `test/cli/settings.test.ts` fails
 * when the code reads a variable this table does not list, or .env.example / the README table drift from it.
 */
import { Duration } from "effect"

export type Rule =
  | { readonly kind: "int"; readonly min: number; readonly max: number }
  | { readonly kind: "number"; readonly min: number; readonly max: number; readonly minExclusive?: boolean }
  | { readonly kind: "enum"; readonly values: ReadonlyArray<string>; readonly anyCase?: boolean }
  | { readonly kind: "url"; readonly schemes: ReadonlyArray<string> }
  | { readonly kind: "symbols" }
  | { readonly kind: "duration" }
  | { readonly kind: "boolean" }
  | { readonly kind: "text"; readonly emptyOk: boolean; readonly pattern?: RegExp; readonly describe?: string }

export interface Setting {
  readonly name: string
  readonly rule: Rule
  /** As shown in help and the README; `undefined`: no default (optional or required where used). */
  readonly default?: string
  readonly meaning: string
  /** Subcommands that read it (for their help). */
  readonly usedBy: ReadonlyArray<"run" | "service" | "sim-exchange" | "replay" | "all">
}

const int = (min: number, max: number): Rule => ({ kind: "int", min, max })
const positive = (max = Number.MAX_SAFE_INTEGER): Rule => ({ kind: "number", min: 0, max, minExclusive: true })
const MAX_PORT = 65535

export const LOG_LEVELS = ["Trace", "Debug", "Info", "Warn", "Error", "Fatal", "None"] as const

export const SETTINGS: ReadonlyArray<Setting> = [
  { name: "SYMBOLS", rule: { kind: "symbols" }, default: "BTCUSDT", meaning: "comma-separated symbols to trade, checked against the exchange's exchangeInfo", usedBy: ["run", "service", "sim-exchange"] },
  { name: "EXCHANGE_WS_URL", rule: { kind: "url", schemes: ["ws", "wss"] }, meaning: "market-data base URL (default for run: the embedded simulator)", usedBy: ["run", "service"] },
  { name: "EXCHANGE_REST_URL", rule: { kind: "url", schemes: ["http", "https"] }, meaning: "REST base URL (default for run: the embedded simulator)", usedBy: ["run", "service"] },
  { name: "EXCHANGE_API_KEY", rule: { kind: "text", emptyOk: false }, default: "the simulator's", meaning: "API key (redacted)", usedBy: ["run", "service"] },
  { name: "EXCHANGE_API_SECRET", rule: { kind: "text", emptyOk: false }, default: "the simulator's", meaning: "API secret (redacted, never logged)", usedBy: ["run", "service"] },
  { name: "EXCHANGE_RECV_WINDOW", rule: int(1, 60_000), default: "5000", meaning: "Binance recvWindow in ms", usedBy: ["run", "service"] },
  { name: "EXCHANGE_HTTP_TIMEOUT", rule: { kind: "duration" }, default: "10 seconds", meaning: "REST timeout (then the outcome is unknown and looked up)", usedBy: ["run", "service"] },
  { name: "EXCHANGE_WS_IDLE_TIMEOUT", rule: { kind: "duration" }, default: "60 seconds", meaning: "no frame and no ping this long: reconnect", usedBy: ["run", "service"] },
  { name: "ORDER_QTY", rule: positive(), default: "0.001", meaning: "base quantity per opening order", usedBy: ["run", "service"] },
  { name: "RISK_MAX_POSITION", rule: positive(), default: "0.01", meaning: "max base quantity held per symbol", usedBy: ["run", "service"] },
  { name: "RISK_MAX_TRADES_PER_MINUTE", rule: int(1, 1_000_000), default: "2", meaning: "opens per rolling minute", usedBy: ["run", "service"] },
  { name: "RISK_MAX_TRADES_PER_HOUR", rule: int(1, 1_000_000), default: "20", meaning: "opens per rolling hour", usedBy: ["run", "service"] },
  { name: "SIGNAL_FAST", rule: int(1, 100_000), default: "10", meaning: "fast moving average window, in trades", usedBy: ["run", "service", "replay"] },
  { name: "SIGNAL_SLOW", rule: int(2, 100_000), default: "30", meaning: "slow moving average window, in trades (> SIGNAL_FAST)", usedBy: ["run", "service", "replay"] },
  { name: "SIGNAL_MODEL", rule: { kind: "text", emptyOk: false }, meaning: "path to a model.onnx gating candidates (unset: plain crossover)", usedBy: ["run", "service"] },
  { name: "SIGNAL_MIN_PROBA", rule: { kind: "number", min: 0, max: 1 }, default: "0.5", meaning: "with SIGNAL_MODEL: the minimum P(up) a candidate needs", usedBy: ["run", "service"] },
  { name: "INGEST_BACKFILL_TIMEOUT", rule: { kind: "duration" }, default: "30 seconds", meaning: "longest a gap backfill over REST may take", usedBy: ["run", "service"] },
  { name: "INGEST_BACKFILL_BUFFER", rule: int(1, 100_000_000), default: "100000", meaning: "live ticks held while a gap is backfilled", usedBy: ["run", "service"] },
  { name: "INGEST_BACKFILL_MAX", rule: { kind: "duration" }, default: "1 hour", meaning: "oldest gap backfilled (older: logged as lost)", usedBy: ["run", "service"] },
  { name: "BUS", rule: { kind: "enum", values: ["memory", "kafka"] }, default: "memory (service: kafka)", meaning: "in-process bus or Kafka", usedBy: ["run", "service"] },
  { name: "BUS_CAPACITY", rule: int(1, 100_000_000), default: "250000", meaning: "in-memory bus: messages kept per topic", usedBy: ["run", "service"] },
  { name: "KAFKA_BROKERS", rule: { kind: "text", emptyOk: false, pattern: /^[^\s,]+:\d{1,5}(,[^\s,]+:\d{1,5})*$/, describe: "a comma-separated list of host:port" }, default: "127.0.0.1:19092", meaning: "Kafka bootstrap brokers", usedBy: ["run", "service"] },
  { name: "KAFKA_CLIENT", rule: { kind: "enum", values: ["kafkajs", "platformatic"] }, default: "platformatic", meaning: "Kafka client behind the bus (see README, Kafka)", usedBy: ["run", "service"] },
  { name: "KAFKA_CLIENT_ID", rule: { kind: "text", emptyOk: false }, default: "autotrader", meaning: "Kafka client id", usedBy: ["run", "service"] },
  { name: "KAFKA_PARTITIONS", rule: int(1, 10_000), default: "3", meaning: "partitions per topic at creation", usedBy: ["run", "service"] },
  { name: "KAFKA_TOPIC_PREFIX", rule: { kind: "text", emptyOk: true, pattern: /^[A-Za-z0-9._-]*$/, describe: "letters, digits, '.', '_' and '-'" }, default: "", meaning: "prefix of every topic and consumer group", usedBy: ["run", "service"] },
  { name: "HTTP_PORT", rule: int(0, MAX_PORT), default: "8080", meaning: "/health, /ready, /status and /metrics (0: the OS picks)", usedBy: ["run", "service"] },
  { name: "LOG_LEVEL", rule: { kind: "enum", values: LOG_LEVELS, anyCase: true }, default: "Info", meaning: "minimum level logged, any case (same setting as --log-level)", usedBy: ["all"] },
  { name: "LOG_FORMAT", rule: { kind: "enum", values: ["pretty", "json"], anyCase: true }, default: "pretty on a terminal, else json (service: json)", meaning: "console for humans or one JSON object per line", usedBy: ["all"] },
  { name: "LATENCY_TRACE", rule: { kind: "text", emptyOk: true }, meaning: "diagnostics: a file to append, per order, the times its tick passed each stage (the tick → order benchmark's per-hop figures); unset: off", usedBy: ["run", "service"] },
  { name: "STATUS_EVERY", rule: { kind: "duration" }, default: "10 seconds", meaning: "how often the console prints a status line per symbol", usedBy: ["run"] },
  { name: "SIM_SEED", rule: int(0, 2 ** 31 - 1), default: "42", meaning: "embedded simulator's random seed", usedBy: ["run"] },
  { name: "SIM_TICKS_PER_SECOND", rule: positive(100_000), default: "20", meaning: "embedded simulator's trades per second per symbol", usedBy: ["run"] },
  { name: "SIM_PORT", rule: int(0, MAX_PORT), default: "0", meaning: "embedded simulator's port (0: the OS picks)", usedBy: ["run"] },
  { name: "STORE_ENABLED", rule: { kind: "boolean" }, default: "true", meaning: "write ticks to Parquet", usedBy: ["run", "service"] },
  { name: "DATA_DIR", rule: { kind: "text", emptyOk: false }, default: "./data", meaning: "where the tick store writes", usedBy: ["run", "service", "replay"] },
  { name: "STORE_FLUSH_ROWS", rule: int(1, 100_000_000), default: "100000", meaning: "rows buffered per partition before a file is written", usedBy: ["run", "service"] },
  { name: "STORE_FLUSH_INTERVAL", rule: { kind: "duration" }, default: "60 seconds", meaning: "longest a buffer waits before it is written", usedBy: ["run", "service"] },
  { name: "STORE_IDLE_FLUSH", rule: { kind: "duration" }, default: "1 second", meaning: "write buffers once input is idle this long", usedBy: ["run", "service"] },
  { name: "STORE_ROW_GROUP_SIZE", rule: int(1, 100_000_000), default: "122880", meaning: "Parquet row group size", usedBy: ["run", "service"] },
  { name: "STORE_COMPRESSION", rule: { kind: "enum", values: ["zstd", "snappy", "uncompressed"] }, default: "zstd", meaning: "Parquet codec", usedBy: ["run", "service"] },
  { name: "DATA_RETENTION_DAYS", rule: { kind: "number", min: 0, max: 1_000_000 }, default: "0", meaning: "delete date partitions older than this (0: keep all)", usedBy: ["run", "service"] },
  { name: "DATA_RETENTION_EVERY", rule: { kind: "duration" }, default: "1 hour", meaning: "how often retention runs", usedBy: ["run", "service"] },
  { name: "TELEGRAM_BOT_TOKEN", rule: { kind: "text", emptyOk: true }, default: "", meaning: "Telegram bot token (redacted; empty: notifier off)", usedBy: ["run", "service"] },
  { name: "TELEGRAM_CHAT_ID", rule: { kind: "text", emptyOk: true }, default: "", meaning: "chats notified (comma-separated ids or @channel)", usedBy: ["run", "service"] },
  { name: "TELEGRAM_ALLOWED_CHAT_IDS", rule: { kind: "text", emptyOk: true }, default: "", meaning: "further chats whose commands are answered", usedBy: ["run", "service"] },
  { name: "TELEGRAM_API_ROOT", rule: { kind: "url", schemes: ["http", "https"] }, default: "https://api.telegram.org", meaning: "Bot API root", usedBy: ["run", "service"] },
  { name: "TELEGRAM_COALESCE_MS", rule: int(0, 3_600_000), default: "1000", meaning: "notifications within this window (ms) go as one message", usedBy: ["run", "service"] }
]

export const settingNamed = (name: string): Setting | undefined => SETTINGS.find((s) => s.name === name)

export const describeRule = (rule: Rule): string => {
  switch (rule.kind) {
    case "int":
      return `an integer from ${rule.min} to ${rule.max}`
    case "number":
      return rule.minExclusive === true
        ? `a number greater than ${rule.min}${rule.max < Number.MAX_SAFE_INTEGER ? ` and at most ${rule.max}` : ""}`
        : `a number from ${rule.min} to ${rule.max}`
    case "enum":
      return `one of ${rule.values.join(", ")}${rule.anyCase === true ? " (any case)" : ""}`
    case "url":
      return `a ${rule.schemes.map((s) => `${s}://`).join(" or ")} URL`
    case "symbols":
      return "a non-empty comma-separated list of symbols like BTCUSDT,ETHUSDT"
    case "duration":
      return "a duration like 500 millis, 10 seconds, 2 minutes"
    case "boolean":
      return "true or false"
    case "text":
      return rule.describe ?? (rule.emptyOk ? "any text" : "a non-empty value")
  }
}

const SYMBOL = /^[A-Z0-9]{2,20}$/

export const parseSymbolList = (raw: string): ReadonlyArray<string> | undefined => {
  const symbols = raw.split(",").map((s) => s.trim().toUpperCase())
  if (symbols.length === 0 || symbols.some((s) => !SYMBOL.test(s))) return undefined
  return [...new Set(symbols)]
}

/** Whether `value` satisfies `rule`. */
export const allows = (rule: Rule, value: string): boolean => {
  const v = value.trim()
  switch (rule.kind) {
    case "int": {
      if (!/^[+-]?\d+$/.test(v)) return false
      const n = Number(v)
      return n >= rule.min && n <= rule.max
    }
    case "number": {
      if (v === "" || !Number.isFinite(Number(v))) return false
      const n = Number(v)
      return (rule.minExclusive === true ? n > rule.min : n >= rule.min) && n <= rule.max
    }
    case "enum":
      return rule.values.some((x) => (rule.anyCase === true ? x.toLowerCase() === v.toLowerCase() : x === v))
    case "url":
      try {
        const url = new URL(v)
        return rule.schemes.includes(url.protocol.replace(/:$/, "")) && url.hostname !== ""
      } catch {
        return false
      }
    case "symbols":
      return parseSymbolList(v) !== undefined
    case "duration":
      return Duration.fromInput(v as Duration.Input) !== undefined && v !== ""
    case "boolean":
      return ["true", "false", "yes", "no", "on", "off", "1", "0"].includes(v.toLowerCase())
    case "text":
      return (rule.emptyOk || v !== "") && (rule.pattern === undefined || rule.pattern.test(v))
  }
}

/** One line per problem: `NAME=value is not allowed: expected …`. Secrets are never echoed. */
export const validateEnv = (env: Readonly<Record<string, string | undefined>>): ReadonlyArray<string> => {
  const problems: Array<string> = []
  for (const setting of SETTINGS) {
    const value = env[setting.name]
    if (value === undefined) continue
    if (!allows(setting.rule, value)) {
      const shown = /SECRET|TOKEN|KEY/.test(setting.name) ? "(hidden)" : JSON.stringify(value)
      problems.push(`${setting.name}=${shown} is not allowed: expected ${describeRule(setting.rule)}`)
    }
  }
  const fast = Number(env.SIGNAL_FAST ?? 10)
  const slow = Number(env.SIGNAL_SLOW ?? 30)
  if (problems.every((p) => !p.startsWith("SIGNAL_")) && !(fast < slow)) {
    problems.push(`SIGNAL_FAST=${fast} and SIGNAL_SLOW=${slow} are not allowed: the fast window must be shorter than the slow one`)
  }
  const ws = env.EXCHANGE_WS_URL
  const rest = env.EXCHANGE_REST_URL
  if ((ws === undefined) !== (rest === undefined)) {
    problems.push(`${ws === undefined ? "EXCHANGE_WS_URL" : "EXCHANGE_REST_URL"} is not set: EXCHANGE_WS_URL and EXCHANGE_REST_URL go together (set both, or neither for the embedded simulator)`)
  }
  return problems
}

/** Levenshtein distance, for "did you mean" lists. */
const distance = (a: string, b: string): number => {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]
}

/** Up to `n` of `known` closest to `wanted` (edit distance, then shared prefix). */
export const closeMatches = (wanted: string, known: Iterable<string>, n = 5): ReadonlyArray<string> =>
  [...known]
    .map((k) => ({ k, d: distance(wanted, k) - (k.startsWith(wanted.slice(0, 3)) ? 0.5 : 0) }))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, n)
    .map((x) => x.k)

/** The line for symbols the exchange does not list, or undefined when all are known. */
export const unknownSymbolsProblem = (
  wanted: ReadonlyArray<string>,
  known: ReadonlySet<string>,
  where: string
): string | undefined => {
  const unknown = wanted.filter((s) => !known.has(s))
  if (unknown.length === 0) return undefined
  return unknown
    .map((s) => `SYMBOLS: ${s} is not a symbol on ${where}${known.size > 0 ? ` (close matches: ${closeMatches(s, known).join(", ")})` : ""}`)
    .join("\n")
}

/** The ENVIRONMENT section of a subcommand's help: each variable it reads, what is allowed, its default. */
export const envHelp = (command: "run" | "service" | "sim-exchange" | "replay"): string => {
  const rows = SETTINGS.filter((s) => s.usedBy.includes(command) || s.usedBy.includes("all"))
  const width = Math.max(...rows.map((s) => s.name.length))
  return [
    "ENVIRONMENT (checked at start; a bad value stops with one line per problem)",
    ...rows.map((s) => `  ${s.name.padEnd(width)}  ${s.meaning}; ${describeRule(s.rule)}${s.default === undefined ? "" : `; default: ${s.default === "" ? "(empty)" : s.default}`}`)
  ].join("\n")
}
