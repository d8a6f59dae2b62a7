/**
 * Runs the signal worker over the bus: `market.raw` → `signals.candidate`, committing after publishing.
 *
 * Scale-out: instances share the `signals` group, so each owns some partitions of `market.raw` (symbols). The first
 * time a symbol is seen in a new assignment of its partition (start, restart, rebalance) its MA windows and last
 * crossing side are rebuilt from the symbol's ticks before that delivery (`lastOfKey`, 2 × the slow window): those
 * were handled (and committed) by whoever owned the symbol before, so the first crossover after the move is neither
 * missed (empty windows) nor invented (a forgotten crossing side). Ticks the previous owner handled but did not
 * commit come again and give the same candidates (same ids), which the risk gate and order manager collapse.
 */
import { Clock, Config, Effect, Metric, Option, Stream } from "effect"
import { Bus, lastOfKey, makeCommitBehind } from "../bus/Bus.ts"
import { type Candidate, type Tick, tickId } from "../domain/Messages.ts"
import { MarketRaw, SignalsCandidate } from "../domain/Topics.ts"
import { LATENCY_BUCKETS_SECONDS, secondsBetween, tickToCandidateSeconds } from "../observability/Metrics.ts"
import { type GateVerdict, makeModelGate } from "../ml/ModelGate.ts"
import { ConfigError } from "../domain/Errors.ts"
import { latencyTraceOn, traceMark } from "../observability/LatencyTrace.ts"
import { signalWindowsConfig } from "./SignalConfig.ts"
import { initialSignalState, type SignalState, stepSignal } from "./SignalWorker.ts"

export { signalWindowsConfig } from "./SignalConfig.ts"

export const candidatesTotal = Metric.counter("signals_candidates_total", { description: "Candidates emitted" })

export const SIGNALS_GROUP = "signals"

/** Where the model is and its threshold: `SIGNAL_MODEL` (path to model.onnx; unset: plain crossover), `SIGNAL_MIN_PROBA`. */
export interface SignalModelOptions {
  readonly path: string
  readonly minProba: number
}

export const signalModelConfig = Effect.gen(function*() {
  const path = yield* Config.option(Config.String("SIGNAL_MODEL"))
  const minProba = yield* Config.Number("SIGNAL_MIN_PROBA").pipe(Config.withDefault(0.5))
  if (!(minProba >= 0 && minProba <= 1)) {
    return yield* new ConfigError({ message: `SIGNAL_MIN_PROBA must be a probability between 0 and 1 (got ${minProba})` })
  }
  const model = Option.map(Option.filter(path, (p) => p.trim().length > 0), (p): SignalModelOptions => ({ path: p.trim(), minProba }))
  // load and check the model once here (read at start-up): a missing file, unknown features or a stale spec hash
  // stop the process with one line instead of failing the stage over and over
  if (Option.isSome(model)) {
    const { loadScorer } = yield* Effect.promise(() => import("../ml/Scorer.ts"))
    yield* Effect.scoped(loadScorer(model.value.path)).pipe(
      Effect.mapError((e) => new ConfigError({ message: `SIGNAL_MODEL: ${e.message}` }))
    )
  }
  return model
})

/**
 * Rebuilds `symbol`'s windows in `state` from its last ticks on `partition` before `offset` (what the worker did
 * before this assignment); returns how many ticks it replayed. Candidates of the replay are dropped: they were
 * published by whoever handled those ticks.
 */
export const rebuildSymbol = (state: SignalState, symbol: string, partition: number, offset: number, observe?: (tick: Tick) => void) =>
  Effect.gen(function*() {
    const history = yield* lastOfKey(MarketRaw, partition, offset, symbol, 2 * state.slow)
    state.delete(symbol)
    for (const r of history) {
      observe?.(r.value)
      stepSignal(state, r.value)
    }
    return history.length
  })

export const modelScoreSeconds = Metric.histogram("signals_model_score_seconds", {
  description: "Model scoring of the crossover candidates of one delivery batch (features + ONNX run)",
  boundaries: LATENCY_BUCKETS_SECONDS
})
/** Labels: reason (below_threshold, unscorable). */
export const modelFilteredTotal = Metric.counter("signals_model_filtered_total", { description: "Candidates the model held back" })

/** The signal worker with the model from config (SIGNAL_MODEL), if any. */
export const runSignals = Effect.gen(function*() {
  const model = yield* signalModelConfig
  return yield* runSignalsWith(model)
})

/**
 * The signal worker; with a model, each crossover candidate is scored and only P(up) ≥ minProba goes on, carrying
 * its probability. The model is loaded (and checked) once, before the first tick is read.
 */
export const runSignalsWith = (model: Option.Option<SignalModelOptions>) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const windows = yield* signalWindowsConfig
    const state = initialSignalState(windows)
    // onnxruntime is loaded only when a model is configured (it is a tenth of the CLI's start-up otherwise)
    const gate = Option.isSome(model)
      ? makeModelGate(yield* (yield* Effect.promise(() => import("../ml/Scorer.ts"))).loadScorer(model.value.path), model.value.minProba)
      : undefined
    if (gate !== undefined) {
      yield* Effect.logInfo("signal model loaded", {
        path: gate.scorer.path,
        features: gate.scorer.features.join(","),
        horizonMs: gate.scorer.sidecar.horizon,
        minProba: gate.minProba,
        engine: gate.scorer.engine,
        trainedTo: new Date(gate.scorer.sidecar.trainedOn.to).toISOString()
      })
    }
    /** symbol → the assignment its state was built under */
    const builtUnder = new Map<string, number>()
    // the commit of a batch overlaps the next batch (one round trip per batch instead of two)
    const committer = makeCommitBehind()
    yield* bus.subscribe(MarketRaw, { group: SIGNALS_GROUP }).pipe(
      Stream.runForEachArray((deliveries) =>
        Effect.gen(function*() {
          for (const d of deliveries) {
            if (builtUnder.get(d.value.symbol) === d.assignment) continue
            const replayed = yield* rebuildSymbol(state, d.value.symbol, d.partition, d.offset, gate?.observe)
            builtUnder.set(d.value.symbol, d.assignment)
            if (replayed > 0) {
              yield* Effect.logInfo("signal state rebuilt", { symbol: d.value.symbol, partition: d.partition, before: d.offset, ticks: replayed })
            }
          }
          let out: Array<Candidate> = []
          if (gate === undefined) {
            const tracing = latencyTraceOn()
            for (const d of deliveries) {
              if (tracing) traceMark(tickId(d.value), "signal")
              const c = stepSignal(state, d.value)
              if (c !== undefined) out.push(c)
            }
          } else {
            // features must be read at the candidate's own tick: judge each candidate before feeding later ticks
            const pending: Array<Promise<ReadonlyArray<GateVerdict>>> = []
            for (const d of deliveries) {
              gate.observe(d.value)
              const c = stepSignal(state, d.value)
              if (c !== undefined) pending.push(gate.judge([c]))
            }
            if (pending.length > 0) {
              const started = yield* Clock.currentTimeNanos
              const verdicts = (yield* Effect.promise(() => Promise.all(pending))).flat()
              const took = Number((yield* Clock.currentTimeNanos) - started) / 1e9
              yield* Metric.update(modelScoreSeconds, took)
              out = []
              for (const v of verdicts) {
                if (v._tag === "Pass") out.push(v.candidate)
                else {
                  yield* Metric.update(modelFilteredTotal.pipe(Metric.withAttributes({ reason: v.reason })), 1)
                  yield* Effect.logInfo("candidate held back by the model", {
                    id: v.candidate.id,
                    symbol: v.candidate.symbol,
                    side: v.candidate.side,
                    reason: v.reason,
                    probability: v.probability,
                    minProba: gate.minProba
                  })
                }
              }
            }
          }
          if (out.length > 0) {
            // stamped here, not in the pure rule: the risk gate measures candidate → decision from it
            const now = yield* Clock.currentTimeMillis
            const stamped = out.map((c) => ({ ...c, emittedAt: now }))
            for (const c of stamped) traceMark(c.origin.tickId, "candidate")
            yield* bus.publishAll(SignalsCandidate, stamped.map((c) => ({ key: c.symbol, value: c })))
            for (const c of stamped) {
              yield* Effect.logInfo("candidate", {
                id: c.id,
                symbol: c.symbol,
                side: c.side,
                price: c.price,
                ma10: c.ma10,
                ma30: c.ma30,
                delta: c.delta,
                ...(c.probability === undefined ? {} : { probability: c.probability })
              })
              yield* Metric.update(tickToCandidateSeconds.by({ symbol: c.symbol }), secondsBetween(c.origin.receivedAt, now))
            }
            yield* Metric.update(candidatesTotal, out.length)
          }
          yield* committer.commit(deliveries)
        })
      ),
      Effect.andThen(committer.flush)
    )
  }).pipe(Effect.scoped, Effect.annotateLogs({ stage: "signals" }))
