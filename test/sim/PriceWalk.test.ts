import { describe, expect, it } from "@effect/vitest"
import * as Fixed from "../../src/sim/Fixed.ts"
import { makeSpec } from "../../src/sim/Markets.ts"
import { firstPrices, mulberry32 } from "../../src/sim/PriceWalk.ts"

const btc = makeSpec("BTCUSDT")
const params = { tickSize: btc.tickSize, stepSize: btc.stepSize, volatility: 0.0004 }

describe("PriceWalk", () => {
  it("mulberry32 is a pure function of its seed", () => {
    const a = mulberry32(7)
    const b = mulberry32(7)
    const xs = Array.from({ length: 5 }, a)
    expect(Array.from({ length: 5 }, b)).toEqual(xs)
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true)
  })

  it("the same seed gives the same first N prices; another seed or symbol does not", () => {
    const first = firstPrices(42, "BTCUSDT", 60000, params, 50)
    expect(firstPrices(42, "BTCUSDT", 60000, params, 50)).toEqual(first)
    expect(firstPrices(43, "BTCUSDT", 60000, params, 50)).not.toEqual(first)
    expect(firstPrices(42, "ETHUSDT", 60000, params, 50)).not.toEqual(first)
  })

  it("prices are on the tick grid and formatted with 8 decimals", () => {
    for (const price of firstPrices(1, "BTCUSDT", 60000, params, 200)) {
      expect(price).toMatch(/^\d+\.\d{8}$/)
      expect(Fixed.isMultipleOf((Fixed.parse(price) as { value: bigint }).value, btc.tickSize)).toBe(true)
    }
  })
})

describe("Fixed", () => {
  it("parses Binance decimals exactly and refuses excess precision", () => {
    expect(Fixed.parse("0.00001")).toEqual({ _tag: "Ok", value: 1000n })
    expect(Fixed.parse("12")).toEqual({ _tag: "Ok", value: 1_200_000_000n })
    expect(Fixed.parse("0.000000001")).toEqual({ _tag: "TooPrecise" })
    expect(Fixed.parse("1.5e-3")).toEqual({ _tag: "Illegal" })
    expect(Fixed.parse("-1")).toEqual({ _tag: "Illegal" })
    expect(Fixed.format(Fixed.fromNumber(65000.12))).toBe("65000.12000000")
  })
})
