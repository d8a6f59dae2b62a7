import { assert, describe, it } from "@effect/vitest"
import type { OrderEvent } from "../../src/domain/Messages.ts"
import { buildBook, positionOf } from "../../src/orders/PositionBook.ts"
import { orderFilled } from "../support/fixtures.ts"

const origin = { tickId: "BTCUSDT:1", receivedAt: 0 }
const fill = (
  side: "BUY" | "SELL",
  action: "OPEN" | "CLOSE",
  qty: number,
  price: number,
  commission: number,
  commissionAsset: string
): OrderEvent =>
  orderFilled({ signalId: `s-${side}`, clientOrderId: `c-${side}`, side, action, qty, price, origin, commission, commissionAsset, withFills: true })

describe("position book", () => {
  it("buy/sell round trip with fees, by hand", () => {
    // BUY 0.1 @ 100: pays 10 USDT, fee 0.1% in BTC = 0.0001 → holds 0.0999 BTC at a cost of 10 USDT
    const afterBuy = positionOf(buildBook([fill("BUY", "OPEN", 0.1, 100, 0.0001, "BTC")]), "BTCUSDT")
    assert.closeTo(afterBuy.qty, 0.0999, 1e-12)
    assert.closeTo(afterBuy.cost, 10, 1e-12)
    assert.closeTo(afterBuy.avgEntry, 10 / 0.0999, 1e-9)
    assert.closeTo(afterBuy.fees, 0.0001 * 100, 1e-12) // 0.01 USDT
    // SELL 0.0999 @ 110: receives 10.989, fee 0.1% in USDT = 0.010989 → proceeds 10.978011; PnL = 0.978011
    const book = buildBook([fill("BUY", "OPEN", 0.1, 100, 0.0001, "BTC"), fill("SELL", "CLOSE", 0.0999, 110, 0.010989, "USDT")])
    const p = positionOf(book, "BTCUSDT")
    assert.strictEqual(p.qty, 0)
    assert.strictEqual(p.cost, 0)
    assert.closeTo(p.realizedPnl, 0.978011, 1e-9)
    assert.closeTo(p.fees, 0.01 + 0.010989, 1e-12)
    assert.strictEqual(p.trades, 2)
  })

  it("a close that leaves less than a step behind ends the position; the rest is dust, counted in the PnL", () => {
    // holds 0.000999, sells 0.00099 (LOT_SIZE step 0.00001): 0.000009 stays as dust
    const book = buildBook([
      fill("BUY", "OPEN", 0.001, 100, 0.000001, "BTC"),
      fill("SELL", "CLOSE", 0.00099, 100, 0.000099, "USDT")
    ])
    const p = positionOf(book, "BTCUSDT")
    assert.strictEqual(p.qty, 0)
    assert.closeTo(p.dust, 0.000009, 1e-12)
    // paid 0.1; received 0.099 − 0.000099 = 0.098901 → −0.001099
    assert.closeTo(p.realizedPnl, -0.001099, 1e-12)
  })

  it("a partial sell realizes the PnL of the part sold only", () => {
    const book = buildBook([fill("BUY", "OPEN", 1, 100, 0, "USDT"), { ...fill("SELL", "OPEN", 0.4, 120, 0, "USDT") }])
    const p = positionOf(book, "BTCUSDT")
    assert.closeTo(p.qty, 0.6, 1e-12)
    assert.closeTo(p.realizedPnl, 0.4 * 20, 1e-9)
    assert.closeTo(p.avgEntry, 100, 1e-9)
  })

  it("events other than fills do not move positions", () => {
    const submitted: OrderEvent = { _tag: "OrderSubmitted", signalId: "x", clientOrderId: "x", symbol: "BTCUSDT", side: "BUY", action: "OPEN", qty: 1, ts: 0, origin }
    assert.strictEqual(positionOf(buildBook([submitted]), "BTCUSDT").qty, 0)
  })
})
