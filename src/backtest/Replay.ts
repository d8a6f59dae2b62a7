/**
 * Replay as a backtest: stored ticks → the SAME pure signal and risk functions the live stages run
 * (`stepSignal`, `decide`, `applyOrder`) → a paper execution layer that fills every approval at the tick's price
 * (± slippage, minus a fee) as an `OrderFilled` event, applied through the same position book. The risk gate's
 * clock is the tick's time, so trade caps behave as they would have live.
 */
import { Clock, Effect } from "effect"
import type { Approved, Candidate, OrderFilled, Tick } from "../domain/Messages.ts"
import { DUST, type Position } from "../orders/PositionBook.ts"
import { applyOrder, type Decision, decide, initialRiskState, type RiskLimits } from "../risk/RiskGate.ts"
import { initialSignalState, type SignalState, stepSignal } from "../signals/SignalWorker.ts"
import { forEachTick, type SourceStats, type TickFilter } from "../storage/ParquetSource.ts"

export interface PaperOptions {
  /** Fee rate on each fill's notional, charged in the quote asset (0.001 = 0.1 %, Binance's base taker fee). */
  readonly fee: number
  /** Adverse price move per fill, in basis points: buys fill higher, sells lower. */
  readonly slippageBps: number
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
}

const QUOTES = ["USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB"]
/** The quote asset a symbol is priced in (what fees are paid in, so the position book counts them as quote). */
export const quoteAssetOf = (symbol: string): string => QUOTES.find((q) => symbol.endsWith(q) && symbol !== q) ?? symbol.slice(-4)

/** The paper fill of an approval at `price` (before slippage). */
export const paperFill = (a: Approved, price: number, ts: number, paper: PaperOptions, orderId: number): OrderFilled => {
  const slip = paper.slippageBps / 10_000
  const fillPrice = a.orderSide === "BUY" ? price * (1 + slip) : price * (1 - slip)
  const quoteQty = a.qty * fillPrice
  const commission = quoteQty * paper.fee
  const commissionAsset = quoteAssetOf(a.candidate.symbol)
  return {
    _tag: "OrderFilled",
    signalId: a.id,
    clientOrderId: a.id,
    symbol: a.candidate.symbol,
    side: a.orderSide,
    action: a.action,
    qty: a.qty,
    ts,
    origin: a.origin,
    orderId,
    status: "FILLED",
    executedQty: a.qty,
    avgPrice: fillPrice,
    quoteQty,
    commission,
    commissionAsset,
    fills: [{ price: fillPrice, qty: a.qty, commission, commissionAsset }]
  }
}

/** The backtest's state machine: feed ticks in order, read the summary at the end. No I/O, no clock. */
export const makeReplayer = (limits: RiskLimits, paper: PaperOptions, observer: ReplayObserver = {}) => {
  const signal = initialSignalState()
  const risk = initialRiskState()
  const unrealized = new Map<string, number>()
  let ticks = 0
  let candidates = 0
  let approved = 0
  let rejected = 0
  let trades = 0
  let roundTrips = 0
  let wins = 0
  let realized = 0
  let fees = 0
  let openValue = 0 // Σ unrealized
  let peak = 0
  let maxDrawdown = 0
  let firstTs: number | undefined
  let lastTs: number | undefined
  let orderId = 0

  const mark = (symbol: string, price: number): void => {
    const p: Position | undefined = risk.positions.get(symbol)
    const value = p !== undefined && p.qty > DUST ? p.qty * price - p.cost : 0
    const before = unrealized.get(symbol) ?? 0
    if (value !== before) {
      unrealized.set(symbol, value)
      openValue += value - before
    }
  }

  const step = (tick: Tick): Candidate | undefined => {
    ticks++
    if (firstTs === undefined) firstTs = tick.ts
    lastTs = tick.ts
    const candidate = stepSignal(signal, tick)
    if (candidate !== undefined) {
      candidates++
      const decision = decide(risk, limits, candidate, tick.ts)
      if (decision._tag === "Approved") {
        approved++
        const fill = paperFill(decision, tick.price, tick.ts, paper, ++orderId)
        const before = risk.positions.get(fill.symbol)
        applyOrder(risk, fill)
        const after = risk.positions.get(fill.symbol)
        const delta = (after?.realizedPnl ?? 0) - (before?.realizedPnl ?? 0)
        trades++
        fees += (after?.fees ?? 0) - (before?.fees ?? 0)
        realized += delta
        if (fill.action === "CLOSE") {
          roundTrips++
          if (delta > 0) wins++
        }
        observer.onFill?.(fill, delta)
      } else {
        rejected++
      }
      observer.onCandidate?.(candidate, decision)
    }
    mark(tick.symbol, tick.price)
    const equity = realized + openValue
    if (equity > peak) peak = equity
    else if (peak - equity > maxDrawdown) maxDrawdown = peak - equity
    observer.onTick?.(tick, signal, equity)
    return candidate
  }

  const summary = (duplicates = 0): ReplaySummary => ({
    ticks,
    duplicates,
    candidates,
    approved,
    rejected,
    trades,
    roundTrips,
    wins,
    winRate: roundTrips === 0 ? 0 : wins / roundTrips,
    realizedPnl: realized,
    maxDrawdown,
    fees,
    firstTs,
    lastTs
  })

  return { step, summary }
}

export interface ReplayProgress {
  readonly ticks: number
  readonly lastTs: number | undefined
  readonly elapsedMs: number
}

/** Replays the stored ticks at `path`; `onProgress` is called about once a second (Clock). */
export const replay = (
  path: string,
  filter: TickFilter,
  limits: RiskLimits,
  paper: PaperOptions,
  options: { readonly observer?: ReplayObserver; readonly onProgress?: (p: ReplayProgress) => Effect.Effect<void> } = {}
) =>
  Effect.gen(function*() {
    const stats: SourceStats = { rows: 0, duplicates: 0 }
    const replayer = makeReplayer(limits, paper, options.observer)
    const started = yield* Clock.currentTimeMillis
    let lastReport = started
    const progress = options.onProgress
    yield* Effect.scoped(
      forEachTick(
        path,
        filter,
        stats,
        replayer.step,
        progress === undefined ? Effect.void : Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          if (now - lastReport >= 1000) {
            lastReport = now
            const s = replayer.summary()
            yield* progress({ ticks: s.ticks, lastTs: s.lastTs, elapsedMs: now - started })
          }
        })
      )
    )
    const ended = yield* Clock.currentTimeMillis
    return { summary: replayer.summary(stats.duplicates), elapsedMs: ended - started }
  })

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
