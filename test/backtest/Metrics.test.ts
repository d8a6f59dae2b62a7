import { assert, describe, it } from "@effect/vitest"
import {
  computeMetrics,
  DAY,
  drawdownOf,
  equityFromTrades,
  periodBasisFor,
  rankBy,
  type RoundTrip
} from "../../src/backtest/Metrics.ts"

const T0 = Date.UTC(2024, 0, 1)
const H = 3_600_000
const trip = (n: number, entry: number, exit: number, pnl: number, fees: number): RoundTrip => ({
  symbol: "BTCUSDT",
  entrySignalId: `BTCUSDT-${n}-L`,
  exitSignalId: `BTCUSDT-${n + 1}-S`,
  entryTs: entry,
  exitTs: exit,
  entryPrice: 100,
  exitPrice: 100,
  qty: 1,
  pnl,
  fees
})

/**
 * Four round trips on 1,000 USDT, one closing in each of four days:
 *   day 1: +100 (6 h, fees 2) → 1,100    day 2: −50 (12 h, fees 1) → 1,050
 *   day 3: −100 (6 h, fees 1) →   950    day 4: +150 (24 h, fees 2) → 1,100
 */
const trades = [
  trip(1, T0 + 6 * H, T0 + 12 * H, 100, 2),
  trip(3, T0 + 24 * H, T0 + 36 * H, -50, 1),
  trip(5, T0 + 54 * H, T0 + 60 * H, -100, 1),
  trip(7, T0 + 60 * H, T0 + 84 * H, 150, 2)
]

describe("backtest metrics", () => {
  it("equal hand-computed values on a hand-made trade list", () => {
    const points = equityFromTrades(1000, trades, T0, 4, DAY)
    assert.deepStrictEqual(points.map((p) => p.equity), [1100, 1050, 950, 1100])
    assert.deepStrictEqual(points.map((p) => p.ts), [T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY, T0 + 4 * DAY])
    const m = computeMetrics({ startingBalance: 1000, from: T0, to: T0 + 4 * DAY, points, periodMs: DAY, trades })

    assert.closeTo(m.totalReturn, 0.1, 1e-12) // 1,100 / 1,000 − 1
    assert.strictEqual(m.netPnl, 100)
    // daily returns: 0.1, 1050/1100 − 1 = −1/22, 950/1050 − 1 = −2/21, 1100/950 − 1 = 3/19
    // mean = 0.0293005240; sample sd (n − 1) = 0.1192100046; × √365 (daily basis)
    const r = [0.1, -1 / 22, -2 / 21, 3 / 19]
    const mean = (r[0] + r[1] + r[2] + r[3]) / 4
    assert.closeTo(mean, 0.029300524037366, 1e-12)
    assert.closeTo(m.sharpe!, 4.695794851433, 1e-9)
    // downside deviation = √((1/22)² + (2/21)²) / 4) = 0.0527645963 → Sortino = mean / dd × √365
    assert.closeTo(m.sortino!, 10.609116056634, 1e-9)
    assert.strictEqual(m.periods, 4)
    // profit factor = (100 + 150) / (50 + 100)
    assert.closeTo(m.profitFactor!, 250 / 150, 1e-12)
    assert.strictEqual(m.grossProfit, 250)
    assert.strictEqual(m.grossLoss, 150)
    assert.strictEqual(m.expectancy, 25) // 100 / 4
    assert.strictEqual(m.winRate, 0.5)
    assert.strictEqual(m.avgTradeMs, 12 * H) // (6 + 12 + 6 + 24) / 4 h
    assert.strictEqual(m.maxTradeMs, 24 * H)
    assert.strictEqual(m.fees, 6)
    assert.closeTo(m.feesOfGross!, 6 / 106, 1e-12) // fees / |net 100 + fees 6|
    // drawdown: peak 1,100 at the end of day 1, trough 950 at the end of day 3: 150 = 13.64 % of the peak
    assert.strictEqual(m.drawdown.amount, 150)
    assert.closeTo(m.drawdown.fraction, 150 / 1100, 1e-12)
    assert.strictEqual(m.drawdown.peakTs, T0 + DAY)
    assert.strictEqual(m.drawdown.troughTs, T0 + 3 * DAY)
    // 4 days: no annualized growth figures
    assert.isUndefined(m.cagr)
    assert.isUndefined(m.calmar)
  })

  it("CAGR and Calmar over a year; no trades means no ratios, not zeros", () => {
    const points = [{ ts: T0 + 365 * DAY, equity: 1210 }]
    const year = computeMetrics({ startingBalance: 1000, from: T0, to: T0 + 365 * DAY, points, periodMs: DAY, trades: [], drawdown: { amount: 100, fraction: 0.1, peakTs: T0, troughTs: T0 + DAY } })
    assert.closeTo(year.cagr!, 0.21, 1e-12)
    assert.closeTo(year.calmar!, 2.1, 1e-12)
    const twoYears = computeMetrics({ startingBalance: 1000, from: T0, to: T0 + 730 * DAY, points: [{ ts: T0 + 730 * DAY, equity: 1210 }], periodMs: DAY, trades: [] })
    assert.closeTo(twoYears.cagr!, 0.1, 1e-12) // √1.21 − 1
    assert.isUndefined(year.profitFactor)
    assert.isUndefined(year.winRate)
    assert.isUndefined(year.expectancy)
    assert.isUndefined(year.sharpe) // one return: no deviation
  })

  it("drawdown of a path: the largest fall, with its own peak and trough", () => {
    const dd = drawdownOf(100, [
      { ts: 1, equity: 120 },
      { ts: 2, equity: 90 }, // −30 from 120
      { ts: 3, equity: 150 },
      { ts: 4, equity: 105 }, // −45 from 150: the max
      { ts: 5, equity: 140 }
    ])
    assert.deepStrictEqual(dd, { amount: 45, fraction: 0.3, peakTs: 3, troughTs: 4 })
  })

  it("ranks by a metric, missing values last; drawdown ranks lower first", () => {
    const a = computeMetrics({ startingBalance: 1000, from: T0, to: T0 + 4 * DAY, points: equityFromTrades(1000, trades, T0, 4, DAY), periodMs: DAY, trades })
    const flat = computeMetrics({ startingBalance: 1000, from: T0, to: T0 + 4 * DAY, points: equityFromTrades(1000, [], T0, 4, DAY), periodMs: DAY, trades: [] })
    const b = computeMetrics({ startingBalance: 1000, from: T0, to: T0 + 4 * DAY, points: equityFromTrades(1000, trades.slice(0, 1), T0, 4, DAY), periodMs: DAY, trades: trades.slice(0, 1) })
    const items = [{ n: "flat", m: flat }, { n: "a", m: a }, { n: "b", m: b }]
    assert.deepStrictEqual(rankBy(items, (x) => x.m, "return").map((x) => x.n), ["a", "b", "flat"]) // 10 %, 10 %, 0: ties keep order
    assert.deepStrictEqual(rankBy(items, (x) => x.m, "profit-factor").map((x) => x.n), ["a", "flat", "b"]) // b has no losses: no PF
    assert.deepStrictEqual(rankBy(items, (x) => x.m, "drawdown").map((x) => x.n), ["flat", "b", "a"])
  })

  it("period basis: the largest standard period giving enough returns", () => {
    assert.strictEqual(periodBasisFor(10 * 60_000), 1_000) // 10 minutes → 1 s (600)
    assert.strictEqual(periodBasisFor(2 * H), 60_000) // 2 h → 1 min (120)
    assert.strictEqual(periodBasisFor(30 * DAY), 4 * H) // 30 d → 4 h (180)
    assert.strictEqual(periodBasisFor(400 * DAY), DAY)
  })
})
