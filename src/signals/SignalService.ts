/** Runs the signal worker over the bus: `market.raw` → `signals.candidate`, committing after publishing. */
import { Clock, Config, Effect, Metric, Stream } from "effect"
import { Bus, commitBatch } from "../bus/Bus.ts"
import type { Candidate } from "../domain/Messages.ts"
import { MarketRaw, SignalsCandidate } from "../domain/Topics.ts"
import { secondsBetween, tickToCandidateSeconds } from "../observability/Metrics.ts"
import { ConfigError } from "../domain/Errors.ts"
import { DEFAULT_WINDOWS, initialSignalState, type SignalWindows, stepSignal, windowsProblem } from "./SignalWorker.ts"

/** The MA windows from `SIGNAL_FAST` / `SIGNAL_SLOW` (default 10 / 30 trades); the same for live and replay. */
export const signalWindowsConfig = Config.all({
  fast: Config.Int("SIGNAL_FAST").pipe(Config.withDefault(DEFAULT_WINDOWS.fast)),
  slow: Config.Int("SIGNAL_SLOW").pipe(Config.withDefault(DEFAULT_WINDOWS.slow))
}).pipe(
  Effect.flatMap((w: SignalWindows) => {
    const problem = windowsProblem(w)
    return problem === undefined
      ? Effect.succeed(w)
      : Effect.fail(new ConfigError({ message: `SIGNAL_FAST / SIGNAL_SLOW: ${problem}` }))
  })
)

export const candidatesTotal = Metric.counter("signals_candidates_total", { description: "Candidates emitted" })

export const SIGNALS_GROUP = "signals"

export const runSignals = Effect.gen(function*() {
  const bus = yield* Bus
  const windows = yield* signalWindowsConfig
  const state = initialSignalState(windows)
  yield* bus.subscribe(MarketRaw, { group: SIGNALS_GROUP }).pipe(
    Stream.runForEachArray((deliveries) =>
      Effect.gen(function*() {
        const out: Array<Candidate> = []
        for (const d of deliveries) {
          const c = stepSignal(state, d.value)
          if (c !== undefined) out.push(c)
        }
        if (out.length > 0) {
          // stamped here, not in the pure rule: the risk gate measures candidate → decision from it
          const now = yield* Clock.currentTimeMillis
          const stamped = out.map((c) => ({ ...c, emittedAt: now }))
          yield* bus.publishAll(SignalsCandidate, stamped.map((c) => ({ key: c.symbol, value: c })))
          for (const c of stamped) {
            yield* Effect.logInfo("candidate", { id: c.id, symbol: c.symbol, side: c.side, price: c.price, ma10: c.ma10, ma30: c.ma30, delta: c.delta })
            yield* Metric.update(tickToCandidateSeconds.pipe(Metric.withAttributes({ symbol: c.symbol })), secondsBetween(c.origin.receivedAt, now))
          }
          yield* Metric.update(candidatesTotal, out.length)
        }
        yield* commitBatch(deliveries)
      })
    )
  )
}).pipe(Effect.annotateLogs({ stage: "signals" }))
