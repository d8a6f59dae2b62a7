/**
 * What /status shows, kept by the notifier from the bus: positions (from `orders.events` through the
 * PositionBook), the last signals with the risk gate's decision, and whether trading is paused.
 * Applying an order event is idempotent (fills are keyed by clientOrderId), because two readers feed it:
 * the replay that rebuilds it at start and the notifier's own consumer group.
 */
import type { Approved, Candidate, Control, OrderEvent, Rejected } from "../domain/Messages.ts"
import { applyOrderEvent, type Position, positionOf } from "../orders/PositionBook.ts"
import type { SignalSummary, StatusInput } from "./Format.ts"

export interface StatusView {
  readonly startedAt: number
  readonly symbols: ReadonlyArray<string>
  readonly positions: Map<string, Position>
  /** clientOrderId of each applied fill → realized PnL of that fill (undefined for buys). */
  readonly fills: Map<string, number | undefined>
  readonly lastSignals: Array<{ candidate: Candidate; outcome?: string }>
  readonly maxSignals: number
  paused: boolean
  pausedBy: string | undefined
}

const FILL_MEMORY = 10_000

export const makeView = (startedAt: number, symbols: ReadonlyArray<string>, maxSignals = 5): StatusView => ({
  startedAt,
  symbols,
  positions: new Map(),
  fills: new Map(),
  lastSignals: [],
  maxSignals,
  paused: false,
  pausedBy: undefined
})

/**
 * Identity of an order event for de-duplication: a final event (fill, rejection, failure) happens once per order,
 * whoever emitted it and whenever; the others are keyed by their time (an order may be uncertain, or retried, more
 * than once) and attempt number.
 */
export const orderEventKey = (e: OrderEvent): string => {
  switch (e._tag) {
    case "OrderFilled":
    case "OrderRejected":
    case "OrderFailed":
      return `${e.clientOrderId}/${e._tag}`
    case "OrderAttempt":
      return `${e.clientOrderId}/${e._tag}/${e.attempt}/${e.ts}`
    default:
      return `${e.clientOrderId}/${e._tag}/${e.ts}`
  }
}

/** A bounded memory of keys already handled (insertion order; the oldest is forgotten first). */
export const makeSeen = (capacity = 10_000) => {
  const keys = new Set<string>()
  /** true the first time `key` is offered. */
  return (key: string): boolean => {
    if (keys.has(key)) return false
    keys.add(key)
    if (keys.size > capacity) {
      const oldest = keys.values().next().value
      if (oldest !== undefined) keys.delete(oldest)
    }
    return true
  }
}

/** Applies `event` once; returns the realized PnL of a sell fill (also when it was applied before). */
export const applyOrder = (view: StatusView, event: OrderEvent): number | undefined => {
  if (event._tag !== "OrderFilled") return undefined
  if (view.fills.has(event.clientOrderId)) return view.fills.get(event.clientOrderId)
  const before = positionOf(view.positions, event.symbol).realizedPnl
  applyOrderEvent(view.positions, event)
  const pnl = event.side === "SELL" ? positionOf(view.positions, event.symbol).realizedPnl - before : undefined
  view.fills.set(event.clientOrderId, pnl)
  if (view.fills.size > FILL_MEMORY) {
    const oldest = view.fills.keys().next().value
    if (oldest !== undefined) view.fills.delete(oldest)
  }
  return pnl
}

export const recordCandidate = (view: StatusView, candidate: Candidate): void => {
  if (view.lastSignals.some((s) => s.candidate.id === candidate.id)) return
  view.lastSignals.push({ candidate })
  if (view.lastSignals.length > view.maxSignals) view.lastSignals.shift()
}

export const recordDecision = (view: StatusView, decision: Approved | Rejected): void => {
  const outcome = decision._tag === "Approved" ? `approved ${decision.action}` : `rejected: ${decision.reason}`
  const entry = view.lastSignals.find((s) => s.candidate.id === decision.id)
  if (entry !== undefined) entry.outcome = outcome
  else {
    view.lastSignals.push({ candidate: decision.candidate, outcome })
    if (view.lastSignals.length > view.maxSignals) view.lastSignals.shift()
  }
}

/** Global pause/resume only: a per-symbol pause (the order manager's, after a bound) does not pause everything. */
export const applyControl = (view: StatusView, control: Control): void => {
  if (control.symbol !== undefined) return
  view.paused = control.command === "pause"
  view.pausedBy = view.paused ? control.by : undefined
}

export const statusOf = (view: StatusView, now: number): StatusInput => ({
  uptimeMs: now - view.startedAt,
  symbols: view.symbols,
  paused: view.paused,
  ...(view.pausedBy === undefined ? {} : { pausedBy: view.pausedBy }),
  positions: [...view.positions.values()],
  lastSignals: view.lastSignals.map((s): SignalSummary => (s.outcome === undefined ? { candidate: s.candidate } : { candidate: s.candidate, outcome: s.outcome }))
})
