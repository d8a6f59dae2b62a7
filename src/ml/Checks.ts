/**
 * Look-ahead and warm-up checks, by experiment rather than by reading the code:
 * - look-ahead: recompute every feature (in SQL and in TypeScript) and the crossover signal on data cut at sampled
 *   trades, and report every value at or before the cut that differs from the value computed on all the data. A
 *   value that changes when later ticks are removed used those ticks.
 * - warm-up: for sampled trades, recompute each feature (and the signal) from only the last k ticks and report the
 *   smallest k from which the value equals the full-history one.
 */
import type { DuckDBConnection } from "@duckdb/node-api"
import { Effect } from "effect"
import type { Candidate, Tick } from "../domain/Messages.ts"
import { initialSignalState, stepSignal } from "../signals/SignalWorker.ts"
import { loadTicks } from "./Dataset.ts"
import { duck, numericColumns, rows, run, sqlString, tickFiles } from "./Duck.ts"
import { arrayHistory, compile, FEATURES, type Feature, featureSql, lookback, type TickArrays } from "./FeatureSpec.ts"

export interface Violation {
  readonly engine: "sql" | "ts" | "signal"
  readonly feature: string
  readonly symbol: string
  readonly tradeId: number
  /** Trade id of the last tick kept by the cut. */
  readonly cutTradeId: number
  readonly full: number | string
  readonly truncated: number | string
}

export interface LookaheadReport {
  readonly cuts: number
  readonly valuesCompared: number
  readonly violations: ReadonlyArray<Violation>
  /** Violations per feature (and "signal"). */
  readonly byFeature: Record<string, number>
}

export interface LookaheadOptions {
  readonly storeDir: string
  readonly symbols?: ReadonlyArray<string>
  readonly samples?: number
  readonly seed?: number
  readonly features?: ReadonlyArray<Feature>
  /** Trades before each cut whose values are compared. */
  readonly compare?: number
}

/** Relative tolerance for "the same value" (floating-point sums in another order differ in the last bits). */
export const TOLERANCE = 1e-9

const differs = (a: number, b: number): boolean =>
  Number.isNaN(a) !== Number.isNaN(b) || (!Number.isNaN(a) && Math.abs(a - b) > TOLERANCE * Math.max(1, Math.abs(b)))

const seeded = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0
    return s / 4_294_967_296
  }
}

interface SymbolTicks {
  readonly symbol: string
  readonly tradeId: Float64Array
  readonly t: Float64Array
  readonly price: Float64Array
  readonly size: Float64Array
  readonly buy: Float64Array
  readonly length: number
}

const readSymbols = (c: DuckDBConnection) =>
  Effect.gen(function*() {
    const symbols = (yield* rows(c, "list symbols", "SELECT DISTINCT symbol FROM ticks ORDER BY symbol")).map((r) => String(r.symbol))
    const out: Array<SymbolTicks> = []
    for (const symbol of symbols) {
      const { length, columns } = yield* numericColumns(
        c,
        "read ticks",
        `SELECT trade_id, t, price, size, buy FROM ticks WHERE symbol = ${sqlString(symbol)} ORDER BY t, trade_id`,
        ["tradeId", "t", "price", "size", "buy"]
      )
      out.push({ symbol, length, tradeId: columns.tradeId, t: columns.t, price: columns.price, size: columns.size, buy: columns.buy })
    }
    return out
  })

const ticksOf = (s: SymbolTicks, end: number): Array<Tick> => {
  const out: Array<Tick> = []
  for (let i = 0; i < end; i++) {
    out.push({ symbol: s.symbol, price: s.price[i], size: s.size[i], side: s.buy[i] === 1 ? "BUY" : "SELL", tradeId: s.tradeId[i], ts: s.t[i], receivedAt: s.t[i] })
  }
  return out
}

const candidatesOf = (ticks: ReadonlyArray<Tick>, from = 0): Array<Candidate> => {
  const state = initialSignalState()
  const out: Array<Candidate> = []
  for (let i = from; i < ticks.length; i++) {
    const c = stepSignal(state, ticks[i])
    if (c !== undefined) out.push(c)
  }
  return out
}

const sliceArrays = (s: SymbolTicks, end: number): TickArrays => ({
  price: s.price.subarray(0, end),
  size: s.size.subarray(0, end),
  buy: s.buy.subarray(0, end),
  t: s.t.subarray(0, end)
})

export const checkLookahead = (options: LookaheadOptions) =>
  Effect.gen(function*() {
    const features = options.features ?? FEATURES
    const compare = options.compare ?? 64
    const samples = options.samples ?? 20
    const rand = seeded(options.seed ?? 1)
    const files = yield* tickFiles(options.storeDir, options.symbols)
    const c = yield* duck()
    yield* loadTicks(c, files, options.symbols === undefined ? {} : { symbols: options.symbols })
    const data = (yield* readSymbols(c)).filter((s) => s.length > 1)
    if (data.length === 0) return { cuts: 0, valuesCompared: 0, violations: [], byFeature: {} } satisfies LookaheadReport

    // cut points: (symbol, index of the last kept tick), spread over the data
    const context = Math.max(0, ...features.map((f) => lookback(f.expr))) + compare + 1
    const cuts: Array<{ readonly id: number; readonly s: SymbolTicks; readonly end: number }> = []
    for (let k = 0; k < samples; k++) {
      const s = data[k % data.length]
      cuts.push({ id: k, s, end: 1 + Math.floor(rand() * (s.length - 1)) }) // keep ticks [0, end)
    }

    const violations: Array<Violation> = []
    let compared = 0

    // SQL: every cut is its own partition (symbol#cut) over the `context` ticks before it
    yield* run(c, "look-ahead check", "CREATE OR REPLACE TEMP TABLE ranked AS SELECT *, row_number() OVER (PARTITION BY symbol ORDER BY t, trade_id) AS k FROM ticks")
    yield* run(c, "look-ahead check", "CREATE OR REPLACE TEMP TABLE cuts (cut INTEGER, symbol VARCHAR, lo BIGINT, hi BIGINT)")
    yield* run(
      c,
      "look-ahead check",
      `INSERT INTO cuts VALUES ${cuts.map((x) => `(${x.id}, ${sqlString(x.s.symbol)}, ${Math.max(1, x.end - context + 1)}, ${x.end})`).join(", ")}`
    )
    yield* run(
      c,
      "look-ahead check",
      `CREATE OR REPLACE TEMP TABLE truncated_ticks AS SELECT r.symbol || '#' || cuts.cut AS symbol, r.trade_id, r.t, r.price, r.size, r.buy
       FROM ranked r JOIN cuts ON r.symbol = cuts.symbol AND r.k BETWEEN cuts.lo AND cuts.hi`
    )
    yield* run(c, "look-ahead check", `CREATE OR REPLACE TEMP TABLE full_features AS ${featureSql("ticks", features)}`)
    yield* run(c, "look-ahead check", `CREATE OR REPLACE TEMP TABLE cut_features AS ${featureSql("truncated_ticks", features)}`)
    const names = features.map((f) => f.name)
    const q = (n: string) => `"${n.replaceAll("\"", "")}"`
    const pairs = yield* rows(
      c,
      "look-ahead check",
      `SELECT cuts.cut, cuts.symbol, c.trade_id, ${names.map((n) => `c.${q(n)} AS ${q(`c_${n}`)}, f.${q(n)} AS ${q(`f_${n}`)}`).join(", ")}
       FROM cut_features c JOIN cuts ON c.symbol = cuts.symbol || '#' || cuts.cut
       JOIN full_features f ON f.symbol = cuts.symbol AND f.trade_id = c.trade_id
       -- only trades with a full look-back inside the cut window, and near the cut
       WHERE c.rn > ${context - compare} OR cuts.lo = 1`
    )
    const cutById = new Map(cuts.map((x) => [x.id, x]))
    const num = (v: unknown): number => (v === null || v === undefined ? Number.NaN : Number(v))
    for (const p of pairs) {
      const cut = cutById.get(Number(p.cut))!
      for (const n of names) {
        compared++
        const a = num(p[`f_${n}`])
        const b = num(p[`c_${n}`])
        if (differs(b, a)) {
          violations.push({ engine: "sql", feature: n, symbol: cut.s.symbol, tradeId: Number(p.trade_id), cutTradeId: cut.s.tradeId[cut.end - 1], full: a, truncated: b })
        }
      }
    }

    // TypeScript (the live path) and the crossover signal
    const evals = features.map((f) => compile(f.expr))
    const fullCandidates = new Map(data.map((s) => [s.symbol, candidatesOf(ticksOf(s, s.length))]))
    for (const cut of cuts) {
      const s = cut.s
      const truncated = sliceArrays(s, cut.end)
      for (let i = Math.max(0, cut.end - compare); i < cut.end; i++) {
        const hFull = arrayHistory(s, i)
        const hCut = arrayHistory(truncated, i)
        evals.forEach((ev, k) => {
          compared++
          const a = ev(hFull, 0)
          const b = ev(hCut, 0)
          if (differs(b, a)) violations.push({ engine: "ts", feature: names[k], symbol: s.symbol, tradeId: s.tradeId[i], cutTradeId: s.tradeId[cut.end - 1], full: a, truncated: b })
        })
      }
      const lastKept = s.tradeId[cut.end - 1]
      const describe = (x: Candidate | undefined) => (x === undefined ? "none" : `${x.side} ma10=${x.ma10} ma30=${x.ma30}`)
      const before = new Map(fullCandidates.get(s.symbol)!.filter((x) => x.tickTradeId <= lastKept).map((x) => [x.tickTradeId, x]))
      const after = new Map(candidatesOf(ticksOf(s, cut.end)).map((x) => [x.tickTradeId, x]))
      for (const id of new Set([...before.keys(), ...after.keys()])) {
        compared++
        const a = before.get(id)
        const b = after.get(id)
        if (describe(a) !== describe(b)) {
          violations.push({ engine: "signal", feature: "signal", symbol: s.symbol, tradeId: id, cutTradeId: lastKept, full: describe(a), truncated: describe(b) })
        }
      }
    }
    const byFeature: Record<string, number> = {}
    for (const v of violations) byFeature[v.feature] = (byFeature[v.feature] ?? 0) + 1
    return { cuts: cuts.length, valuesCompared: compared, violations, byFeature } satisfies LookaheadReport
  }).pipe(Effect.scoped, Effect.withSpan("Checks.lookahead"))

export const formatLookahead = (r: LookaheadReport): string => {
  const lines = [`look-ahead check: ${r.cuts} cuts, ${r.valuesCompared.toLocaleString("en-US")} values compared (tolerance ${TOLERANCE} relative)`]
  if (r.violations.length === 0) {
    lines.push("OK: no feature or signal value changed when later ticks were removed")
  } else {
    lines.push(`FAILED: ${r.violations.length} values changed when later ticks were removed:`)
    for (const [f, n] of Object.entries(r.byFeature)) lines.push(`  ${f.padEnd(16)} ${n}`)
    for (const v of r.violations.slice(0, 10)) {
      lines.push(`  e.g. [${v.engine}] ${v.feature} ${v.symbol} trade ${v.tradeId} (cut after ${v.cutTradeId}): ${v.full} with all data, ${v.truncated} cut`)
    }
  }
  return lines.join("\n")
}

// ---------------------------------------------------------------------------------------------------------------

export interface WarmupRow {
  readonly feature: string
  /** From the definition: ticks read, including the current one. */
  readonly declared: number
  /** Measured: the most ticks any sample needed before its value equalled the full-history one. */
  readonly measured: number
}

/**
 * Ticks of history (including the current one) each feature and the signal need before their value no longer
 * depends on where the data started. `maxTicks` bounds the search; a feature that never settles reports it + 1.
 */
export const warmupOf = (ticks: ReadonlyArray<Tick>, features: ReadonlyArray<Feature> = FEATURES, samples = 20, maxTicks = 200, seed = 1): ReadonlyArray<WarmupRow> => {
  const rand = seeded(seed)
  const bySymbol = new Map<string, Array<Tick>>()
  for (const t of ticks) {
    let list = bySymbol.get(t.symbol)
    if (list === undefined) bySymbol.set(t.symbol, (list = []))
    list.push(t)
  }
  const series = [...bySymbol.values()].filter((l) => l.length > maxTicks + 1)
  if (series.length === 0) return []
  const points: Array<{ readonly list: ReadonlyArray<Tick>; readonly arrays: TickArrays; readonly i: number }> = []
  const arraysOf = new Map(series.map((l) => [l, { price: l.map((t) => t.price), size: l.map((t) => t.size), buy: l.map((t) => (t.side === "BUY" ? 1 : 0)), t: l.map((t) => t.ts) }]))
  for (let k = 0; k < samples; k++) {
    const list = series[k % series.length]
    points.push({ list, arrays: arraysOf.get(list)!, i: maxTicks + Math.floor(rand() * (list.length - maxTicks)) })
  }
  const needed = (same: (p: (typeof points)[number], k: number) => boolean): number => {
    let worst = 0
    for (const p of points) {
      let k = maxTicks
      while (k >= 1 && same(p, k)) k--
      worst = Math.max(worst, k + 1)
    }
    return worst
  }
  const out: Array<WarmupRow> = features.map((f) => {
    const ev = compile(f.expr)
    const measured = needed((p, k) => {
      const full = ev(arrayHistory(p.arrays, p.i), 0)
      const part = ev(arrayHistory(p.arrays, p.i, p.i - k + 1), 0)
      return !differs(part, full)
    })
    return { feature: f.name, declared: lookback(f.expr) + 1, measured }
  })
  // the signal: the candidate (or none) at tick i, from the last k ticks only
  const signalAt = (list: ReadonlyArray<Tick>, from: number, i: number): string => {
    const state = initialSignalState()
    let last: Candidate | undefined
    for (let j = from; j <= i; j++) last = stepSignal(state, list[j])
    return last === undefined ? "none" : last.side
  }
  // sampled at ticks where the full history gives a candidate (elsewhere "none" matches trivially)
  const crossings: Array<(typeof points)[number]> = []
  for (const list of series) {
    const state = initialSignalState()
    list.forEach((t, i) => {
      if (stepSignal(state, t) !== undefined && i >= maxTicks) crossings.push({ list, arrays: arraysOf.get(list)!, i })
    })
  }
  let measured = 0
  for (const p of crossings.slice(0, samples)) {
    let k = maxTicks
    while (k >= 1 && signalAt(p.list, p.i - k + 1, p.i) === signalAt(p.list, 0, p.i)) k--
    measured = Math.max(measured, k + 1)
  }
  out.push({ feature: "signal", declared: 31, measured })
  return out
}

export const formatWarmup = (rows: ReadonlyArray<WarmupRow>): string =>
  [
    `${"feature".padEnd(16)} ${"declared".padStart(8)} ${"measured".padStart(8)}   (ticks of history, including the current one)`,
    ...rows.map((r) => `${r.feature.padEnd(16)} ${String(r.declared).padStart(8)} ${String(r.measured).padStart(8)}${r.measured > r.declared ? "   ← needs more than it declares" : ""}`)
  ].join("\n")

/** Reads a store's ticks (all symbols, or some) as Tick objects, in (ts, trade_id) order per symbol. */
export const readStoreTicks = (storeDir: string, symbols?: ReadonlyArray<string>, limitPerSymbol = 5000) =>
  Effect.gen(function*() {
    const files = yield* tickFiles(storeDir, symbols)
    const c = yield* duck()
    yield* loadTicks(c, files, symbols === undefined ? {} : { symbols })
    const data = yield* readSymbols(c)
    return data.flatMap((s) => ticksOf(s, Math.min(s.length, limitPerSymbol)))
  }).pipe(Effect.scoped)
