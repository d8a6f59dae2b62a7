/** `autotrader dataset`, `autotrader train`, `autotrader check lookahead|warmup`: the ML loop's entry points. */
import { Console, Duration, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { ConfigError } from "../domain/Errors.ts"
import { checkLookahead, formatLookahead, formatWarmup, readStoreTicks, warmupOf } from "../ml/Checks.ts"
import { buildDataset } from "../ml/Dataset.ts"
import { FEATURES, SPEC_HASH } from "../ml/FeatureSpec.ts"
import { formatTrainReport, train } from "../ml/Train.ts"
import { parseDuration, parseSymbols } from "./AppConfig.ts"
import { parseTime } from "./ReplayCommand.ts"

const durationMs = (flag: string, text: string) =>
  parseDuration(text).pipe(
    Effect.map(Duration.toMillis),
    Effect.mapError((e) => new ConfigError({ message: `--${flag}: ${e.message}` }))
  )

const symbolsFlag = Flag.String("symbols").pipe(Flag.withDescription("Comma-separated symbols (default: all stored)"), Flag.optional)
const optionalSymbols = (flag: Option.Option<string>) => (Option.isSome(flag) ? parseSymbols(flag.value) : Effect.succeed(undefined))

const iso = (t: number | undefined) => (t === undefined ? "-" : new Date(t).toISOString())

export const datasetCommand = Command.make(
  "dataset",
  {
    store: Argument.String("store").pipe(Argument.withDescription("The tick store directory (raw/symbol=…/date=…/*.parquet)")),
    out: Flag.String("out").pipe(Flag.withDescription("The Parquet file to write")),
    symbols: symbolsFlag,
    from: Flag.String("from").pipe(Flag.withDescription("First tick time, inclusive (UTC date, ISO time or epoch ms)"), Flag.optional),
    to: Flag.String("to").pipe(Flag.withDescription("Last tick time, exclusive"), Flag.optional),
    horizon: Flag.String("horizon").pipe(Flag.withDescription("Label horizon: fwd_return looks this far ahead (e.g. 30s, 5m)"), Flag.withDefault("30s")),
    every: Flag.String("every").pipe(Flag.withDescription("One row per tick (tick) or per bar, at the bar's last tick (1s, 1m, …)"), Flag.withDefault("tick"))
  },
  Effect.fn(function*(flags) {
    const symbols = yield* optionalSymbols(flags.symbols)
    const from = Option.isSome(flags.from) ? yield* parseTime("from", flags.from.value) : undefined
    const to = Option.isSome(flags.to) ? yield* parseTime("to", flags.to.value) : undefined
    const horizonMs = yield* durationMs("horizon", flags.horizon)
    if (horizonMs <= 0) return yield* new ConfigError({ message: "--horizon must be longer than 0" })
    const everyMs = flags.every === "tick" ? undefined : yield* durationMs("every", flags.every)
    const started = Date.now()
    const r = yield* buildDataset({
      storeDir: flags.store,
      out: flags.out,
      horizonMs,
      ...(symbols === undefined ? {} : { symbols }),
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      ...(everyMs === undefined ? {} : { everyMs })
    })
    const seconds = (Date.now() - started) / 1000
    yield* Console.log(
      [
        `dataset      ${flags.out}`,
        `rows         ${r.rows.toLocaleString("en-US")} from ${r.ticks.toLocaleString("en-US")} ticks (${flags.every === "tick" ? "one per tick" : `one per ${flags.every} bar`}), ${(r.positiveRate * 100).toFixed(1)} % label = 1`,
        `period       ${iso(r.firstTs)} → ${iso(r.lastTs)}`,
        `features     ${FEATURES.map((f) => f.name).join(", ")}`,
        `labels       fwd_return over ${flags.horizon}, label = fwd_return > 0`,
        `spec hash    ${r.specHash}`,
        `took         ${seconds.toFixed(2)} s (${Math.round(r.ticks / Math.max(seconds, 1e-3)).toLocaleString("en-US")} ticks/s)`
      ].join("\n")
    )
  })
).pipe(Command.withDescription("Build a training dataset (features + forward-return labels) from the tick store, as Parquet"))

export const trainCommand = Command.make(
  "train",
  {
    dataset: Argument.String("dataset").pipe(Argument.withDescription("A dataset written by `autotrader dataset`")),
    out: Flag.String("out").pipe(Flag.withDescription("Model file to write (its sidecar goes to <out>.json)"), Flag.withDefault("model.onnx")),
    features: Flag.String("features").pipe(Flag.withDescription("Comma-separated feature columns (default: every scale-free feature column)"), Flag.optional),
    model: Flag.String("model").pipe(Flag.withDescription("logistic (L2-regularised logistic regression)"), Flag.withDefault("logistic")),
    folds: Flag.Int("folds").pipe(Flag.withDescription("Walk-forward validation folds"), Flag.withDefault(4)),
    embargo: Flag.String("embargo").pipe(Flag.withDescription("Gap after the one-horizon purge between train and validation (default: one horizon)"), Flag.optional),
    l2: Flag.Finite("l2").pipe(Flag.withDescription("Ridge penalty on standardised weights"), Flag.withDefault(1))
  },
  Effect.fn(function*(flags) {
    const features = Option.isSome(flags.features)
      ? flags.features.value.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
      : undefined
    if (features !== undefined && features.length === 0) return yield* new ConfigError({ message: "--features: give at least one column name" })
    if (flags.folds < 1 || flags.folds > 50) return yield* new ConfigError({ message: `--folds must be 1..50 (got ${flags.folds})` })
    if (!(flags.l2 >= 0)) return yield* new ConfigError({ message: `--l2 must be ≥ 0 (got ${flags.l2})` })
    const embargoMs = Option.isSome(flags.embargo) ? yield* durationMs("embargo", flags.embargo.value) : undefined
    const started = Date.now()
    const report = yield* train({
      dataset: flags.dataset,
      out: flags.out,
      model: flags.model,
      folds: flags.folds,
      l2: flags.l2,
      ...(features === undefined ? {} : { features }),
      ...(embargoMs === undefined ? {} : { embargoMs })
    })
    yield* Console.log(formatTrainReport(report, flags.out))
    yield* Console.log(`took ${((Date.now() - started) / 1000).toFixed(2)} s`)
  })
).pipe(Command.withDescription("Train a model on a dataset with purged walk-forward validation; write model.onnx and its sidecar"))

const lookaheadCommand = Command.make(
  "lookahead",
  {
    store: Argument.String("store").pipe(Argument.withDescription("The tick store directory")),
    symbols: symbolsFlag,
    samples: Flag.Int("samples").pipe(Flag.withDescription("Cut points to test"), Flag.withDefault(20)),
    seed: Flag.Int("seed").pipe(Flag.withDefault(1))
  },
  Effect.fn(function*(flags) {
    const symbols = yield* optionalSymbols(flags.symbols)
    if (flags.samples < 1) return yield* new ConfigError({ message: `--samples must be ≥ 1 (got ${flags.samples})` })
    const report = yield* checkLookahead({ storeDir: flags.store, samples: flags.samples, seed: flags.seed, ...(symbols === undefined ? {} : { symbols }) })
    yield* Console.log(formatLookahead(report))
    if (report.violations.length > 0) {
      return yield* new ConfigError({ message: `look-ahead check failed: ${Object.keys(report.byFeature).join(", ")} use ticks after their own time` })
    }
  })
).pipe(Command.withDescription("Recompute every feature and the signal on data cut at sampled trades; fail if a value changes when later ticks are removed"))

const warmupCommand = Command.make(
  "warmup",
  {
    store: Argument.String("store").pipe(Argument.withDescription("A tick store to measure on (default: a seeded random walk)"), Argument.optional),
    symbols: symbolsFlag,
    samples: Flag.Int("samples").pipe(Flag.withDefault(20))
  },
  Effect.fn(function*(flags) {
    const symbols = yield* optionalSymbols(flags.symbols)
    const ticks = Option.isSome(flags.store) ? yield* readStoreTicks(flags.store.value, symbols) : syntheticTicks(3000)
    const rows = warmupOf(ticks, FEATURES, flags.samples)
    if (rows.length === 0) return yield* new ConfigError({ message: "warmup: need a symbol with more than 201 ticks" })
    yield* Console.log(formatWarmup(rows))
    yield* Console.log(`spec hash ${SPEC_HASH}; datasets drop each symbol's first ${Math.max(...rows.filter((r) => r.feature !== "signal").map((r) => r.measured)) - 1} trades`)
  })
).pipe(Command.withDescription("How many ticks each feature (and the signal) needs before its value no longer depends on where the data starts"))

export const checkCommand = Command.make("check").pipe(
  Command.withDescription("Checks of the ML features: lookahead, warmup"),
  Command.withSubcommands([lookaheadCommand, warmupCommand])
)

/** A seeded random walk (warm-up depends on definitions, not on data, for trade-count windows). */
const syntheticTicks = (n: number) => {
  let s = 12345
  const rand = () => (s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0) / 4_294_967_296
  let price = 100
  return Array.from({ length: n }, (_, i) => {
    price *= 1 + (rand() - 0.5) * 0.002
    const ts = Date.UTC(2024, 0, 1) + i * 500
    return { symbol: "SYNTHUSDT", price, size: 0.1 + rand(), side: rand() < 0.5 ? "BUY" as const : "SELL" as const, tradeId: i + 1, ts, receivedAt: ts }
  })
}
