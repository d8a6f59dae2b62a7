/**
 * Position book per symbol, derived only from `orders.events` fills: quantity held (net of fees paid in the
 * base asset), cost basis in the quote asset (fees included), realized PnL and fees paid.
 * Applying an event is idempotent (fills are keyed by client order id and exchange trade ids): replay, the risk gate
 * and /status all build books from at-least-once streams.
 */
import { forgetOldest } from "../domain/BoundedMemory.ts"
import type { OrderEvent, OrderFilled } from "../domain/Messages.ts"

export interface Position {
  readonly symbol: string
  /** Base quantity held. */
  readonly qty: number
  /** Quote spent on what is held, fees included. */
  readonly cost: number
  /** cost / qty: the effective entry price. */
  readonly avgEntry: number
  readonly realizedPnl: number
  /** Fees paid, in the quote asset (base-asset fees valued at the fill price). */
  readonly fees: number
  readonly trades: number
  /** Base left over after closes: below the exchange's step size, not tradable, not a position. */
  readonly dust: number
}

export type PositionBook = ReadonlyMap<string, Position>

/** Quantities below this are dust (what LOT_SIZE rounding leaves behind), not a position. */
export const DUST = 1e-12

const empty = (symbol: string): Position => ({ symbol, qty: 0, cost: 0, avgEntry: 0, realizedPnl: 0, fees: 0, trades: 0, dust: 0 })

/** Fee of a fill in quote terms and how much of it was taken from the base asset. */
const feeOf = (e: OrderFilled): { readonly quote: number; readonly base: number } => {
  let quote = 0
  let base = 0
  const quoteAsset = e.symbol.endsWith(e.commissionAsset) && e.symbol !== e.commissionAsset
  const baseAsset = !quoteAsset && e.symbol.startsWith(e.commissionAsset)
  if (e.fills.length > 0) {
    for (const f of e.fills) {
      if (f.commissionAsset === e.commissionAsset && baseAsset) {
        base += f.commission
        quote += f.commission * f.price
      } else if (e.symbol.endsWith(f.commissionAsset)) quote += f.commission
    }
  } else if (baseAsset) {
    base = e.commission
    quote = e.commission * e.avgPrice
  } else if (quoteAsset) quote = e.commission
  return { quote, base }
}

export const applyFill = (p: Position, e: OrderFilled): Position => {
  const fee = feeOf(e)
  if (e.side === "BUY") {
    const qty = p.qty + e.executedQty - fee.base
    const cost = p.cost + e.quoteQty + (fee.quote - fee.base * e.avgPrice)
    // base-asset fees reduce quantity, not cost: the quote spent is the same
    return { ...p, qty, cost, avgEntry: qty > DUST ? cost / qty : 0, fees: p.fees + fee.quote, trades: p.trades + 1 }
  }
  const sold = Math.min(e.executedQty, p.qty)
  const basis = p.qty > DUST ? (p.cost * sold) / p.qty : 0
  const proceeds = e.quoteQty - fee.quote
  const left = p.qty - sold
  // a CLOSE ends the position: the remainder is dust and its cost is part of the round trip's result
  const flat = left <= DUST || e.action === "CLOSE"
  const closedBasis = flat ? p.cost : basis
  return {
    ...p,
    qty: flat ? 0 : left,
    cost: flat ? 0 : p.cost - basis,
    avgEntry: flat ? 0 : p.avgEntry,
    realizedPnl: p.realizedPnl + proceeds - closedBasis,
    dust: p.dust + (flat && left > DUST ? left : 0),
    fees: p.fees + fee.quote,
    trades: p.trades + 1
  }
}

/** How many applied fills a book remembers for de-duplication (insertion order; the oldest is forgotten first). */
export const APPLIED_MEMORY = 100_000

/**
 * Identity of a fill: an order reaches `OrderFilled` once, carrying all its trades, so the client order id is the key.
 * Not the exchange trade ids: two instances settling the same order may see them (response fills) or not (a lookup
 * whose myTrades call failed), and the same order must still count once.
 */
export const fillKey = (e: OrderFilled): string => `${e.clientOrderId}/OrderFilled`

// Which fills each book has applied. Kept beside the book (not in it) so that any `Map<string, Position>` is a book
// and every caller (risk gate, /status, replay, tests) gets idempotence without changing its type.
const appliedByBook = new WeakMap<Map<string, Position>, Set<string>>()

/**
 * Applies a fill to the book once: the same `OrderFilled` delivered again (at-least-once redelivery, two order-manager
 * instances settling the same order during a rebalance, a replay overlapping the live stream) changes nothing.
 * Other events do not move positions.
 */
export const applyOrderEvent = (book: Map<string, Position>, event: OrderEvent): boolean => {
  if (event._tag !== "OrderFilled") return false
  let applied = appliedByBook.get(book)
  if (applied === undefined) {
    applied = new Set()
    appliedByBook.set(book, applied)
  }
  const key = fillKey(event)
  if (applied.has(key)) return false
  applied.add(key)
  if (applied.size > APPLIED_MEMORY) {
    forgetOldest(applied)
  }
  book.set(event.symbol, applyFill(book.get(event.symbol) ?? empty(event.symbol), event))
  return true
}

export const positionOf = (book: PositionBook, symbol: string): Position => book.get(symbol) ?? empty(symbol)

export const buildBook = (events: Iterable<OrderEvent>): Map<string, Position> => {
  const book = new Map<string, Position>()
  for (const e of events) applyOrderEvent(book, e)
  return book
}
