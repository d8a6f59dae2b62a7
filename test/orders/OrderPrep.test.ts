/** Exact decimals at the venue boundary: LOT_SIZE rounding, minQty/NOTIONAL checks and Binance's decimal strings. */
import { assert, describe, it } from "@effect/vitest"
import { BigDecimal, Exit, Schema } from "effect"
import fc from "fast-check"
import { toRules } from "../../layers/BinanceExchange.ts"
import type { Approved } from "../../src/domain/Messages.ts"
import { Decimal } from "../../src/exchange/BinanceCodec.ts"
import { decimalOf, prepareMarketOrder, roundDownToStep, roundToTick, rulesFromNumbers } from "../../src/orders/OrderPrep.ts"
import { candidate } from "../support/fixtures.ts"

const approval = (qty: number, price = 100): Approved => {
  const c = candidate("BTCUSDT", "LONG", 1, price)
  return { _tag: "Approved", id: c.id, candidate: c, action: "OPEN", orderSide: "BUY", qty, ts: 0, origin: c.origin }
}

describe("exact decimals", () => {
  it("LOT_SIZE rounding is exact where floats are not", () => {
    // floats: 0.3 / 0.1 = 2.9999999999999996 → 2 steps without an epsilon
    assert.strictEqual(roundDownToStep(0.3, 0.1), "0.3")
    assert.strictEqual(roundDownToStep(0.7, 0.1), "0.7")
    assert.strictEqual(roundDownToStep(1.0000001, 0.00001), "1.00000")
    assert.strictEqual(roundDownToStep(0.123456789, 0.00001), "0.12345")
    assert.strictEqual(roundDownToStep(4.35, 0.05), "4.35") // 4.35 / 0.05 = 86.99999999999999 in floats
    assert.strictEqual(roundDownToStep(12, 1), "12")
    assert.strictEqual(roundDownToStep(0.00000123, 0), "0.00000123")
    assert.strictEqual(roundToTick(100.005, 0.01), "100.01")
    assert.strictEqual(roundToTick(0.1 + 0.2, 0.1), "0.3")
  })

  it("rounded quantities are multiples of the step, never above the input, less than one step below (property)", () => {
    const steps = ["1", "0.1", "0.01", "0.001", "0.0001", "0.00001", "0.00000001", "0.05", "0.25"]
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 8 }), fc.constantFrom(...steps), (units, scale, stepText) => {
        const value = BigDecimal.make(BigInt(units), scale)
        const step = BigDecimal.fromStringUnsafe(stepText)
        const rounded = BigDecimal.fromStringUnsafe(roundDownToStep(value, step))
        assert.isTrue(BigDecimal.isZero(BigDecimal.remainderUnsafe(rounded, step)), "a multiple of the step")
        assert.isFalse(BigDecimal.isGreaterThan(rounded, value), "not above the input")
        assert.isTrue(BigDecimal.isLessThan(BigDecimal.subtract(value, rounded), step), "less than one step below")
      }),
      { numRuns: 500 }
    )
  })

  it("minQty and NOTIONAL are checked exactly: 5 USDT is enough, a hair less is not", () => {
    const rules = rulesFromNumbers({ symbol: "BTCUSDT", baseAsset: "BTC", quoteAsset: "USDT", stepSize: 0.00001, minQty: 0.00001, minNotional: 5 })
    // 0.05 × 100 = 5.000000000000001 in floats, 0.07 × 100 = 7.000000000000001: exact here
    const ok = prepareMarketOrder(approval(0.05), rules, 100)
    assert.strictEqual(ok._tag, "Ready")
    if (ok._tag === "Ready") {
      assert.strictEqual(ok.request.quantity, "0.05000")
      assert.strictEqual(ok.quantity, 0.05)
    }
    const under = prepareMarketOrder(approval(0.04999), rules, 100.02)
    assert.strictEqual(under._tag, "Refused")
    if (under._tag === "Refused") assert.match(under.reason, /notional 4\.99999980 below NOTIONAL minNotional 5/)
    const dust = prepareMarketOrder(approval(0.000009), rules, 100)
    assert.strictEqual(dust._tag, "Refused")
    if (dust._tag === "Refused") assert.match(dust.reason, /rounds to 0\.00000, below LOT_SIZE minQty 0\.00001/)
  })

  it("Binance's decimal strings decode exactly; anything else fails the decode", () => {
    const decode = Schema.decodeUnknownExit(Decimal)
    const d = decode("0.00100000")
    assert.isTrue(Exit.isSuccess(d))
    if (Exit.isSuccess(d)) assert.isTrue(BigDecimal.equals(d.value, BigDecimal.fromStringUnsafe("0.001")))
    for (const bad of ["", "1e-5", "abc", " 1", "1.", "NaN"]) assert.isTrue(Exit.isFailure(decode(bad)), bad)
    const rules = toRules({
      symbol: "BTCUSDT",
      status: "TRADING",
      baseAsset: "BTC",
      quoteAsset: "USDT",
      filters: [
        { filterType: "LOT_SIZE", minQty: "0.00001000", maxQty: "9000.00000000", stepSize: "0.00001000" },
        { filterType: "NOTIONAL", minNotional: "5.00000000", applyMinToMarket: true }
      ]
    })
    assert.isTrue(BigDecimal.equals(rules.stepSize, decimalOf(0.00001)))
    assert.isTrue(BigDecimal.equals(rules.minNotional, decimalOf(5)))
    assert.strictEqual(roundDownToStep(0.3, rules.stepSize), "0.30000")
  })
})
