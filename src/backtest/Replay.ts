/**
 * Replay as a backtest: stored ticks → the SAME pure functions the live stages run (`stepSignal` with the
 * variant's windows, `decide` with the tick's time as the clock, `applyOrder`) → paper execution under the live
 * order rules (`PaperExecution.ts`: `prepareMarketOrder`, exchange filters, latency, fees, balance) → fills applied
 * through the same position book. Several variants (a parameter grid, a model-gated run) share ONE read of the
 * ticks: each has its own signal, risk and paper state, and sees every tick in the same order.
 */
import { Clock, Effect } from "effect"
import type { Approved, Candidate, OrderEvent, OrderFilled, Tick } from "../domain/Messages.ts"
import { DUST } from "../orders/PositionBook.ts"
import { applyOrder, type Decision, decide, initialRiskState, type RiskLimits } from "../risk/RiskGate.ts"
import { DEFAULT_WINDOWS, initialSignalState, type SignalState, type SignalWindows } from "../signals/SignalWorker.ts"
import { stepSignal } from "../signals/SignalWorker.ts"
import { forEachTick, type SourceStats, type TickFilter } from "../storage/ParquetSource.ts"
import { computeMetrics, type Drawdown, DrawdownTracker, type EquityPoint, type Metrics, type RoundTrip } from "./Metrics.ts"
import { DEFAULT_BALANCE, noFilters, type PaperOptions, paperFill, rejection, type Submitted, submit } from "./PaperExecution.ts"

export { type PaperOptions, paperFill, quoteAssetOf } from "./PaperExecution.ts"

/** What a candidate filter (e.g. a model) sees: the candidate, the variant's signal state and the tick that crossed. */
export interface GateContext {
  readonly signal: SignalState
  /** The tick that produced the candidate (a reused object: read it in the call). */
  readonly tick: Tick
}

/** Per-candidate gate: `false` or a probability below the variant's `minProbability` rejects it (reason "Model"). */
export type CandidateGate = (candidate: Candidate, context: GateContext) => boolean | number

/** One strategy configuration replayed: windows, risk limits and an optional candidate gate. */
export interface Variant {
  readonly name: string
  readonly windows: SignalWindows
  readonly limits: RiskLimits
  readonly gate?: CandidateGate
  /** Threshold for a gate returning a probability (default 0.5). */
  readonly minProbability?: number
}

/** The measured period and the period basis of the equity samples (Sharpe/Sortino returns). */
export interface ReplayPlan {
  readonly from: number
  readonly to: number
  readonly periodMs: number
}

export interface ReplaySummary {
  readonly ticks: number
  readonly duplicates: number
  readonly candidates: number
  readonly approved: number
  readonly rejected: number
  /** Fills (each open and each close is one trade). */
  readonly trades: number
  /** Closed round trips and how many ended with a gain (fees included). */
  readonly roundTrips: number
  readonly wins: number
  readonly winRate: number
  readonly realizedPnl: number
  /** Largest fall of equity (realized + open positions marked at the last price) from its running peak. */
  readonly maxDrawdown: number
  readonly fees: number
  readonly firstTs: number | undefined
  readonly lastTs: number | undefined
}

/** What a report wants to see, as it happens. */
export interface ReplayObserver {
  /** `tick` is one reused object during a replay: read it in the call, never keep it. */
  readonly onTick?: (tick: Tick, signal: SignalState, equity: number) => void
  readonly onCandidate?: (candidate: Candidate, decision: Decision) => void
  readonly onFill?: (fill: OrderFilled, realizedDelta: number) => void
  /** Every order event paper execution produces (fills and rejections), as live would publish them. */
  readonly onOrder?: (event: OrderEvent) => void
}

export interface SymbolResult {
  roundTrips: number
  wins: number
  pnl: number
  fees: number
}

/** Everything one variant's replay produced. */
export interface VariantResult {
  readonly variant: Variant
  readonly summary: ReplaySummary
  readonly trades: ReadonlyArray<RoundTrip>
  readonly fills: ReadonlyArray<OrderFilled>
  /** Equity at each period boundary of the plan reached by the data. */
  readonly points: ReadonlyArray<EquityPoint>
  readonly endingEquity: number
  readonly drawdown: Drawdown
  readonly exposureMs: number
  /** reason → count: risk rejections, the gate ("Model"), order preparation refusals, balance. */
  readonly rejections: ReadonlyMap<string, number>
  readonly perSymbol: ReadonlyMap<string, SymbolResult>
  /** Orders still waiting for their latency when the data ended. */
  readonly unfilled: number
  readonly startingBalance: number
}

const WINDOWS_DEFAULT = DEFAULT_WINDOWS

/** The backtest state machine of one variant: feed ticks in order, read the result at the end. No I/O, no clock. */
export const makeVariantReplayer = (
  variant: Variant,
  paper: PaperOptions,
  plan?: ReplayPlan,
  observer: ReplayObserver = {}
) => {
  const limits = variant.limits
  const signal = initialSignalState(variant.windows)
  const risk = initialRiskState(0)
  const rulesOf = paper.rules ?? ((symbol: string) => noFilters(symbol))
  const latencyMs = Math.max(0, paper.latencyMs ?? 0)
  const balance = paper.startingBalance ?? DEFAULT_BALANCE
  const minProbability = variant.minProbability ?? 0.5
  const gate = variant.gate
  const unrealized = new Map<string, number>()
  const pending = new Map<string, Extract<Submitted, { _tag: "Ready" }>>()
  const entries = new Map<string, { readonly id: string; readonly ts: number; readonly price: number; readonly qty: number; readonly fees: number }>()
  const rejections = new Map<string, number>()
  const perSymbol = new Map<string, SymbolResult>()
  const trades: Array<RoundTrip> = []
  const fills: Array<OrderFilled> = []
  const points: Array<EquityPoint> = []
  const periodMs = plan?.periodMs ?? 60_000
  let nextBoundary = plan === undefined ? Number.NaN : plan.from + periodMs
  const dd = new DrawdownTracker(balance, plan?.from)
  let ticks = 0
  let candidates = 0
  let approved = 0
  let rejected = 0
  let tradeCount = 0
  let wins = 0
  let realized = 0
  let fees = 0
  let openValue = 0 // Σ unrealized
  let openCount = 0
  let exposedSince = 0
  let exposureMs = 0
  // first and last tick time in an object's fields (valid once `ticks` > 0): a double kept in a closure's `let` is
  // a new heap number at every store, i.e. per tick
  const seen = { firstTs: 0, lastTs: 0 }
  let orderId = 0
  let tickCtx: Tick | undefined

  const count = (reason: string) => rejections.set(reason, (rejections.get(reason) ?? 0) + 1)
  const symbolResult = (symbol: string): SymbolResult => {
    let r = perSymbol.get(symbol)
    if (r === undefined) perSymbol.set(symbol, (r = { roundTrips: 0, wins: 0, pnl: 0, fees: 0 }))
    return r
  }

  const apply = (event: OrderEvent) => {
    applyOrder(risk, event)
    observer.onOrder?.(event)
  }

  const cash = (): number => {
    let spent = 0
    for (const p of risk.positions.values()) if (p.qty > DUST) spent += p.cost
    return balance + realized - spent
  }

  const setUnrealized = (symbol: string, value: number) => {
    const before = unrealized.get(symbol) ?? 0
    if (value !== before) {
      unrealized.set(symbol, value)
      openValue += value - before
    }
  }

  /** Fills a prepared order at `price` (a trade of its symbol at `ts`). */
  const execute = (ready: Extract<Submitted, { _tag: "Ready" }>, price: number, ts: number, tradeId: number) => {
    const a = ready.approved
    const symbol = a.candidate.symbol
    const fill = paperFill(a, ready.qty, price, ts, paper, ++orderId, tradeId)
    if (a.orderSide === "BUY" && fill.quoteQty + fill.commission > cash() + 1e-9) {
      apply(rejection(a, ts, -2010, "Account has insufficient balance for requested action."))
      rejected++
      approved--
      count("InsufficientBalance")
      return
    }
    const before = risk.positions.get(symbol)
    apply(fill)
    const after = risk.positions.get(symbol)
    const delta = (after?.realizedPnl ?? 0) - (before?.realizedPnl ?? 0)
    const feeDelta = (after?.fees ?? 0) - (before?.fees ?? 0)
    tradeCount++
    fees += feeDelta
    realized += delta
    fills.push(fill)
    const sr = symbolResult(symbol)
    sr.fees += feeDelta
    const wasOpen = before !== undefined && before.qty > DUST
    const isOpen = after !== undefined && after.qty > DUST
    if (fill.action === "OPEN") {
      entries.set(symbol, { id: a.id, ts, price: fill.avgPrice, qty: fill.executedQty, fees: feeDelta })
    } else {
      const entry = entries.get(symbol)
      entries.delete(symbol)
      sr.roundTrips++
      sr.pnl += delta
      if (delta > 0) {
        wins++
        sr.wins++
      }
      if (entry !== undefined) {
        trades.push({
          symbol,
          entrySignalId: entry.id,
          exitSignalId: a.id,
          entryTs: entry.ts,
          exitTs: ts,
          entryPrice: entry.price,
          exitPrice: fill.avgPrice,
          qty: entry.qty,
          pnl: delta,
          fees: entry.fees + feeDelta
        })
      }
    }
    if (!wasOpen && isOpen) {
      if (openCount++ === 0) exposedSince = ts
    } else if (wasOpen && !isOpen) {
      if (--openCount === 0) exposureMs += ts - exposedSince
      setUnrealized(symbol, 0)
    }
    observer.onFill?.(fill, delta)
  }

  const onApproved = (a: Approved, tick: Tick) => {
    const s = submit(a, rulesOf(a.candidate.symbol, tick.ts), tick.ts, latencyMs)
    if (s._tag === "Refused") {
      apply(s.event)
      approved--
      rejected++
      count(s.category)
      return
    }
    if (s.due <= tick.ts) execute(s, tick.price, tick.ts, tick.tradeId)
    else pending.set(a.candidate.symbol, s)
  }

  const gateContext = { signal, get tick() { return tickCtx! } } as GateContext

  const step = (tick: Tick): Candidate | undefined => {
    ticks++
    const ts = tick.ts
    if (ticks === 1) {
      seen.firstTs = ts
      if (Number.isNaN(nextBoundary)) nextBoundary = ts + periodMs
    }
    seen.lastTs = ts
    // equity at each period boundary passed (before this tick moves anything)
    while (ts >= nextBoundary) {
      points.push({ ts: nextBoundary, equity: balance + realized + openValue })
      nextBoundary += periodMs
    }
    const symbol = tick.symbol
    if (pending.size > 0) {
      const due = pending.get(symbol)
      if (due !== undefined && ts >= due.due) {
        pending.delete(symbol)
        execute(due, tick.price, ts, tick.tradeId)
      }
    }
    const candidate = stepSignal(signal, tick)
    if (candidate !== undefined) {
      candidates++
      let decision: Decision | undefined
      if (gate !== undefined) {
        tickCtx = tick
        const g = gate(candidate, gateContext)
        const pass = typeof g === "number" ? g >= minProbability : g
        if (!pass) {
          rejected++
          count("Model")
        } else decision = decide(risk, limits, candidate, ts)
      } else decision = decide(risk, limits, candidate, ts)
      if (decision !== undefined) {
        if (decision._tag === "Approved") {
          approved++
          onApproved(decision, tick)
        } else {
          rejected++
          count(decision.reason)
        }
        observer.onCandidate?.(candidate, decision)
      }
    }
    if (openCount > 0) {
      const p = risk.positions.get(symbol)
      if (p !== undefined && p.qty > DUST) setUnrealized(symbol, p.qty * tick.price - p.cost)
    }
    const equity = balance + realized + openValue
    dd.offer(equity, ts)
    observer.onTick?.(tick, signal, equity - balance)
    return candidate
  }

  const equity = () => balance + realized + openValue

  const summary = (duplicates = 0): ReplaySummary => {
    let roundTrips = 0
    for (const r of perSymbol.values()) roundTrips += r.roundTrips
    return {
      ticks,
      duplicates,
      candidates,
      approved,
      rejected,
      trades: tradeCount,
      roundTrips,
      wins,
      winRate: roundTrips === 0 ? 0 : wins / roundTrips,
      realizedPnl: realized,
      maxDrawdown: dd.amount,
      fees,
      firstTs: ticks === 0 ? undefined : seen.firstTs,
      lastTs: ticks === 0 ? undefined : seen.lastTs
    }
  }

  const result = (duplicates = 0): VariantResult => ({
    variant,
    summary: summary(duplicates),
    trades,
    fills,
    points,
    endingEquity: equity(),
    drawdown: dd.result(),
    exposureMs: exposureMs + (openCount > 0 && ticks > 0 ? seen.lastTs - exposedSince : 0),
    rejections,
    perSymbol,
    unfilled: pending.size,
    startingBalance: balance
  })

  return { step, summary, result, equity, signal, risk }
}

export type VariantReplayer = ReturnType<typeof makeVariantReplayer>

/** The default variant: live's windows (SIGNAL_FAST / SIGNAL_SLOW) and risk limits. */
export const baseVariant = (limits: RiskLimits, windows: SignalWindows = WINDOWS_DEFAULT, name = "base"): Variant => ({ name, windows, limits })

/** One variant with the default windows (what `replay` without a grid runs). */
export const makeReplayer = (limits: RiskLimits, paper: PaperOptions, observer: ReplayObserver = {}, plan?: ReplayPlan) =>
  makeVariantReplayer(baseVariant(limits), paper, plan, observer)

/** The summary metrics of a variant's result over its plan. */
export const metricsOf = (r: VariantResult, plan: ReplayPlan): Metrics =>
  computeMetrics({
    startingBalance: r.startingBalance,
    from: plan.from,
    to: plan.to,
    points: r.points,
    periodMs: plan.periodMs,
    endingEquity: r.endingEquity,
    trades: r.trades,
    fees: r.summary.fees,
    drawdown: r.drawdown,
    exposure: plan.to > plan.from ? r.exposureMs / (plan.to - plan.from) : undefined
  })

export interface ReplayProgress {
  readonly ticks: number
  readonly lastTs: number | undefined
  readonly elapsedMs: number
}

/** Sees every tick after all variants stepped it (the report's recorder). */
export interface TickListener {
  readonly onTick: (tick: Tick) => void
}

/**
 * Replays the stored ticks at `path` ONCE through every variant; `onProgress` is called about once a second (Clock).
 * Results come back in the variants' order.
 */
export const replayVariants = (
  path: string,
  filter: TickFilter,
  variants: ReadonlyArray<Variant>,
  paper: PaperOptions,
  options: {
    readonly plan?: ReplayPlan
    readonly observers?: ReadonlyArray<ReplayObserver | undefined>
    readonly listener?: (replayers: ReadonlyArray<VariantReplayer>) => TickListener
    readonly onProgress?: (p: ReplayProgress) => Effect.Effect<void>
  } = {}
) =>
  Effect.gen(function*() {
    const stats: SourceStats = { rows: 0, duplicates: 0 }
    const replayers = variants.map((v, i) => makeVariantReplayer(v, paper, options.plan, options.observers?.[i]))
    const listener = options.listener?.(replayers)
    const started = yield* Clock.currentTimeMillis
    let lastReport = started
    const progress = options.onProgress
    const first = replayers[0]
    const onTick = replayers.length === 1 && listener === undefined
      ? first.step
      : (tick: Tick) => {
        for (let i = 0; i < replayers.length; i++) replayers[i].step(tick)
        listener?.onTick(tick)
      }
    yield* Effect.scoped(
      forEachTick(
        path,
        filter,
        stats,
        onTick,
        progress === undefined ? Effect.void : Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          if (now - lastReport >= 1000) {
            lastReport = now
            const s = first.summary()
            yield* progress({ ticks: s.ticks, lastTs: s.lastTs, elapsedMs: now - started })
          }
        })
      )
    )
    const ended = yield* Clock.currentTimeMillis
    // rowsRead: rows DuckDB handed over, once for all variants (one read)
    return { results: replayers.map((r) => r.result(stats.duplicates)), duplicates: stats.duplicates, rowsRead: stats.rows, elapsedMs: ended - started }
  })

/** Replays the stored ticks at `path` with live's default windows; `onProgress` is called about once a second (Clock). */
export const replay = (
  path: string,
  filter: TickFilter,
  limits: RiskLimits,
  paper: PaperOptions,
  options: { readonly observer?: ReplayObserver; readonly onProgress?: (p: ReplayProgress) => Effect.Effect<void>; readonly plan?: ReplayPlan } = {}
) =>
  replayVariants(path, filter, [baseVariant(limits)], paper, {
    ...(options.plan === undefined ? {} : { plan: options.plan }),
    observers: [options.observer],
    ...(options.onProgress === undefined ? {} : { onProgress: options.onProgress })
  }).pipe(Effect.map(({ results, elapsedMs }) => ({ summary: results[0].summary, result: results[0], elapsedMs })))

export const formatSummary = (s: ReplaySummary, elapsedMs?: number): string => {
  const iso = (t: number | undefined) => (t === undefined ? "-" : new Date(t).toISOString())
  const n = (x: number, d = 6) => (Number.isInteger(x) ? String(x) : x.toFixed(d))
  const lines = [
    ["ticks", `${s.ticks}${s.duplicates > 0 ? ` (${s.duplicates} duplicates dropped)` : ""}`],
    ["period", `${iso(s.firstTs)} → ${iso(s.lastTs)}`],
    ["candidates", String(s.candidates)],
    ["approved", String(s.approved)],
    ["rejected", String(s.rejected)],
    ["trades", `${s.trades} (${s.roundTrips} round trips)`],
    ["realized PnL", n(s.realizedPnl)],
    ["max drawdown", n(s.maxDrawdown)],
    ["win rate", s.roundTrips === 0 ? "-" : `${(s.winRate * 100).toFixed(1)} % (${s.wins}/${s.roundTrips})`],
    ["fees", n(s.fees)]
  ]
  if (elapsedMs !== undefined && elapsedMs > 0) {
    lines.push(["speed", `${Math.round(s.ticks / (elapsedMs / 1000)).toLocaleString("en-US")} ticks/s (${(elapsedMs / 1000).toFixed(2)} s)`])
  }
  return lines.map(([k, v]) => `${k.padEnd(13)} ${v}`).join("\n")
}
