/**
 * A history longer than the gate's memory of final events (10k): BTC opened (filled) first, then ETH round trips
 * with more than 10k final events, SOL approved last with no final event yet (really pending).
 */
import type { Approved, OrderEvent } from "../../src/domain/Messages.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { candidate, orderFilled } from "../support/fixtures.ts"

export const QTY = 0.001

const approval = (symbol: string, side: "LONG" | "SHORT", tradeId: number, ts: number): Approved => {
  const c = candidate(symbol, side, tradeId)
  const open = side === "LONG"
  return { _tag: "Approved", id: c.id, candidate: c, action: open ? "OPEN" : "CLOSE", orderSide: open ? "BUY" : "SELL", qty: QTY, ts, origin: c.origin }
}

const fill = (a: Approved, ts: number): OrderEvent =>
  orderFilled({
    signalId: a.id,
    clientOrderId: clientOrderIdFor(a.id),
    symbol: a.candidate.symbol,
    side: a.orderSide,
    action: a.action,
    qty: a.qty,
    price: 100,
    origin: a.origin,
    ts
  })

export const longHistory = (ethFinals = 10_050) => {
  const approvals: Array<Approved> = []
  const events: Array<OrderEvent> = []
  let ts = 1_000
  const btc = approval("BTCUSDT", "LONG", 1, (ts += 1))
  approvals.push(btc)
  events.push(fill(btc, (ts += 1)))
  for (let i = 0; i < ethFinals; i++) {
    const a = approval("ETHUSDT", i % 2 === 0 ? "LONG" : "SHORT", i + 1, (ts += 1))
    approvals.push(a)
    events.push(fill(a, (ts += 1)))
  }
  approvals.push(approval("SOLUSDT", "LONG", 1, (ts += 1)))
  return { approvals, events, lastTs: ts, ethOpen: ethFinals % 2 === 1 }
}
