/** The simulator's historicalTrades (Binance's fields, paging, limits, errors) and its market-data fault switches. */
import { describe, expect, it } from "@effect/vitest"
import WebSocket from "ws"
import { parseMarketFaults } from "../../src/sim/MarketData.ts"
import { publicGet, withSim } from "./SimClient.ts"

const A = "BTCUSDT"

describe("GET /api/v3/historicalTrades", () => {
  it("answers Binance's fields in id order from fromId, with weight 25", () =>
    withSim({}, async (sim) => {
      for (let i = 0; i < 10; i++) sim.emitTrade(A, 100 + i, 0.5)
      const res = await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=4&limit=3`)
      expect(res.status).toBe(200)
      expect(res.headers.get("x-mbx-used-weight-1m")).toBe("25")
      expect(res.body).toEqual([4, 5, 6].map((id) => ({
        id,
        price: expect.any(String),
        qty: "0.50000000",
        quoteQty: expect.any(String),
        time: expect.any(Number),
        isBuyerMaker: expect.any(Boolean),
        isBestMatch: true
      })))
      expect(Object.keys(res.body[0])).toEqual(["id", "price", "qty", "quoteQty", "time", "isBuyerMaker", "isBestMatch"])
      expect(Number(res.body[0].quoteQty)).toBeCloseTo(Number(res.body[0].price) * 0.5, 8)
    }))

  it("without fromId: the most recent trades; default limit 500, capped at 1000; past the end: []", () =>
    withSim({}, async (sim) => {
      for (let i = 0; i < 1200; i++) sim.emitTrade(A, 100, 1)
      const recent = await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&limit=2`)
      expect(recent.body.map((t: { id: number }) => t.id)).toEqual([1199, 1200])
      expect((await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=1`)).body).toHaveLength(500)
      expect((await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=1&limit=5000`)).body).toHaveLength(1000)
      expect((await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=1201`)).body).toEqual([])
    }))

  it("refuses a missing or unknown symbol and a malformed fromId with Binance's codes", () =>
    withSim({}, async (sim) => {
      expect((await publicGet(sim, "/api/v3/historicalTrades")).body.code).toBe(-1102)
      expect((await publicGet(sim, "/api/v3/historicalTrades?symbol=NOPEUSDT")).body.code).toBe(-1121)
      const bad = await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=abc`)
      expect(bad.status).toBe(400)
      expect(bad.body.code).toBe(-1100)
    }))

  it("faults: failing requests (503, -1008), fewer rows than asked, forgotten trades", () =>
    withSim({}, async (sim) => {
      for (let i = 0; i < 20; i++) sim.emitTrade(A, 100, 1)
      sim.setMarketFaults({ historicalFailures: 2, historicalMaxRows: 4 })
      const first = await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=1&limit=10`)
      expect(first.status).toBe(503)
      expect(first.body.code).toBe(-1008)
      expect((await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=1&limit=10`)).status).toBe(503)
      const short = await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=1&limit=10`)
      expect(short.body.map((t: { id: number }) => t.id)).toEqual([1, 2, 3, 4])
      sim.setMarketFaults({})
      sim.forgetTradesBelow(A, 15)
      const forgotten = await publicGet(sim, `/api/v3/historicalTrades?symbol=${A}&fromId=10&limit=3`)
      expect(forgotten.body.map((t: { id: number }) => t.id)).toEqual([15, 16, 17])
    }))
})

describe("market-data faults", () => {
  it("lifetime: the connection is closed with a close frame once it is that old (Binance: 24 h)", () =>
    withSim({ marketFaults: { maxConnectionMs: 150 } }, async (sim) => {
      const ws = new WebSocket(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      const closed = await new Promise<{ code: number; after: number }>((resolve) => {
        const opened = Date.now()
        ws.on("close", (code) => resolve({ code, after: Date.now() - opened }))
      })
      expect(closed.code).toBe(1001)
      expect(closed.after).toBeGreaterThanOrEqual(100)
    }))

  it("duplicates, out-of-order ids and unsubscribed symbols reach a subscribed client", () =>
    withSim({ marketFaults: { duplicateRate: 0.3, reorderRate: 0.3, unsubscribedRate: 0.3 } }, async (sim) => {
      const ws = new WebSocket(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      await new Promise((resolve) => ws.on("open", resolve))
      const frames: Array<{ s: string; t: number }> = []
      ws.on("message", (data) => frames.push(JSON.parse(String(data))))
      for (let i = 0; i < 200; i++) sim.emitTrade(A, 100, 1)
      sim.setMarketFaults({})
      sim.emitTrade(A, 100, 1) // trade 201 also releases a held-back one
      const until = Date.now() + 10_000
      while (!frames.some((f) => f.t === 201) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 10))
      ws.close()
      const ids = frames.filter((f) => f.s === A).map((f) => f.t)
      expect(ids.length).toBeGreaterThan(200) // duplicates
      expect(ids.some((id, i) => i > 0 && id < ids[i - 1])).toBe(true) // out of order
      expect(frames.some((f) => f.s === "XYZUSDT")).toBe(true)
    }))

  it("parses the sim-exchange --faults flag, and names what is wrong and what is allowed", () => {
    expect(parseMarketFaults("cut=2s-5s, stall=30s/5s, lifetime=24h, malformed=0.01, historical-down, historical-max=100")).toEqual({
      faults: {
        cutEveryMs: { min: 2000, max: 5000 },
        stallEveryMs: { every: 30_000, forMs: 5000 },
        maxConnectionMs: 86_400_000,
        malformedRate: 0.01,
        historicalDown: true,
        historicalMaxRows: 100
      }
    })
    expect(parseMarketFaults("")).toEqual({ faults: {} })
    const bad = parseMarketFaults("malformed=2")
    expect("error" in bad && bad.error).toMatch(/"malformed=2" is not valid; malformed takes a probability between 0 and 1/)
    expect("error" in parseMarketFaults("explode") && parseMarketFaults("explode")).toMatchObject({ error: expect.stringMatching(/unknown fault "explode"; allowed: /) })
  })
})
