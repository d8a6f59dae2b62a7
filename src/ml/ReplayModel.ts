/**
 * The model-gated variant of a backtest. Replay's candidate gate is synchronous and onnxruntime is not, so the
 * model scores in a pass of its own first: the same ticks (same filter, same order, same de-duplication) through
 * the same signal rule and the live feature history, every candidate's features batched through the session.
 * The gate then looks each candidate's probability up by its deterministic id.
 */
import { Effect } from "effect"
import type { Variant } from "../backtest/Replay.ts"
import type { RiskLimits } from "../risk/RiskGate.ts"
import { initialSignalState, type SignalWindows, stepSignal } from "../signals/SignalWorker.ts"
import { forEachTick, type SourceStats, type TickFilter } from "../storage/ParquetSource.ts"
import { makeTickHistory } from "./FeatureSpec.ts"
import { fail } from "./Duck.ts"
import { loadScorer } from "./Scorer.ts"

export interface ModelVariantOptions {
  readonly modelPath: string
  readonly minProba: number
  readonly storePath: string
  readonly filter: TickFilter
  readonly windows: SignalWindows
  readonly limits: RiskLimits
}

const BATCH = 4096

/** Where an out-of-sample evaluation of the model starts: after the last tick its labels saw. */
export const trainedUntil = (modelPath: string) => Effect.scoped(loadScorer(modelPath)).pipe(Effect.map((s) => s.sidecar.trainedOn.to))

/** Scores every candidate of the replay and returns the "model" variant plus how many were scored. */
export const modelVariant = (o: ModelVariantOptions) =>
  Effect.gen(function*() {
    const scorer = yield* loadScorer(o.modelPath)
    const f = scorer.features.length
    const history = makeTickHistory(scorer.historyNeeded)
    const lastId = new Map<string, number>()
    const state = initialSignalState(o.windows)
    let rows = new Float32Array(BATCH * f)
    const ids: Array<string> = []
    const probabilities = new Map<string, number>()
    const stats: SourceStats = { rows: 0, duplicates: 0 }
    let unscorable = 0
    const flush = Effect.tryPromise({
      try: async () => {
        for (let base = 0; base < ids.length; base += BATCH) {
          const n = Math.min(BATCH, ids.length - base)
          const p = await scorer.score(rows.subarray(base * f, (base + n) * f), n)
          for (let k = 0; k < n; k++) probabilities.set(ids[base + k], p[k])
        }
      },
      catch: fail("score candidates")
    })
    yield* Effect.scoped(
      forEachTick(o.storePath, o.filter, stats, (tick) => {
        const last = lastId.get(tick.symbol)
        if (last === undefined || tick.tradeId > last) {
          lastId.set(tick.symbol, tick.tradeId)
          history.push(tick.symbol, tick.price, tick.size, tick.side === "BUY" ? 1 : 0, tick.ts)
        }
        const c = stepSignal(state, tick)
        if (c === undefined) return
        const h = history.history(c.symbol)
        if ((ids.length + 1) * f > rows.length) {
          const bigger = new Float32Array(rows.length * 2)
          bigger.set(rows)
          rows = bigger
        }
        if (h !== undefined && scorer.vector(h, rows, ids.length * f)) ids.push(c.id)
        else unscorable++
      })
    )
    yield* flush
    const variant: Variant = {
      name: `model P≥${o.minProba}`,
      windows: o.windows,
      limits: o.limits,
      minProbability: o.minProba,
      // a candidate the model could not score (no features) is held back, as live
      gate: (candidate) => probabilities.get(candidate.id) ?? false
    }
    return { variant, scored: probabilities.size, unscorable, trainedTo: scorer.sidecar.trainedOn.to }
  }).pipe(Effect.scoped, Effect.withSpan("ReplayModel.variant"))
