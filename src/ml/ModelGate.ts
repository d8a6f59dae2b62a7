/**
 * The model gate on the signal path: every tick feeds a per-symbol history (de-duplicated like the signal worker),
 * each crossover candidate gets the model's features from that history (the same definitions the dataset used) and
 * goes on only when P(up) ≥ the threshold. Used by the live signal worker and by replay.
 */
import type { Candidate, Tick } from "../domain/Messages.ts"
import { makeTickHistory } from "./FeatureSpec.ts"
import type { Scorer } from "./Scorer.ts"

export type GateVerdict =
  | { readonly _tag: "Pass"; readonly candidate: Candidate }
  | { readonly _tag: "Filtered"; readonly candidate: Candidate; readonly reason: "below_threshold" | "unscorable"; readonly probability?: number }

export interface ModelGate {
  readonly scorer: Scorer
  readonly minProba: number
  /** Feed every tick, in order (duplicates, by trade id, are ignored). */
  readonly observe: (tick: Tick) => void
  /** Scores candidates (each at the tick that produced it, which must be the last observed of its symbol). */
  readonly judge: (candidates: ReadonlyArray<Candidate>) => Promise<ReadonlyArray<GateVerdict>>
}

/** Whether a candidate with probability `p` passes: P ≥ threshold, for a LONG (open) as for a SHORT (close). */
export const passes = (p: number, minProba: number): boolean => p >= minProba

export const makeModelGate = (scorer: Scorer, minProba: number): ModelGate => {
  const history = makeTickHistory(scorer.historyNeeded)
  const lastTradeId = new Map<string, number>()
  const f = scorer.features.length
  let rows = new Float32Array(f * 16)
  const observe = (tick: Tick): void => {
    const last = lastTradeId.get(tick.symbol)
    if (last !== undefined && tick.tradeId <= last) return
    lastTradeId.set(tick.symbol, tick.tradeId)
    history.push(tick.symbol, tick.price, tick.size, tick.side === "BUY" ? 1 : 0, tick.ts)
  }
  /** The feature rows must be taken now (before later ticks move the history); scoring may then await. */
  const judge = (candidates: ReadonlyArray<Candidate>): Promise<ReadonlyArray<GateVerdict>> => {
    if (rows.length < candidates.length * f) rows = new Float32Array(candidates.length * f * 2)
    const scorable: Array<number> = []
    candidates.forEach((c, i) => {
      const h = history.history(c.symbol)
      if (h !== undefined && scorer.vector(h, rows, scorable.length * f)) scorable.push(i)
    })
    const verdicts: Array<GateVerdict> = candidates.map((candidate) => ({ _tag: "Filtered", candidate, reason: "unscorable" }))
    if (scorable.length === 0) return Promise.resolve(verdicts)
    const batch = rows.slice(0, scorable.length * f)
    return scorer.score(batch, scorable.length).then((p) => {
      scorable.forEach((i, k) => {
        const probability = p[k]
        const candidate = { ...candidates[i], probability }
        verdicts[i] = passes(probability, minProba) ? { _tag: "Pass", candidate } : { _tag: "Filtered", candidate, reason: "below_threshold", probability }
      })
      return verdicts
    })
  }
  return { scorer, minProba, observe, judge }
}
