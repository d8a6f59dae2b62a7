import { describe, expect, it } from "@effect/vitest"
import { SimEngine } from "../../src/sim/Engine.ts"
import * as Fixed from "../../src/sim/Fixed.ts"
import { makeSpec } from "../../src/sim/Markets.ts"

describe("avgPrice (the NOTIONAL filter's average price)", () => {
  it("is the volume-weighted price of the trades of the last avgPriceMins, across many trades per millisecond and long runs", () => {
    let now = 1_764_633_600_000
    const trades: Array<{ time: number; price: Fixed.Fixed; qty: Fixed.Fixed }> = []
    const engine = new SimEngine({
      specs: [makeSpec("BTCUSDT")],
      seed: 3,
      startPrices: {},
      balances: { USDT: 1_000_000 },
      takerFee: 0.001,
      now: () => now,
      onTrade: (t) => void trades.push({ time: t.time, price: t.price, qty: t.qty })
    })
    const windowMs = makeSpec("BTCUSDT").avgPriceMins * 60_000
    const expected = () => {
      let volume = 0n
      let notional = 0n
      for (const t of trades) {
        if (t.time < now - windowMs) continue
        volume += t.qty
        notional += Fixed.mul(t.price, t.qty)
      }
      return volume === 0n ? engine.lastPrice("BTCUSDT") : Fixed.roundTo(Fixed.div(notional, volume), 1n)
    }
    // 12 simulated minutes: bursts of up to 40 trades in the same millisecond, then gaps of up to 0.5 s
    let step = 0
    while (now < 1_764_633_600_000 + 12 * 60_000) {
      const burst = 1 + (step * 7919) % 40
      for (let i = 0; i < burst; i++) engine.tick("BTCUSDT")
      if (step % 5 === 0) expect(engine.avgPrice("BTCUSDT")).toBe(expected())
      now += (step * 104_729) % 500
      step++
    }
    expect(trades.length).toBeGreaterThan(20_000)
    expect(engine.avgPrice("BTCUSDT")).toBe(expected())
    // nothing traded for longer than the window: the last price
    now += windowMs + 1
    expect(engine.avgPrice("BTCUSDT")).toBe(engine.lastPrice("BTCUSDT"))
  })
})
