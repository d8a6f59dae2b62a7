/** Process-wide config from env, with sane defaults. Invalid values stop the process at start-up, loudly. */
import { Config, Duration, Effect, Layer, Logger, References } from "effect"
import { ConfigError } from "../domain/Errors.ts"
import { consoleFlatJson } from "../observability/JsonLogger.ts"
import { inRange } from "../runtime/Settings.ts"

const SYMBOL = /^[A-Z0-9]{2,20}$/

export const parseSymbols = (raw: string): Effect.Effect<ReadonlyArray<string>, ConfigError> => {
  const symbols = raw.split(",").map((s) => s.trim().toUpperCase()).filter((s) => s.length > 0)
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

/** JSON logs on stdout at LOG_LEVEL (Trace, Debug, Info, Warn, Error; default Info). */
export const LoggingLive = Layer.mergeAll(
  Logger.layer([consoleFlatJson]),
  Layer.effect(
    References.MinimumLogLevel,
    Config.LogLevel("LOG_LEVEL").pipe(Config.withDefault("Info" as const))
  )
)

/** "20s", "90s", "2m", "1h", "500ms" → Duration. */
export const parseDuration = (text: string): Effect.Effect<Duration.Duration, ConfigError> => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(text.trim())
  if (m === null) return Effect.fail(new ConfigError({ message: `invalid duration "${text}": use forms like 500ms, 20s, 2m, 1h` }))
  const n = Number(m[1])
  const unit = m[2]
  return Effect.succeed(
    unit === "ms" ? Duration.millis(n) : unit === "s" ? Duration.seconds(n) : unit === "m" ? Duration.minutes(n) : Duration.hours(n)
  )
}
