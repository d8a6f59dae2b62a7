/**
 * Risk gate: the only way from a candidate to the venue. Spot, long-only:
 * LONG opens a position only when the symbol has no open or pending position; SHORT closes an open long.
 * Caps on trades per minute / hour and on position size apply to opens; exits are never held back by a
 * rate cap, because a blocked exit leaves real money exposed until the next crossover.
 * Position state comes from `orders.events` (what the exchange did), never from the gate's own guesses;
 * "pending" is an approval whose order has not reached a final event yet.
 * Every `apply*` is idempotent (keyed by approval id / client order id): the state is rebuilt from at-least-once
 * streams, so an event delivered twice, or seen both in the replayed history and live, counts once.
 * An open whose order never reached the exchange (`reachedExchange: false` on its OrderFailed/OrderRejected) gives
 * its trade-cap slot back: nothing traded, and a refused connection must not lock trading out for an hour.
 */
import type { Approved, Candidate, Control, OrderEvent, Rejected, RejectReason } from "../domain/Messages.ts"
import { forgetOldest } from "../domain/BoundedMemory.ts"
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
  /**
   * symbol → its newest approval seen (id, time). Only that one can be pending: the gate approves a symbol only when
   * nothing is pending for it, so an older approval of the symbol had reached a final event before the newer one was
   * taken, whether or not that final event is still remembered in `finalized`.
   */
  readonly latestApproval: Map<string, { readonly id: string; readonly ts: number }>
  /** symbol → its newest final order event (signal id, time): exact for each symbol however long the history */
  readonly lastFinal: Map<string, { readonly id: string; readonly ts: number }>
  /** approved opens (approval id, time ms), oldest first, pruned past one hour */
  readonly opens: Array<{ readonly id: string; readonly ts: number }>
  /** decisions already taken, by candidate id: a redelivered candidate gets the same answer */
  readonly decided: Map<string, Decision>
  /** How many decisions `decided` keeps (10,000 live; 0 where nothing is ever redelivered, e.g. a replay). */
  readonly decidedMemory: number
  /** signal ids whose order reached a final event (so a late-arriving approval does not make its symbol pending) */
  readonly finalized: Set<string>
  /** of those, the ones that never reached the exchange (an approval arriving after them takes no trade-cap slot) */
  readonly neverSent: Set<string>
  paused: boolean
  /** symbols paused on their own (e.g. by the order manager after an order hit a bound), until a resume */
  readonly pausedSymbols: Set<string>
}

const DECIDED_MEMORY = 10_000
const MINUTE = 60_000
const HOUR = 3_600_000

export const initialRiskState = (decidedMemory = DECIDED_MEMORY): RiskState => ({
  positions: new Map(),
  pending: new Map(),
  pendingById: new Map(),
  latestApproval: new Map(),
  lastFinal: new Map(),
  opens: [],
  decided: new Map(),
  decidedMemory,
  finalized: new Set(),
  neverSent: new Set(),
  paused: false,
  pausedSymbols: new Set()
})

const remember = (state: RiskState, d: Decision): void => {
  if (state.decidedMemory === 0) return
  state.decided.set(d.id, d)
  if (state.decided.size > state.decidedMemory) {
    forgetOldest(state.decided)
  }
}

/** Whether an open is in `opens` already (replayed after `decided` forgot it): only entries as recent as it are looked at. */
const counted = (opens: ReadonlyArray<{ readonly id: string; readonly ts: number }>, a: Approved): boolean => {
  for (let i = opens.length - 1; i >= 0 && opens[i].ts >= a.ts; i--) if (opens[i].id === a.id) return true
  return false
}

/**
 * An approval (ours, live or replayed from `signals.approved`) makes its symbol pending, unless its order already
 * ended or a newer approval of the symbol is known. Order events and approvals are separate topics read by separate
 * readers, so either may come first, and a reader that rejoins replays its topic from the start while the other is
 * live: whether a symbol is pending must not depend on how many final events the bounded `finalized` memory still
 * holds. Hence: an approval older than the symbol's newest one is history (it was final before the newer one was
 * taken); the newest one is final if `finalized` has it or it is the symbol's last final event; and a newer approval
 * replaces an older pending entry of its symbol.
 */
export const applyApproved = (state: RiskState, a: Approved): void => {
  if (state.decided.get(a.id)?._tag === "Approved") return // seen before (redelivered, or history overlapping live)
  remember(state, a)
  if (a.action === "OPEN" && !state.neverSent.has(a.id) && !counted(state.opens, a)) {
    // keep time order even if approvals arrive out of order
    let i = state.opens.length
    while (i > 0 && state.opens[i - 1].ts > a.ts) i--
    state.opens.splice(i, 0, { id: a.id, ts: a.ts })
  }
  const symbol = a.candidate.symbol
  const latest = state.latestApproval.get(symbol)
  // older than the symbol's newest approval: replayed history (on a tie in time the later arrival counts as newer,
  // as the topic's per-symbol order has it)
  if (latest !== undefined && latest.id !== a.id && a.ts < latest.ts) return
  state.latestApproval.set(symbol, { id: a.id, ts: a.ts })
  const older = state.pending.get(symbol)
  if (older !== undefined && older !== a.id) {
    state.pending.delete(symbol)
    state.pendingById.delete(older)
  }
  if (state.finalized.has(a.id) || state.lastFinal.get(symbol)?.id === a.id) return // its order already ended
  state.pending.set(symbol, a.id)
  state.pendingById.set(a.id, symbol)
}

export const applyRejected = (state: RiskState, r: Rejected): void => remember(state, r)

/** Order events move positions and resolve pending approvals once final. OrderUncertain keeps it pending. */
export const applyOrder = (state: RiskState, event: OrderEvent): void => {
  applyOrderEvent(state.positions, event)
  const final = event._tag === "OrderFilled" || event._tag === "OrderRejected" || event._tag === "OrderFailed"
  if (!final) return
  if (event._tag !== "OrderFilled" && event.reachedExchange === false) {
    const i = state.opens.findIndex((o) => o.id === event.signalId)
    if (i !== -1) state.opens.splice(i, 1)
    state.neverSent.add(event.signalId)
  }
  rememberFinal(state, event.signalId)
  const last = state.lastFinal.get(event.symbol)
  if (last === undefined || event.ts >= last.ts) state.lastFinal.set(event.symbol, { id: event.signalId, ts: event.ts }) // a redelivered older one does not count
  const symbol = state.pendingById.get(event.signalId)
  if (symbol === undefined) return
  state.pendingById.delete(event.signalId)
  if (state.pending.get(symbol) === event.signalId) state.pending.delete(symbol)
}

const rememberFinal = (state: RiskState, signalId: string): void => {
  state.finalized.add(signalId)
  if (state.finalized.size > DECIDED_MEMORY) {
    const oldest = forgetOldest(state.finalized)
    if (oldest !== undefined) state.neverSent.delete(oldest)
  }
}

/** A pause or resume for all symbols, or for one (`control.symbol`). A resume of all also lifts per-symbol pauses. */
export const applyControl = (state: RiskState, control: Control): void => {
  if (control.symbol !== undefined) {
    if (control.command === "pause") state.pausedSymbols.add(control.symbol)
    else state.pausedSymbols.delete(control.symbol)
    return
  }
  state.paused = control.command === "pause"
  if (!state.paused) state.pausedSymbols.clear()
}

const prune = (opens: Array<{ readonly ts: number }>, now: number): void => {
  let drop = 0
  while (drop < opens.length && opens[drop].ts <= now - HOUR) drop++
  if (drop > 0) opens.splice(0, drop)
}

const countSince = (opens: ReadonlyArray<{ readonly ts: number }>, since: number): number => {
  let n = 0
  for (let i = opens.length - 1; i >= 0 && opens[i].ts > since; i--) n++
  return n
}

/** Decides one candidate at time `now` (ms, from Clock). Mutates `state` to record an approval. */
export const decide = (state: RiskState, limits: RiskLimits, candidate: Candidate, now: number): Decision => {
  const earlier = state.decided.size === 0 ? undefined : state.decided.get(candidate.id)
  if (earlier !== undefined) return earlier
  const reject = (reason: RejectReason, detail: string): Rejected => {
    const r: Rejected = { _tag: "Rejected", id: candidate.id, candidate, reason, detail, ts: now, origin: candidate.origin }
    remember(state, r)
    return r
  }
  const symbol = candidate.symbol
  if (state.paused) return reject("Paused", "trading is paused by an operator")
  if (state.pausedSymbols.has(symbol)) return reject("SymbolHalted", `trading ${symbol} is paused until /resume`)
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
