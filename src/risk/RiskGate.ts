/**
 * Risk gate: the only way from a candidate to the venue. Spot, long-only:
 * LONG opens a position only when the symbol has no open or pending position; SHORT closes an open long.
 * Caps on trades per minute / hour and on position size apply to opens; exits are never held back by a
 * rate cap, because a blocked exit leaves real money exposed until the next crossover.
 * Position state comes from `orders.events` (what the exchange did), never from the gate's own guesses;
 * "pending" is an approval whose order has not reached a final event yet.
 */
import type { Approved, Candidate, Control, OrderEvent, Rejected, RejectReason } from "../domain/Messages.ts"
import { applyOrderEvent, DUST, type Position, positionOf } from "../orders/PositionBook.ts"

export interface RiskLimits {
  readonly orderQty: number
  readonly maxPosition: number
  readonly maxTradesPerMinute: number
  readonly maxTradesPerHour: number
}

export type Decision = Approved | Rejected

export interface RiskState {
  readonly positions: Map<string, Position>
  /** symbol → id of the approval whose order is not final yet */
  readonly pending: Map<string, string>
  /** approval id → symbol, to resolve pending entries from order events */
  readonly pendingById: Map<string, string>
  /** times (ms) of approved opens, oldest first, pruned past one hour */
  readonly opens: Array<number>
  /** decisions already taken, by candidate id: a redelivered candidate gets the same answer */
  readonly decided: Map<string, Decision>
  paused: boolean
}

const DECIDED_MEMORY = 10_000
const MINUTE = 60_000
const HOUR = 3_600_000

export const initialRiskState = (): RiskState => ({
  positions: new Map(),
  pending: new Map(),
  pendingById: new Map(),
  opens: [],
  decided: new Map(),
  paused: false
})

const remember = (state: RiskState, d: Decision): void => {
  state.decided.set(d.id, d)
  if (state.decided.size > DECIDED_MEMORY) {
    const oldest = state.decided.keys().next().value
    if (oldest !== undefined) state.decided.delete(oldest)
  }
}

/** An approval (ours, live or replayed from `signals.approved`) makes its symbol pending. */
export const applyApproved = (state: RiskState, a: Approved): void => {
  remember(state, a)
  if (a.action === "OPEN") state.opens.push(a.ts)
  state.pending.set(a.candidate.symbol, a.id)
  state.pendingById.set(a.id, a.candidate.symbol)
}

export const applyRejected = (state: RiskState, r: Rejected): void => remember(state, r)

/** Order events move positions and resolve pending approvals once final. OrderUncertain keeps it pending. */
export const applyOrder = (state: RiskState, event: OrderEvent): void => {
  applyOrderEvent(state.positions, event)
  const final = event._tag === "OrderFilled" || event._tag === "OrderRejected" || event._tag === "OrderFailed"
  if (!final) return
  const symbol = state.pendingById.get(event.signalId)
  if (symbol === undefined) return
  state.pendingById.delete(event.signalId)
  if (state.pending.get(symbol) === event.signalId) state.pending.delete(symbol)
}

export const applyControl = (state: RiskState, control: Control): void => {
  state.paused = control.command === "pause"
}

const prune = (opens: Array<number>, now: number): void => {
  let drop = 0
  while (drop < opens.length && opens[drop] <= now - HOUR) drop++
  if (drop > 0) opens.splice(0, drop)
}

const countSince = (opens: ReadonlyArray<number>, since: number): number => {
  let n = 0
  for (let i = opens.length - 1; i >= 0 && opens[i] > since; i--) n++
  return n
}

/** Decides one candidate at time `now` (ms, from Clock). Mutates `state` to record an approval. */
export const decide = (state: RiskState, limits: RiskLimits, candidate: Candidate, now: number): Decision => {
  const earlier = state.decided.get(candidate.id)
  if (earlier !== undefined) return earlier
  const reject = (reason: RejectReason, detail: string): Rejected => {
    const r: Rejected = { _tag: "Rejected", id: candidate.id, candidate, reason, detail, ts: now, origin: candidate.origin }
    remember(state, r)
    return r
  }
  const symbol = candidate.symbol
  if (state.paused) return reject("Paused", "trading is paused by an operator")
  const pendingId = state.pending.get(symbol)
  if (pendingId !== undefined) return reject("PositionPending", `order for ${pendingId} is not final yet`)
  const position = positionOf(state.positions, symbol)
  const open = position.qty > DUST
  let approved: Approved
  if (candidate.side === "LONG") {
    if (open) return reject("PositionOpen", `already long ${position.qty} ${symbol}`)
    if (position.qty + limits.orderQty > limits.maxPosition) {
      return reject("MaxPosition", `order ${limits.orderQty} would exceed max position ${limits.maxPosition}`)
    }
    prune(state.opens, now)
    const lastMinute = countSince(state.opens, now - MINUTE)
    if (lastMinute >= limits.maxTradesPerMinute) {
      return reject("TradesPerMinute", `${lastMinute} trades in the last minute (max ${limits.maxTradesPerMinute})`)
    }
    if (state.opens.length >= limits.maxTradesPerHour) {
      return reject("TradesPerHour", `${state.opens.length} trades in the last hour (max ${limits.maxTradesPerHour})`)
    }
    approved = {
      _tag: "Approved",
      id: candidate.id,
      candidate,
      action: "OPEN",
      orderSide: "BUY",
      qty: limits.orderQty,
      ts: now,
      origin: candidate.origin
    }
  } else {
    if (!open) return reject("NoPosition", `no open ${symbol} position to close (spot, long-only)`)
    approved = {
      _tag: "Approved",
      id: candidate.id,
      candidate,
      action: "CLOSE",
      orderSide: "SELL",
      qty: position.qty,
      ts: now,
      origin: candidate.origin
    }
  }
  applyApproved(state, approved)
  return approved
}
