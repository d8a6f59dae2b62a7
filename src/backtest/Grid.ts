/**
 * Parameter sweeps: `--grid fast=5,10,20 slow=30,60,120` becomes one variant per combination, all replayed over ONE
 * read of the ticks; then ranked by a metric, and with `--walk-forward N` scored out of sample: the period is cut
 * into N + 1 equal windows and, for each fold k = 1…N, the best variant on window k − 1 (in sample) is scored on
 * window k (out of sample). The strategies run continuously; a window's figures come from the equity samples and
 * the round trips that closed inside it.
 */
import type { RiskLimits } from "../risk/RiskGate.ts"
import { type SignalWindows, windowsProblem } from "../signals/SignalWorker.ts"
import { computeMetrics, type Metrics, RANK_METRICS, type RankMetric, rankBy } from "./Metrics.ts"
import type { ReplayPlan, Variant, VariantResult } from "./Replay.ts"

/** Grid keys and what they set. */
const KEYS = {
  fast: (v: number) => ({ windows: { fast: v } }),
  slow: (v: number) => ({ windows: { slow: v } }),
  qty: (v: number) => ({ limits: { orderQty: v } }),
  "max-position": (v: number) => ({ limits: { maxPosition: v } }),
  "trades-per-minute": (v: number) => ({ limits: { maxTradesPerMinute: v } }),
  "trades-per-hour": (v: number) => ({ limits: { maxTradesPerHour: v } })
} as const
type Key = keyof typeof KEYS
export const GRID_KEYS = Object.keys(KEYS) as ReadonlyArray<Key>

export type GridSpec = ReadonlyArray<readonly [Key, ReadonlyArray<number>]>

/** "fast=5,10,20" tokens (also several in one string, space-separated) → axes; an error line on bad input. */
export const parseGrid = (tokens: ReadonlyArray<string>): GridSpec | string => {
  const axes = new Map<Key, Array<number>>()
  for (const token of tokens.flatMap((t) => t.trim().split(/\s+/)).filter((t) => t.length > 0)) {
    const m = /^([a-z-]+)=(.+)$/.exec(token)
    if (m === null) return `--grid: "${token}" is not key=v1,v2,… (keys: ${GRID_KEYS.join(", ")})`
    const key = m[1] as Key
    if (!(key in KEYS)) return `--grid: unknown key "${m[1]}" (keys: ${GRID_KEYS.join(", ")})`
    const values = m[2].split(",").map((v) => v.trim())
    const nums = values.map(Number)
    const bad = values.filter((v, i) => v === "" || !Number.isFinite(nums[i]) || nums[i] <= 0)
    if (bad.length > 0) return `--grid: ${key}=${m[2]}: values must be positive numbers`
    axes.set(key, [...new Set([...(axes.get(key) ?? []), ...nums])])
  }
  if (axes.size === 0) return `--grid: give at least one axis, e.g. --grid fast=5,10,20 slow=30,60,120`
  return [...axes]
}

export interface Combination {
  readonly windows: SignalWindows
  readonly limits: RiskLimits
  readonly name: string
}

/** Every combination of the axes over the base parameters; combinations whose windows cannot work are left out. */
export const combinations = (
  spec: GridSpec,
  base: { readonly windows: SignalWindows; readonly limits: RiskLimits }
): { readonly combos: ReadonlyArray<Combination>; readonly invalid: ReadonlyArray<string> } => {
  let acc: Array<{ windows: SignalWindows; limits: RiskLimits; parts: Array<string> }> = [{ ...base, parts: [] }]
  for (const [key, values] of spec) {
    const next: typeof acc = []
    for (const a of acc) {
      for (const v of values) {
        const patch = KEYS[key](v) as { windows?: Partial<SignalWindows>; limits?: Partial<RiskLimits> }
        next.push({
          windows: { ...a.windows, ...patch.windows },
          limits: { ...a.limits, ...patch.limits },
          parts: [...a.parts, `${key}=${v}`]
        })
      }
    }
    acc = next
  }
  const combos: Array<Combination> = []
  const invalid: Array<string> = []
  for (const a of acc) {
    const name = a.parts.join(" ")
    if (windowsProblem(a.windows) !== undefined) invalid.push(name)
    else combos.push({ windows: a.windows, limits: a.limits, name })
  }
  return { combos, invalid }
}

export const variantsOf = (combos: ReadonlyArray<Combination>): Array<Variant> =>
  combos.map((c) => ({ name: c.name, windows: c.windows, limits: c.limits }))

/** Metrics of one variant over [from, to): equity samples inside it, round trips closed inside it. */
export const windowMetrics = (r: VariantResult, plan: ReplayPlan, from: number, to: number): Metrics => {
  let start = r.startingBalance
  const points = []
  for (const p of r.points) {
    if (p.ts <= from) start = p.equity
    else if (p.ts <= to) points.push(p)
  }
  const trades = r.trades.filter((t) => t.exitTs >= from && t.exitTs < to)
  return computeMetrics({
    startingBalance: start,
    from,
    to,
    points,
    periodMs: plan.periodMs,
    trades
  })
}

export interface Fold {
  readonly index: number
  readonly inSample: readonly [number, number]
  readonly outOfSample: readonly [number, number]
  /** Best variant in sample, its in-sample and out-of-sample metrics. */
  readonly best: string
  readonly inSampleMetrics: Metrics
  readonly outOfSampleMetrics: Metrics
  /** Out-of-sample rank of the in-sample choice among all variants (1 = it was also the best out of sample). */
  readonly outOfSampleRank: number
}

export const walkForward = (results: ReadonlyArray<VariantResult>, plan: ReplayPlan, folds: number, metric: RankMetric): Array<Fold> => {
  const periods = Math.floor((plan.to - plan.from) / plan.periodMs)
  const per = Math.max(1, Math.floor(periods / (folds + 1)))
  const edge = (k: number) => plan.from + k * per * plan.periodMs
  const out: Array<Fold> = []
  for (let k = 1; k <= folds; k++) {
    const is = [edge(k - 1), edge(k)] as const
    const oos = [edge(k), k === folds ? Math.max(edge(k + 1), plan.to) : edge(k + 1)] as const
    const inSample = results.map((r) => ({ r, m: windowMetrics(r, plan, is[0], is[1]) }))
    const best = rankBy(inSample, (x) => x.m, metric)[0]
    const outOfSample = results.map((r) => ({ r, m: windowMetrics(r, plan, oos[0], oos[1]) }))
    const ranked = rankBy(outOfSample, (x) => x.m, metric)
    const chosen = outOfSample.find((x) => x.r === best.r)!
    out.push({
      index: k,
      inSample: is,
      outOfSample: oos,
      best: best.r.variant.name,
      inSampleMetrics: best.m,
      outOfSampleMetrics: chosen.m,
      outOfSampleRank: ranked.indexOf(chosen) + 1
    })
  }
  return out
}

export const metricValue = (m: Metrics, metric: RankMetric): number | undefined => RANK_METRICS[metric].of(m)
