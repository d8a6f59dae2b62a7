/** `autotrader replay <dir or file>`: stored ticks through the live signal and risk code with paper fills. */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { writeFile } from "node:fs/promises"
import { ConfigError } from "../domain/Errors.ts"
import { riskLimitsConfig } from "../risk/RiskService.ts"
import { formatSummary, replay } from "../backtest/Replay.ts"
import { makeReportRecorder } from "../backtest/Report.ts"
import { parseSymbols } from "./AppConfig.ts"

/** "2024-05-01", "2024-05-01T12:00:00Z" (no zone = UTC) or epoch milliseconds. */
export const parseTime = (flag: string, text: string): Effect.Effect<number, ConfigError> => {
  const t = text.trim()
  const ms = /^\d{10,}$/.test(t) ? Number(t) : Date.parse(/[zZ]|[+-]\d\d:?\d\d$/.test(t) || t.length === 10 ? t : `${t}Z`)
  return Number.isFinite(ms)
    ? Effect.succeed(ms)
    : Effect.fail(new ConfigError({ message: `--${flag}: "${text}" is not a date (use 2024-05-01, 2024-05-01T12:00:00Z or epoch ms)` }))
}

export const replayCommand = Command.make(
  "replay",
  {
    path: Argument.String("path").pipe(Argument.withDescription("A Parquet file or a directory holding the raw/symbol=…/date=… tree")),
    symbols: Flag.String("symbols").pipe(Flag.withDescription("Comma-separated symbols (default: all stored)"), Flag.optional),
    from: Flag.String("from").pipe(Flag.withDescription("First tick time, inclusive (UTC date, ISO time or epoch ms)"), Flag.optional),
    to: Flag.String("to").pipe(Flag.withDescription("Last tick time, exclusive"), Flag.optional),
    report: Flag.String("report").pipe(Flag.withDescription("Write a self-contained HTML report here"), Flag.optional),
    fee: Flag.Finite("fee").pipe(Flag.withDescription("Fee rate per fill (0.001 = 0.1 %)"), Flag.withDefault(0.001)),
    slippageBps: Flag.Finite("slippage-bps").pipe(Flag.withDescription("Adverse slippage per fill, basis points"), Flag.withDefault(0))
  },
  Effect.fn(function*(flags) {
    const limits = yield* riskLimitsConfig
    const symbols = Option.isSome(flags.symbols) ? yield* parseSymbols(flags.symbols.value) : undefined
    const from = Option.isSome(flags.from) ? yield* parseTime("from", flags.from.value) : undefined
    const to = Option.isSome(flags.to) ? yield* parseTime("to", flags.to.value) : undefined
    const recorder = Option.isSome(flags.report) ? makeReportRecorder() : undefined
    const tty = process.stderr.isTTY === true
    const { summary, elapsedMs } = yield* replay(
      flags.path,
      { ...(symbols === undefined ? {} : { symbols }), ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) },
      limits,
      { fee: flags.fee, slippageBps: flags.slippageBps },
      {
        ...(recorder === undefined ? {} : { observer: recorder.observer }),
        onProgress: (p) =>
          Effect.sync(() => {
            const line = `replaying… ${p.ticks.toLocaleString("en-US")} ticks, at ${p.lastTs === undefined ? "-" : new Date(p.lastTs).toISOString()}, ${Math.round(p.ticks / (p.elapsedMs / 1000)).toLocaleString("en-US")} ticks/s`
            process.stderr.write(tty ? `\r${line}` : `${line}\n`)
          })
      }
    )
    if (tty) process.stderr.write("\r\x1b[K")
    yield* Console.log(formatSummary(summary, elapsedMs))
    if (recorder !== undefined && Option.isSome(flags.report)) {
      const path = flags.report.value
      yield* Effect.promise(() => writeFile(path, recorder.render(summary, `autotrader replay of ${flags.path}`)))
      yield* Console.log(`report        ${path}`)
    }
  })
).pipe(
  Command.withDescription(
    "Backtest: replay stored ticks (ts, trade_id order, de-duplicated) through the live signal and risk code with paper fills"
  )
)
