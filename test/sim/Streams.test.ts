import { describe, expect, it } from "@effect/vitest"
import * as Fixed from "../../src/sim/Fixed.ts"
import { tradePayload, tradePayloadJson } from "../../src/sim/StreamServer.ts"
import { withSim, WsProbe } from "./SimClient.ts"

const TRADE_KEYS = ["e", "E", "s", "t", "p", "q", "T", "m", "M"]
const isTrade = (f: any) => f.e === "trade" || f.data?.e === "trade"

const expectTradeShape = (trade: any) => {
  expect(Object.keys(trade)).toEqual(TRADE_KEYS)
  expect(trade.e).toBe("trade")
  expect(Number.isInteger(trade.E)).toBe(true)
  expect(Number.isInteger(trade.T)).toBe(true)
  expect(Number.isInteger(trade.t)).toBe(true)
  expect(trade.p).toMatch(/^\d+\.\d{8}$/)
  expect(trade.q).toMatch(/^\d+\.\d{8}$/)
  expect(typeof trade.m).toBe("boolean")
  expect(trade.M).toBe(true)
}

describe("market-data streams", () => {
  it("raw stream /ws/<symbol>@trade sends Binance's trade payload; ids increase per symbol", () =>
    withSim({ symbols: ["BTCUSDT"] }, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      sim.emitTrade("BTCUSDT", 65000.123, 0.5)
      sim.emitTrade("BTCUSDT", 65001, 0.25)
      const first = await probe.next()
      const second = await probe.next()
      expectTradeShape(first)
      expect(first).toMatchObject({ s: "BTCUSDT", p: "65000.12000000", q: "0.50000000" }) // rounded to tick 0.01
      expect(second).toMatchObject({ p: "65001.00000000", q: "0.25000000" })
      expect(second.t).toBe(first.t + 1)
      expect(second.T).toBeGreaterThanOrEqual(first.T)
      probe.close()
    }))

  it("combined stream wraps payloads as {stream, data}", () =>
    withSim({ symbols: ["BTCUSDT", "ETHUSDT"] }, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/stream?streams=btcusdt@trade/ethusdt@trade`)
      sim.emitTrade("ETHUSDT", 3100.5, 1)
      sim.emitTrade("BTCUSDT", 61000, 0.001)
      const eth = await probe.next()
      const btc = await probe.next()
      expect(Object.keys(eth)).toEqual(["stream", "data"])
      expect(eth.stream).toBe("ethusdt@trade")
      expect(btc.stream).toBe("btcusdt@trade")
      expectTradeShape(eth.data)
      expectTradeShape(btc.data)
      expect(eth.data).toMatchObject({ s: "ETHUSDT", t: 1, p: "3100.50000000", q: "1.00000000" })
      expect(btc.data).toMatchObject({ s: "BTCUSDT", t: 1, p: "61000.00000000", q: "0.00100000" })
      probe.close()
    }))

  it("the hand-built trade frame is JSON.stringify of Binance's payload, byte for byte", () => {
    for (const [price, qty, id, maker] of [["65000.12", "0.5", 1, true], ["0.00000001", "123456.789", 9_007_199_254_740, false], ["1", "0", 42, true]] as const) {
      const trade = { symbol: "BTCUSDT", tradeId: id, price: Fixed.fromNumber(Number(price)), qty: Fixed.fromNumber(Number(qty)), time: 1_764_633_600_123, buyerIsMaker: maker }
      expect(tradePayloadJson(trade, 1_764_633_600_456)).toBe(JSON.stringify(tradePayload(trade, 1_764_633_600_456)))
    }
  })

  it("a burst of trades in one loop turn still arrives one trade per frame, in order, on raw and combined streams", () =>
    withSim({ symbols: ["BTCUSDT"] }, async (sim) => {
      const raw = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      const combined = await WsProbe.open(`${sim.wsBaseUrl}/stream?streams=btcusdt@trade`)
      const n = 500
      for (let i = 0; i < n; i++) sim.emitTrade("BTCUSDT", 60000 + i, 0.001)
      for (let i = 0; i < n; i++) {
        const [r, c] = await Promise.all([raw.next(), combined.next()])
        expectTradeShape(r)
        expect(r).toMatchObject({ t: i + 1, p: `${60000 + i}.00000000` })
        expect(c).toEqual({ stream: "btcusdt@trade", data: r })
      }
      raw.close()
      combined.close()
    }))

  it("random-walk ticks carry the same fields and the same seed replays the same prices", () =>
    withSim({ seed: 42, ticksPerSecond: 200 }, (a) =>
      withSim({ seed: 42, ticksPerSecond: 200 }, async (b) => {
        const [pa, pb] = await Promise.all([
          WsProbe.open(`${a.wsBaseUrl}/ws/btcusdt@trade`),
          WsProbe.open(`${b.wsBaseUrl}/ws/btcusdt@trade`)
        ])
        // Each client may join a few ticks late: compare by trade id once enough ids overlap.
        const ta = new Map<number, string>()
        const tb = new Map<number, string>()
        const pull = async (probe: WsProbe, into: Map<number, string>) => {
          const trade = await probe.next(isTrade)
          expectTradeShape(trade)
          into.set(trade.t, `${trade.p}/${trade.q}/${trade.m}`)
        }
        const common = () => [...ta.keys()].filter((id) => tb.has(id))
        while (common().length < 20) await Promise.all([pull(pa, ta), pull(pb, tb)])
        for (const id of common()) expect(ta.get(id)).toBe(tb.get(id))
        pa.close()
        pb.close()
      })
    ))

  it("live SUBSCRIBE / LIST_SUBSCRIPTIONS / UNSUBSCRIBE", () =>
    withSim({ symbols: ["BTCUSDT", "ETHUSDT"] }, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws`)
      probe.send({ method: "SUBSCRIBE", params: ["btcusdt@trade"], id: 1 })
      const subscribed = await probe.next()
      expect(subscribed).toEqual({ result: null, id: 1 })
      expect(Object.keys(subscribed)).toEqual(["result", "id"])

      sim.emitTrade("BTCUSDT", 60000, 0.1)
      expect((await probe.next()).s).toBe("BTCUSDT") // /ws is raw: no wrapper

      probe.send({ method: "LIST_SUBSCRIPTIONS", id: 2 })
      expect(await probe.next()).toEqual({ result: ["btcusdt@trade"], id: 2 })

      probe.send({ method: "UNSUBSCRIBE", params: ["btcusdt@trade"], id: 3 })
      expect(await probe.next()).toEqual({ result: null, id: 3 })
      probe.send({ method: "SUBSCRIBE", params: ["ethusdt@trade"], id: "abc" })
      expect(await probe.next()).toEqual({ result: null, id: "abc" })
      sim.emitTrade("BTCUSDT", 60001, 0.1) // no longer subscribed
      sim.emitTrade("ETHUSDT", 3000, 0.1)
      expect((await probe.next()).s).toBe("ETHUSDT")
      probe.close()
    }))

  it("SET_PROPERTY combined switches to the wrapped payload", () =>
    withSim({}, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      probe.send({ method: "GET_PROPERTY", params: ["combined"], id: 1 })
      expect(await probe.next()).toEqual({ result: false, id: 1 })
      probe.send({ method: "SET_PROPERTY", params: ["combined", true], id: 2 })
      expect(await probe.next()).toEqual({ result: null, id: 2 })
      sim.emitTrade("BTCUSDT", 60000, 0.1)
      expect((await probe.next()).stream).toBe("btcusdt@trade")
      probe.close()
    }))

  it("answers bad requests with Binance's error objects", () =>
    withSim({}, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws`)
      probe.send({ method: "SUBSCRIBE", params: ["not a stream"], id: 1 })
      expect(await probe.next()).toEqual({ error: { code: 2, msg: "Invalid request: invalid stream" }, id: 1 })
      probe.send("{nope")
      expect((await probe.next()).error.code).toBe(3)
      probe.send({ method: "SUBSCRIBE", params: ["btcusdt@trade"], id: 1.5 })
      expect(await probe.next()).toEqual({ error: { code: 2, msg: "Invalid request: request ID must be an unsigned integer" }, id: null })
      probe.send({ method: "GET_PROPERTY", params: ["colour"], id: 4 })
      expect(await probe.next()).toEqual({ error: { code: 0, msg: "Unknown property" }, id: 4 })
      probe.close()
    }))

  it("a well-formed stream of an unknown symbol is accepted and stays silent, as on Binance", () =>
    withSim({}, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws`)
      probe.send({ method: "SUBSCRIBE", params: ["xyzusdt@trade", "btcusdt@aggTrade"], id: 7 })
      expect(await probe.next()).toEqual({ result: null, id: 7 })
      probe.close()
    }))

  it("rejects the upgrade for unknown paths (404) and malformed stream names (400)", () =>
    withSim({}, async (sim) => {
      await expect(WsProbe.open(`${sim.wsBaseUrl}/nope`)).rejects.toThrow(/404/)
      await expect(WsProbe.open(`${sim.wsBaseUrl}/ws/BTCUSDT-trade`)).rejects.toThrow(/400/)
    }))

  it("disconnects a client sending more than 5 messages per second", () =>
    withSim({}, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws`)
      for (let id = 1; id <= 6; id++) probe.send({ method: "LIST_SUBSCRIPTIONS", id })
      expect((await probe.closed).code).toBe(1006)
    }))

  it("dropConnections terminates every client abruptly", () =>
    withSim({ symbols: ["BTCUSDT", "ETHUSDT"] }, async (sim) => {
      const a = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      const b = await WsProbe.open(`${sim.wsBaseUrl}/stream?streams=ethusdt@trade`)
      sim.dropConnections()
      const [ca, cb] = await Promise.all([a.closed, b.closed])
      expect(ca.code).toBe(1006) // no close frame: abnormal closure
      expect(cb.code).toBe(1006)
      // The server keeps accepting new connections.
      const c = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      sim.emitTrade("BTCUSDT", 60000, 0.1)
      expect((await c.next()).s).toBe("BTCUSDT")
      c.close()
    }))

  it("sends ping frames; a client that pongs stays connected", () =>
    withSim({ pingIntervalMs: 20, pongTimeoutMs: 150 }, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      for (let n = 1; n <= 10; n++) await probe.next((f) => f.__ping === n) // 10 × 20 ms > 150 ms pong timeout
      expect(probe.socket.readyState).toBe(probe.socket.OPEN)
      probe.close()
    }))

  it("terminates a client that does not pong within pongTimeoutMs", () =>
    withSim({ pingIntervalMs: 20, pongTimeoutMs: 60 }, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`, { autoPong: false })
      await probe.next((f) => f.__ping === 1)
      expect((await probe.closed).code).toBe(1006)
    }))
})
