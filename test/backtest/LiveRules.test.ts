import { assert, describe, it } from "@effect/vitest"
import type { Approved, OrderEvent, Tick } from "../../src/domain/Messages.ts"
import type { SymbolRules } from "../../src/exchange/Exchange.ts"
import { decimalOf, prepareMarketOrder } from "../../src/orders/OrderPrep.ts"
import { rulesByDay } from "../../src/backtest/ExchangeRules.ts"
import { noFilters, type PaperOptions } from "../../src/backtest/PaperExecution.ts"
import { baseVariant, makeVariantReplayer } from "../../src/backtest/Replay.ts"
import type { RiskLimits } from "../../src/risk/RiskGate.ts"

const DAY = 86_400_000
const T = Date.UTC(2024, 2, 1, 12)

/** Prices whose MA10/MA30 crossovers give: #33 SHORT (no position), #34 LONG (open), #71 SHORT (close), #100 LONG. */
const prices = (): Array<number> => {
  const p: Array<number> = []
  for (let i = 0; i < 30; i++) p.push(100)
  p.push(110, 90, 90, 120, 100) // #31 … #35
  for (let i = 0; i < 34; i++) p.push(101 + i * 0.5) // #36 … #69: rising, fast stays above slow
  for (let i = 0; i < 30; i++) p.push(80) // #70 …: down → SHORT
  for (let i = 0; i < 30; i++) p.push(120) // up → LONG
  return p
}

/** Ticks 1 ms apart, or `gapMs` apart from tick `from` on. */
const ticksOf = (ps: ReadonlyArray<number>, start = T, step = 1, dayBreakAt?: number): Array<Tick> =>
  ps.map((price, i) => {
    const ts = start + i * step + (dayBreakAt !== undefined && i + 1 >= dayBreakAt ? DAY : 0)
    return { symbol: "BTCUSDT", price, size: 1, side: "BUY", tradeId: i + 1, ts, receivedAt: ts }
  })

type Filters = { readonly status?: string; readonly stepSize?: number; readonly minQty?: number; readonly minNotional?: number; readonly applyMinToMarket?: boolean }
const rules = (over: Filters): SymbolRules => ({
  ...noFilters("BTCUSDT"),
  baseAsset: "BTC",
  quoteAsset: "USDT",
  ...(over.status === undefined ? {} : { status: over.status }),
  ...(over.stepSize === undefined ? {} : { stepSize: decimalOf(over.stepSize) }),
  ...(over.minQty === undefined ? {} : { minQty: decimalOf(over.minQty) }),
  ...(over.minNotional === undefined ? {} : { minNotional: decimalOf(over.minNotional) }),
  ...(over.applyMinToMarket === undefined ? {} : { applyMinToMarket: over.applyMinToMarket })
})

const limits = (orderQty: number): RiskLimits => ({ orderQty, maxPosition: 10, maxTradesPerMinute: 100, maxTradesPerHour: 1000 })

const run = (ticks: ReadonlyArray<Tick>, orderQty: number, paper: PaperOptions) => {
  const approvals: Array<Approved> = []
  const events: Array<OrderEvent> = []
  const r = makeVariantReplayer(baseVariant(limits(orderQty)), paper, undefined, {
    onCandidate: (_, d) => {
      if (d._tag === "Approved") approvals.push(d)
    },
    onOrder: (e) => events.push(e)
  })
  for (const t of ticks) r.step(t)
  return { approvals, events, result: r.result(), risk: r.risk }
}

describe("replay applies the live order rules", () => {
  it("an order live would round is rounded the same way: same inputs to prepareMarketOrder, the fill has its quantity", () => {
    const lot = rules({ stepSize: 0.001, minQty: 0.001, minNotional: 0.05, applyMinToMarket: true })
    const { approvals, events, result } = run(ticksOf(prices()), 0.0012345, { fee: 0, slippageBps: 0, rules: () => lot })
    assert.isAtLeast(approvals.length, 2)
    const open = approvals[0]
    // what the order manager computes for this approval (it passes the candidate's price)
    const live = prepareMarketOrder(open, lot, open.candidate.price)
    assert.strictEqual(live._tag, "Ready")
    if (live._tag !== "Ready") return
    assert.strictEqual(live.quantity, 0.001)
    const fill = events.find((e) => e._tag === "OrderFilled" && e.signalId === open.id)
    assert.isDefined(fill)
    if (fill?._tag !== "OrderFilled") return
    assert.strictEqual(fill.executedQty, live.quantity)
    assert.strictEqual(fill.clientOrderId, live.request.clientOrderId)
    // the close sells what is held (0.001), as the order manager would
    const close = approvals[1]
    assert.strictEqual(close.action, "CLOSE")
    assert.strictEqual(close.qty, 0.001)
    assert.strictEqual(result.trades.length, 1)
    assert.strictEqual(result.trades[0].qty, 0.001)
  })

  it("an order live would refuse (minQty, NOTIONAL, not trading) is refused the same way, with the same reason", () => {
    const cases: ReadonlyArray<readonly [string, SymbolRules, number, string]> = [
      ["LOT_SIZE minQty", rules({ stepSize: 0.001, minQty: 0.001 }), 0.0004, "LOT_SIZE minQty"],
      ["NOTIONAL", rules({ stepSize: 0.001, minQty: 0.001, minNotional: 5, applyMinToMarket: true }), 0.001, "NOTIONAL minNotional"],
      ["halted", rules({ status: "HALT" }), 1, "SymbolNotTrading"]
    ]
    for (const [name, r, qty, category] of cases) {
      const { approvals, events, result } = run(ticksOf(prices()), qty, { fee: 0.001, slippageBps: 0, rules: () => r })
      const open = approvals[0]
      const live = prepareMarketOrder(open, r, open.candidate.price)
      assert.strictEqual(live._tag, "Refused", name)
      if (live._tag !== "Refused") continue
      const rejected = events.filter((e) => e._tag === "OrderRejected")
      assert.isAtLeast(rejected.length, 1, name)
      const first = rejected[0]
      if (first._tag !== "OrderRejected") continue
      // exactly what the order manager publishes for a locally refused order
      assert.strictEqual(first.reason, `not sent: ${live.reason}`, name)
      assert.strictEqual(first.code, -1013, name)
      assert.strictEqual(first.signalId, open.id, name)
      assert.isFalse(events.some((e) => e._tag === "OrderFilled"), name)
      assert.strictEqual(result.rejections.get(category), rejected.length, name)
      assert.strictEqual(result.trades.length, 0, name)
      // a refused open leaves no position and nothing pending: the next LONG is decided afresh
      assert.isAtLeast(approvals.length, 2, name)
    }
  })

  it("what LOT_SIZE leaves behind on a close is dust, not a position (the position book's rule), and costs the round trip", () => {
    // day 1: step 0.0001 → open 0.0015; day 2: step 0.001 → the close sells 0.001, 0.0005 is dust
    const day1 = new Date(T).toISOString().slice(0, 10)
    const day2 = new Date(T + DAY).toISOString().slice(0, 10)
    const byDay = rulesByDay(new Map([
      [day1, new Map([["BTCUSDT", rules({ stepSize: 0.0001, minQty: 0.0001 })]])],
      [day2, new Map([["BTCUSDT", rules({ stepSize: 0.001, minQty: 0.001 })]])]
    ]))
    const { approvals, events, result, risk } = run(ticksOf(prices(), T, 1, 70), 0.0015, { fee: 0, slippageBps: 0, rules: byDay })
    const fills = events.filter((e) => e._tag === "OrderFilled")
    assert.deepStrictEqual(fills.map((f) => f._tag === "OrderFilled" ? f.executedQty : 0).slice(0, 2), [0.0015, 0.001])
    const closeApproval = approvals.find((a) => a.action === "CLOSE")!
    assert.strictEqual(closeApproval.qty, 0.0015)
    const live = prepareMarketOrder(closeApproval, byDay("BTCUSDT", closeApproval.ts), closeApproval.candidate.price)
    assert.strictEqual(live._tag === "Ready" ? live.quantity : -1, 0.001)
    const p = risk.positions.get("BTCUSDT")!
    assert.closeTo(p.dust, 0.0005, 1e-12)
    // held now: only the second open (0.0015 rounded down by day 2's step), not the dust
    assert.strictEqual(p.qty, 0.001)
    // the trip: bought 0.0015 at 120 (= 0.18), sold 0.001 at 80 (= 0.08) → −0.10
    const trip = result.trades[0]
    assert.closeTo(trip.pnl, 0.001 * 80 - 0.0015 * 120, 1e-12)
    // flat again: the next LONG opens (dust is not PositionOpen)
    assert.strictEqual(approvals.filter((a) => a.action === "OPEN").length, 2)
  })

  it("latency: the fill is the first trade at or after signal time + latency; the symbol stays pending meanwhile", () => {
    const ps = prices()
    const ticks = ticksOf(ps, T, 2) // 2 ms apart
    const { approvals, events } = run(ticks, 1, { fee: 0, slippageBps: 0, latencyMs: 5 })
    const open = approvals[0]
    const fill = events.find((e) => e._tag === "OrderFilled" && e.signalId === open.id)
    if (fill?._tag !== "OrderFilled") return assert.fail("no fill")
    // signal at trade #34 (ts T + 66); + 5 ms = T + 71 → first trade at or after: #37 at T + 72
    assert.strictEqual(open.candidate.tickTradeId, 34)
    assert.strictEqual(fill.ts, T + 72)
    assert.strictEqual(fill.avgPrice, ps[36])
    assert.strictEqual(fill.fills[0].tradeId, 37)
    const noLatency = run(ticks, 1, { fee: 0, slippageBps: 0 })
    const f0 = noLatency.events.find((e) => e._tag === "OrderFilled")
    assert.strictEqual(f0?._tag === "OrderFilled" ? f0.avgPrice : -1, 120) // the signal's own trade
  })

  it("a BUY the balance cannot pay for is rejected as the exchange would; fees are the taker rate", () => {
    const poor = run(ticksOf(prices()), 1, { fee: 0.001, slippageBps: 0, startingBalance: 100 })
    // 1 × 120 + 0.12 fee > 100
    assert.strictEqual(poor.result.rejections.get("InsufficientBalance"), poor.approvals.filter((a) => a.action === "OPEN").length)
    const rich = run(ticksOf(prices()), 1, { fee: 0.001, slippageBps: 0, startingBalance: 1000 })
    const fill = rich.events.find((e) => e._tag === "OrderFilled")
    assert.strictEqual(fill?._tag === "OrderFilled" ? fill.commission : -1, 120 * 0.001)
  })
})
