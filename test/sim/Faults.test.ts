import { describe, expect, it } from "@effect/vitest"
import { signedQuery } from "../../src/exchange/BinanceSigning.ts"
import { SIM_API_KEY, SIM_API_SECRET } from "../../src/sim/index.ts"
import { nodeRequest, signed, withSim } from "./SimClient.ts"

const order = (clientOrderId: string) => ({ symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01", newClientOrderId: clientOrderId })

describe("injected faults (order placement only, FIFO)", () => {
  it("executeThenDrop executes the order, then the client sees a socket hang-up", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "executeThenDrop" })
      const url = `${sim.restBaseUrl}/api/v3/order?${signedQuery({ ...order("drop-1"), timestamp: Date.now() }, SIM_API_SECRET)}`
      await expect(nodeRequest(url, "POST", { "X-MBX-APIKEY": SIM_API_KEY })).rejects.toMatchObject({
        code: "ECONNRESET",
        message: "socket hang up"
      })
      expect(sim.orders()).toEqual([expect.objectContaining({ clientOrderId: "drop-1", status: "FILLED" })])
      expect(sim.requests()).toContainEqual({ method: "POST", path: "/api/v3/order", status: 0 })
      // The order is there to be found by a reconciling client; the fault was used up.
      const found = await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", origClientOrderId: "drop-1" })
      expect(found.body.status).toBe("FILLED")
      expect((await signed(sim, "POST", "/api/v3/order", order("after-drop"))).status).toBe(200)
    }))

  it("rateLimited answers 429 with Retry-After and -1003 without executing", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "rateLimited", status: 429, retryAfterSec: 7 })
      const limited = await signed(sim, "POST", "/api/v3/order", order("rl-1"))
      expect(limited.status).toBe(429)
      expect(limited.headers.get("retry-after")).toBe("7")
      expect(limited.body.code).toBe(-1003)
      expect(limited.body.msg).toMatch(/^Too much request weight used; current limit is 6000 request weight per 1 MINUTE\./)
      expect(sim.orders()).toEqual([])
      expect((await signed(sim, "POST", "/api/v3/order", order("rl-1"))).status).toBe(200)
    }))

  it("418 is the IP ban variant", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "rateLimited", status: 418, retryAfterSec: 120 })
      const banned = await signed(sim, "POST", "/api/v3/order", order("ban-1"))
      expect(banned.status).toBe(418)
      expect(banned.headers.get("retry-after")).toBe("120")
      expect(banned.body.msg).toMatch(/^Way too much request weight used; IP banned until \d+\./)
    }))

  it("httpStatus: 5xx with or without execution", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "httpStatus", status: 503, executed: true })
      sim.injectFault({ kind: "httpStatus", status: 504, executed: false })
      const first = await signed(sim, "POST", "/api/v3/order", order("5xx-1"))
      const second = await signed(sim, "POST", "/api/v3/order", order("5xx-2"))
      expect(first).toMatchObject({ status: 503, body: { code: -1008 } })
      expect(second).toMatchObject({ status: 504, body: { code: -1007 } })
      expect(sim.orders().map((o) => o.clientOrderId)).toEqual(["5xx-1"])
    }))

  it("executeThenDelay executes at once and answers after the delay", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "executeThenDelay", ms: 150 })
      const started = Date.now()
      const pending = signed(sim, "POST", "/api/v3/order", order("slow-1"))
      const res = await pending
      expect(Date.now() - started).toBeGreaterThanOrEqual(140)
      expect(res.body.status).toBe("FILLED")
      expect(sim.orders()).toHaveLength(1)
    }))

  it("error answers the given Binance error without executing", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "error", code: -1015, msg: "Too many new orders; current limit is 100 orders per 10 SECOND.", status: 429 })
      sim.injectFault({ kind: "error", code: -2010, msg: "Market is closed." })
      expect(await signed(sim, "POST", "/api/v3/order", order("e-1"))).toMatchObject({
        status: 429, body: { code: -1015, msg: "Too many new orders; current limit is 100 orders per 10 SECOND." }
      })
      expect(await signed(sim, "POST", "/api/v3/order", order("e-2"))).toMatchObject({ status: 400, body: { code: -2010, msg: "Market is closed." } })
      expect(sim.orders()).toEqual([])
    }))

  it("faults wait for an order placement: other requests pass untouched", () =>
    withSim({}, async (sim) => {
      sim.injectFault({ kind: "rateLimited", status: 429, retryAfterSec: 1 })
      expect((await signed(sim, "GET", "/api/v3/account", {})).status).toBe(200)
      expect((await signed(sim, "GET", "/api/v3/openOrders", {})).status).toBe(200)
      expect((await signed(sim, "POST", "/api/v3/order", order("f-1"))).status).toBe(429)
    }))
})
