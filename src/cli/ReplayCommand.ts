/** `autotrader replay <dir or file>`: stored ticks through the live signal, risk and order-preparation code with paper fills. */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { runBacktest } from "../backtest/Backtest.ts"
import { parseGrid } from "../backtest/Grid.ts"
import { ReplayInputError, usage } from "../backtest/Inputs.ts"
import { RANK_METRIC_NAMES, type RankMetric } from "../backtest/Metrics.ts"
import { ConfigError } from "../domain/Errors.ts"
import { riskLimitsConfig } from "../risk/RiskConfig.ts"
import { signalWindowsConfig } from "../signals/SignalConfig.ts"
import { windowsProblem } from "../signals/SignalWorker.ts"
import { parseSymbols } from "./AppConfig.ts"

/** "2024-05-01", "2024-05-01T12:00:00Z" (no zone = UTC) or epoch milliseconds. */
export const parseTime = (flag: string, text: string): Effect.Effect<number, ConfigError> => {
  const t = text.trim()
  const ms = /^\d{10,}$/.test(t) ? Number(t) : Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) || t.length === 10 ? t : `${t}Z`)
  return Number.isFinite(ms)
    ? Effect.succeed(ms)
    : Effect.fail(new ConfigError({ message: `--${flag}: "${text}" is not a date (use 2024-05-01, 2024-05-01T12:00:00Z or epoch ms)` }))
}

/** "5ms", "0.2s", "1m", "250" (ms) → milliseconds; undefined when not a duration ≥ 0. */
export const parseLatency = (text: string): number | undefined => {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m)?$/.exec(text.trim())
  if (m === null) return undefined
  const n = Number(m[1])
  return m[2] === "s" ? n * 1000 : m[2] === "m" ? n * 60_000 : n
}

const optionalFinite = (name: string, description: string) => Flag.Finite(name).pipe(Flag.withDescription(description), Flag.optional)
const value = <A>(o: Option.Option<A>): A | undefined => (Option.isSome(o) ? o.value : undefined)

export const replayCommand = Command.make(
  "replay",
  {
    args: Argument.String("path").pipe(
      Argument.withDescription("A Parquet file or a directory holding the raw/symbol=…/date=… tree (then, with --grid, more key=values)"),
      Argument.atLeast(1)
    ),
    symbols: Flag.String("symbols").pipe(Flag.withDescription("Comma-separated symbols (default: all stored)"), Flag.optional),
    from: Flag.String("from").pipe(Flag.withDescription("First tick time, inclusive (UTC date, ISO time or epoch ms)"), Flag.optional),
    to: Flag.String("to").pipe(Flag.withDescription("Last tick time, exclusive"), Flag.optional),
    report: Flag.String("report").pipe(Flag.withDescription("Write a self-contained HTML report here (checked before the run)"), Flag.optional),
    fee: Flag.Finite("fee").pipe(Flag.withDescription("Taker fee rate per fill, ≥ 0 (0.001 = 0.1 %); every paper order is a MARKET taker order"), Flag.withDefault(0.001)),
    makerFee: optionalFinite("maker-fee", "Maker fee rate, ≥ 0 (default: the taker rate); reported, unused by MARKET orders"),
    slippageBps: Flag.Finite("slippage-bps").pipe(Flag.withDescription("Adverse slippage per fill, basis points, ≥ 0"), Flag.withDefault(0)),
    latency: Flag.String("latency").pipe(Flag.withDescription("Fill at the first trade at or after signal time + this (e.g. 5ms, 0.2s; default 0)"), Flag.optional),
    balance: Flag.Finite("balance").pipe(Flag.withDescription("Starting balance in the quote asset"), Flag.withDefault(10_000)),
    fast: Flag.Int("fast").pipe(Flag.withDescription("Fast MA window in trades (default SIGNAL_FAST, 10)"), Flag.optional),
    slow: Flag.Int("slow").pipe(Flag.withDescription("Slow MA window in trades (default SIGNAL_SLOW, 30)"), Flag.optional),
    grid: Flag.String("grid").pipe(
      Flag.withDescription("Parameter grid, every combination in one pass: --grid fast=5,10,20 slow=30,60,120 (keys: fast, slow, qty, max-position, trades-per-minute, trades-per-hour)"),
      Flag.optional
    ),
    walkForward: Flag.Int("walk-forward").pipe(Flag.withDescription("Score the best in-sample choice out of sample over N folds (N + 1 windows)"), Flag.optional),
    rankBy: Flag.Literals("rank-by", RANK_METRIC_NAMES).pipe(Flag.withDescription("Metric that ranks variants"), Flag.withDefault("sharpe" as RankMetric)),
    stepSize: optionalFinite("step-size", "LOT_SIZE stepSize for every symbol (overrides a saved exchangeInfo)"),
    minQty: optionalFinite("min-qty", "LOT_SIZE minQty for every symbol"),
    minNotional: optionalFinite("min-notional", "NOTIONAL minNotional for every symbol"),
    model: Flag.String("model").pipe(
      Flag.withDescription("Also replay gated by this model.onnx, side by side with the plain run; only ticks after the model's training range count"),
      Flag.optional
    ),
    minProba: Flag.Finite("min-proba").pipe(Flag.withDescription("With --model: the minimum P(up) a candidate needs (default 0.5)"), Flag.withDefault(0.5)),
    strict: Flag.Boolean("strict").pipe(
      Flag.withDescription("A Parquet file that is not a tick file is an error (default: skipped with a warning)"),
      Flag.withDefault(false)
    )
  },
  Effect.fn(function*(flags) {
    const [path, ...extra] = flags.args
    const asUsage = <A>(e: Effect.Effect<A, ConfigError>) => e.pipe(Effect.mapError((c) => usage(c.message)))
    const limits = yield* riskLimitsConfig
    const envWindows = yield* signalWindowsConfig
    const windows = { fast: value(flags.fast) ?? envWindows.fast, slow: value(flags.slow) ?? envWindows.slow }
    const wp = windowsProblem(windows)
    if (wp !== undefined) return yield* usage(`--fast/--slow: ${wp}`)
    const symbols = Option.isSome(flags.symbols) ? yield* asUsage(parseSymbols(flags.symbols.value)) : undefined
    const askedFrom = Option.isSome(flags.from) ? yield* asUsage(parseTime("from", flags.from.value)) : undefined
    if (Option.isSome(flags.model) && !(flags.minProba >= 0 && flags.minProba <= 1)) return yield* usage(`--min-proba ${flags.minProba}: a probability between 0 and 1`)
    // with a model, only ticks after its training range count (for both runs, so they compare)
    // the model code (and onnxruntime) is loaded only with --model
    const replayModel = Option.isSome(flags.model) ? yield* Effect.promise(() => import("../ml/ReplayModel.ts")) : undefined
    const trainedTo = Option.isSome(flags.model) ? yield* replayModel!.trainedUntil(flags.model.value) : undefined
    const from = trainedTo === undefined ? askedFrom : Math.max(askedFrom ?? trainedTo, trainedTo + 1)
    if (trainedTo !== undefined) yield* Console.error(`model: trained on data up to ${new Date(trainedTo).toISOString()}; replaying from ${new Date(from!).toISOString()}`)
    const to = Option.isSome(flags.to) ? yield* asUsage(parseTime("to", flags.to.value)) : undefined
    let latencyMs = 0
    if (Option.isSome(flags.latency)) {
      const l = parseLatency(flags.latency.value)
      if (l === undefined) return yield* usage(`--latency "${flags.latency.value}": a duration of 0 or more, like 5ms or 0.2s`)
      latencyMs = l
    }
    if (extra.length > 0 && Option.isNone(flags.grid)) return yield* usage(`unexpected argument(s) ${extra.join(" ")}: give one path (grid values follow --grid)`)
    const grid = Option.isSome(flags.grid) ? parseGrid([flags.grid.value, ...extra]) : undefined
    if (typeof grid === "string") return yield* usage(grid)
    const anyFilter = [flags.stepSize, flags.minQty, flags.minNotional].some(Option.isSome)
    const tty = process.stderr.isTTY === true
    const model = Option.isSome(flags.model)
      ? yield* replayModel!.modelVariant({
        modelPath: flags.model.value,
        minProba: flags.minProba,
        storePath: path,
        filter: { ...(symbols === undefined ? {} : { symbols }), ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) },
        windows,
        limits
      })
      : undefined
    if (model !== undefined) yield* Console.error(`model: ${model.scored} candidates scored, ${model.unscorable} without features`)
    const outcome = yield* runBacktest({
      ...(model === undefined ? {} : { extraVariants: [model.variant] }),
      path,
      ...(symbols === undefined ? {} : { symbols }),
      ...(from === undefined ? {} : { from }),
      ...(to === undefined ? {} : { to }),
      fee: flags.fee,
      ...(Option.isSome(flags.makerFee) ? { makerFee: flags.makerFee.value } : {}),
      slippageBps: flags.slippageBps,
      latencyMs,
      startingBalance: flags.balance,
      ...(anyFilter
        ? { filters: { stepSize: value(flags.stepSize) ?? 0, minQty: value(flags.minQty) ?? 0, minNotional: value(flags.minNotional) ?? 0 } }
        : {}),
      windows,
      limits,
      ...(grid === undefined ? {} : { grid }),
      ...(Option.isSome(flags.walkForward) ? { walkForward: flags.walkForward.value } : {}),
      rankBy: flags.rankBy,
      ...(Option.isSome(flags.report) ? { report: flags.report.value } : {}),
      strict: flags.strict,
      onProgress: (p) =>
        Effect.sync(() => {
          const line = `replaying… ${p.ticks.toLocaleString("en-US")} ticks, at ${p.lastTs === undefined ? "-" : new Date(p.lastTs).toISOString()}, ${Math.round(p.ticks / (p.elapsedMs / 1000)).toLocaleString("en-US")} ticks/s`
          process.stderr.write(tty ? `\r${line}` : `${line}\n`)
        })
    })
    if (tty) process.stderr.write("\r\x1b[K")
    yield* Console.log(outcome.text)
  }, (effect) =>
    effect.pipe(
      Effect.tapError((e) => (e instanceof ReplayInputError ? Console.error(`autotrader replay: ${e.message}`) : Effect.void))
    ))
).pipe(
  Command.withDescription(
    "Backtest: replay stored ticks (ts, trade_id order, de-duplicated) through the live signal, risk and order-preparation code with paper fills. " +
      "Env: ORDER_QTY, RISK_MAX_POSITION, RISK_MAX_TRADES_PER_MINUTE, RISK_MAX_TRADES_PER_HOUR, SIGNAL_FAST, SIGNAL_SLOW. " +
      "Exit codes: 2 bad flag value, 65 not tick data, 66 no such path, 73 report not writable."
  )
)
