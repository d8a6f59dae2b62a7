import type { Candidate, OrderEvent, Origin, Tick } from "../../src/domain/Messages.ts"

export const tick = (symbol: string, tradeId: number, price: number, ts = 1_700_000_000_000 + tradeId): Tick => ({
  symbol,
  price,
  size: 0.01,
  side: "BUY",
  tradeId,
  ts,
  receivedAt: ts + 5
})

/** Ticks with trade ids 1..n for `prices`. */
export const ticks = (symbol: string, prices: ReadonlyArray<number>): Array<Tick> => prices.map((p, i) => tick(symbol, i + 1, p))

export const candidate = (
  symbol: string,
  side: "LONG" | "SHORT",
  tradeId: number,
  price = 100
): Candidate => ({
  id: `${symbol}-${tradeId}-${side === "LONG" ? "L" : "S"}`,
  symbol,
  side,
  price,
  ma10: 0,
  ma30: 0,
  delta: 0,
  tickTradeId: tradeId,
  ts: tradeId,
  origin: { tickId: `${symbol}:${tradeId}`, receivedAt: tradeId }
})

/** A FILLED order event: `qty` executed at `price` (quote = qty × price unless given), no fee unless given. */
export const orderFilled = (o: {
  readonly signalId: string
  readonly clientOrderId: string
  readonly side: "BUY" | "SELL"
  readonly action: "OPEN" | "CLOSE"
  readonly qty: number
  readonly price: number
  readonly origin: Origin
  readonly symbol?: string
  readonly quoteQty?: number
  readonly commission?: number
  readonly commissionAsset?: string
  readonly withFills?: boolean
  readonly orderId?: number
  readonly ts?: number
}): OrderEvent => {
  const commission = o.commission ?? 0
  const commissionAsset = o.commissionAsset ?? "USDT"
  return {
    _tag: "OrderFilled",
    signalId: o.signalId,
    clientOrderId: o.clientOrderId,
    symbol: o.symbol ?? "BTCUSDT",
    side: o.side,
    action: o.action,
    qty: o.qty,
    ts: o.ts ?? 0,
    origin: o.origin,
    orderId: o.orderId ?? 1,
    status: "FILLED",
    executedQty: o.qty,
    avgPrice: o.price,
    quoteQty: o.quoteQty ?? o.qty * o.price,
    commission,
    commissionAsset,
    fills: o.withFills === true ? [{ price: o.price, qty: o.qty, commission, commissionAsset }] : []
  }
}
