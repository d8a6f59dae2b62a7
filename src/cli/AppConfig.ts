/** Process-wide config from env, with sane defaults. Invalid values stop the process at start-up, loudly. */
import { Config, Duration, Effect, Layer, Logger, type LogLevel, References } from "effect"
import { ConfigError } from "../domain/Errors.ts"
import { consoleFlatJson } from "../observability/JsonLogger.ts"
import { inRange } from "../runtime/Settings.ts"
import { prettyLogger } from "../observability/PrettyLogger.ts"
import { LOG_LEVELS } from "./Settings.ts"

const SYMBOL = /^[A-Z0-9]{2,20}$/

export const parseSymbols = (raw: string): Effect.Effect<ReadonlyArray<string>, ConfigError> => {
  const symbols = raw.split(",").map((s) => s.trim().toUpperCase())
  const bad = symbols.filter((s) => !SYMBOL.test(s))
  if (symbols.length === 0 || bad.length > 0) {
    return Effect.fail(new ConfigError({ message: `SYMBOLS must be a comma-separated list like BTCUSDT,ETHUSDT (got "${raw}")` }))
  }
  return Effect.succeed([...new Set(symbols)])
}

export const symbolsConfig = Config.String("SYMBOLS").pipe(Config.withDefault("BTCUSDT"), Effect.flatMap(parseSymbols))

/** Prefix of every Kafka topic and consumer group (several deployments on one cluster); empty by default. */
export const topicPrefixConfig = Config.String("KAFKA_TOPIC_PREFIX").pipe(Config.withDefault(""))

export const busKindConfig = Config.Literals(["memory", "kafka"], "BUS").pipe(Config.withDefault("memory" as const))

/** 0: the OS picks. */
export const httpPortConfig = inRange("HTTP_PORT", Config.Int("HTTP_PORT").pipe(Config.withDefault(8080)), {
  min: 0,
  max: 65535,
  text: "a port number from 0 to 65535 (0: the OS picks)"
})

export const simConfig = Config.all({
  seed: Config.Int("SIM_SEED").pipe(Config.withDefault(42)),
  ticksPerSecond: Config.Number("SIM_TICKS_PER_SECOND").pipe(Config.withDefault(20)),
  port: Config.Int("SIM_PORT").pipe(Config.withDefault(0))
})

/** LOG_LEVEL in any case (`info`, `INFO`, `Info`, `warning`); undefined when it is not a level. */
export const parseLogLevel = (raw: string): LogLevel.LogLevel | undefined => {
  const v = raw.trim().toLowerCase()
  if (v === "warning") return "Warn"
  return LOG_LEVELS.find((l) => l.toLowerCase() === v)
}

export type LogFormat = "pretty" | "json"

/**
 * LOG_FORMAT, or the default: pretty on a terminal, JSON when stdout is piped or redirected, and always JSON for
 * `service` (containers feed log collectors).
 */
export const logFormatOf = (env: Readonly<Record<string, string | undefined>>, isTty: boolean, command: string | undefined): LogFormat => {
  const explicit = env.LOG_FORMAT?.trim().toLowerCase()
  if (explicit === "pretty" || explicit === "json") return explicit
  return command === "service" || !isTty ? "json" : "pretty"
}

/** Logs on stdout at LOG_LEVEL (any case; default Info), pretty or JSON (`logFormatOf`). */
export const loggingLayer = (format: LogFormat) =>
  Layer.unwrap(
    Effect.gen(function*() {
      const raw = yield* Config.String("LOG_LEVEL").pipe(Config.withDefault("Info"))
      const level = parseLogLevel(raw) ?? "Info" // a bad value was refused at start (Settings.validateEnv)
      const logger = format === "json" ? consoleFlatJson : prettyLogger({ minimum: level, colors: process.stdout.isTTY === true })
      return Layer.mergeAll(Logger.layer([logger]), Layer.succeed(References.MinimumLogLevel, level))
    })
  )

/** JSON logs (kept for callers that do not choose): same as `loggingLayer("json")`. */
export const LoggingLive = loggingLayer("json")

/** "20s", "90s", "2m", "1h", "500ms" → Duration. */
export const parseDuration = (text: string): Effect.Effect<Duration.Duration, ConfigError> => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(text.trim())
  if (m === null || Number(m[1]) <= 0) {
    return Effect.fail(new ConfigError({ message: `--for "${text}" is not allowed: expected a positive duration like 500ms, 20s, 2m, 1h` }))
  }
  const n = Number(m[1])
  const unit = m[2]
  return Effect.succeed(
    unit === "ms" ? Duration.millis(n) : unit === "s" ? Duration.seconds(n) : unit === "m" ? Duration.minutes(n) : Duration.hours(n)
  )
}
