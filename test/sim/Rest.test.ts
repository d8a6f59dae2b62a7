import { describe, expect, it } from "@effect/vitest"
import { hmacSha256Hex } from "../../src/exchange/BinanceSigning.ts"
import { SIM_API_KEY, SIM_API_SECRET } from "../../src/sim/index.ts"
import { publicGet, rawRequest, signed, unsignedQuery, withSim, WsProbe } from "./SimClient.ts"

const FULL_KEYS = [
  "symbol", "orderId", "orderListId", "clientOrderId", "transactTime", "price", "origQty", "executedQty",
  "origQuoteOrderQty", "cummulativeQuoteQty", "status", "timeInForce", "type", "side", "workingTime",
  "selfTradePreventionMode", "fills"
]
const QUERY_KEYS = [
  "symbol", "orderId", "orderListId", "clientOrderId", "price", "origQty", "executedQty", "cummulativeQuoteQty",
  "status", "timeInForce", "type", "side", "stopPrice", "icebergQty", "time", "updateTime", "isWorking",
  "workingTime", "origQuoteOrderQty", "selfTradePreventionMode"
]

const marketBuy = (extra: Record<string, string | number> = {}) => ({
  symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.01", ...extra
})
const limit = (side: "BUY" | "SELL", price: string, quantity: string, extra: Record<string, string | number> = {}) => ({
  symbol: "BTCUSDT", side, type: "LIMIT", timeInForce: "GTC", quantity, price, ...extra
})
const balanceOf = (account: any, asset: string) => account.balances.find((b: any) => b.asset === asset)

describe("public REST endpoints", () => {
  it("ping, time and exchangeInfo", () =>
    withSim({ symbols: ["BTCUSDT", "ETHUSDT", "SOLUSDT"] }, async (sim) => {
      expect(await publicGet(sim, "/api/v3/ping")).toMatchObject({ status: 200, body: {} })
      const time = await publicGet(sim, "/api/v3/time")
      expect(Object.keys(time.body)).toEqual(["serverTime"])
      expect(Math.abs(time.body.serverTime - Date.now())).toBeLessThan(1000)
      expect(time.headers.get("x-mbx-used-weight-1m")).toMatch(/^[12]$/) // ping + time, unless a minute just turned

      const all = await publicGet(sim, "/api/v3/exchangeInfo")
      expect(all.body.timezone).toBe("UTC")
      expect(all.body.symbols.map((s: any) => s.symbol)).toEqual(["BTCUSDT", "ETHUSDT", "SOLUSDT"])
      const btc = (await publicGet(sim, "/api/v3/exchangeInfo?symbol=BTCUSDT")).body.symbols
      expect(btc).toHaveLength(1)
      expect(btc[0]).toMatchObject({
        symbol: "BTCUSDT", status: "TRADING", baseAsset: "BTC", quoteAsset: "USDT", baseAssetPrecision: 8,
        quotePrecision: 8, quoteAssetPrecision: 8, quoteOrderQtyMarketAllowed: true
      })
      expect(btc[0].orderTypes).toEqual(expect.arrayContaining(["LIMIT", "MARKET"]))
      const filters = Object.fromEntries(btc[0].filters.map((f: any) => [f.filterType, f]))
      expect(filters.PRICE_FILTER).toEqual({ filterType: "PRICE_FILTER", minPrice: "0.01000000", maxPrice: "1000000.00000000", tickSize: "0.01000000" })
      expect(filters.LOT_SIZE).toEqual({ filterType: "LOT_SIZE", minQty: "0.00001000", maxQty: "9000.00000000", stepSize: "0.00001000" })
      expect(filters.NOTIONAL).toEqual({
        filterType: "NOTIONAL", minNotional: "5.00000000", applyMinToMarket: true, maxNotional: "9000000.00000000",
        applyMaxToMarket: false, avgPriceMins: 5
      })
      expect(Object.keys(filters.MARKET_LOT_SIZE)).toEqual(["filterType", "minQty", "maxQty", "stepSize"])

      const two = await publicGet(sim, `/api/v3/exchangeInfo?symbols=${encodeURIComponent('["ETHUSDT","SOLUSDT"]')}`)
      expect(two.body.symbols.map((s: any) => s.symbol)).toEqual(["ETHUSDT", "SOLUSDT"])
      expect(await publicGet(sim, "/api/v3/exchangeInfo?symbol=NOPE")).toMatchObject({
        status: 400, body: { code: -1121, msg: "Invalid symbol." }
      })
      expect((await publicGet(sim, "/api/v3/exchangeInfo?symbols=BTCUSDT")).body.code).toBe(-1100)
      expect((await publicGet(sim, "/api/v3/nope")).status).toBe(404)
    }))

  it("avgPrice: mins, the window's average price, and closeTime = the last trade's time (not the request's)", () =>
    withSim({ symbols: ["BTCUSDT"] }, async (sim) => {
      sim.emitTrade("BTCUSDT", 60_000, 0.5)
      const last = (await publicGet(sim, "/api/v3/historicalTrades?symbol=BTCUSDT&limit=1")).body[0]
      // later than the trade, by at least a millisecond, so "now" and "last trade" differ
      const waitedUntil = last.time + 2
      while (Date.now() < waitedUntil) await new Promise((resolve) => setImmediate(resolve))
      const avg = await publicGet(sim, "/api/v3/avgPrice?symbol=BTCUSDT")
      expect(Object.keys(avg.body)).toEqual(["mins", "price", "closeTime"])
      expect(avg.body.mins).toBe(5)
      expect(avg.body.price).toMatch(/^\d+\.\d{8}$/)
      expect(avg.body.closeTime).toBe(last.time)
    }))

  it("serverTime follows the configured clock skew", () =>
    withSim({}, async (sim) => {
      sim.setClockSkewMs(3_600_000)
      const { body } = await publicGet(sim, "/api/v3/time")
      expect(body.serverTime - Date.now()).toBeGreaterThan(3_590_000)
    }))
})

describe("signed orders", () => {
  it("a MARKET BUY fills at the simulated price, moves balances and shows in /sim/orders", () =>
    withSim({ symbols: ["BTCUSDT"], startPrices: { BTCUSDT: 60000 } }, async (sim) => {
      const probe = await WsProbe.open(`${sim.wsBaseUrl}/ws/btcusdt@trade`)
      const res = await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "sig-1" }))
      expect(res.status).toBe(200)
      expect(Object.keys(res.body)).toEqual(FULL_KEYS)
      expect(res.body).toMatchObject({
        symbol: "BTCUSDT", orderListId: -1, clientOrderId: "sig-1", price: "0.00000000", origQty: "0.01000000",
        executedQty: "0.01000000", origQuoteOrderQty: "0.00000000", cummulativeQuoteQty: "600.00000000",
        status: "FILLED", timeInForce: "GTC", type: "MARKET", side: "BUY"
      })
      expect(res.body.fills).toEqual([
        { price: "60000.00000000", qty: "0.01000000", commission: "0.00001000", commissionAsset: "BTC", tradeId: 1 }
      ])
      expect(res.headers.get("x-mbx-order-count-10s")).toBe("1")
      expect(res.headers.get("x-mbx-order-count-1d")).toBe("1")
      expect(res.headers.get("x-mbx-used-weight-1m")).toBe("1")

      // Our fill is a public trade too (taker BUY: the buyer is not the maker).
      expect(await probe.next()).toMatchObject({ t: 1, p: "60000.00000000", q: "0.01000000", m: false })

      const account = (await signed(sim, "GET", "/api/v3/account", {})).body
      expect(balanceOf(account, "BTC")).toEqual({ asset: "BTC", free: "0.00999000", locked: "0.00000000" })
      expect(balanceOf(account, "USDT")).toEqual({ asset: "USDT", free: "999400.00000000", locked: "0.00000000" })

      const inspected = (await publicGet(sim, "/sim/orders")).body
      expect(inspected).toEqual([
        expect.objectContaining({
          symbol: "BTCUSDT", side: "BUY", type: "MARKET", qty: 0.01, clientOrderId: "sig-1",
          orderId: res.body.orderId, status: "FILLED", price: 60000
        })
      ])
      expect(sim.orders()).toEqual(inspected)
      expect(sim.requests()).toContainEqual({ method: "POST", path: "/api/v3/order", status: 200 })
      probe.close()
    }))

  it("a MARKET SELL pays commission in the quote asset; quoteOrderQty resolves to whole steps", () =>
    withSim({ balances: { USDT: 1000, BTC: 1 } }, async (sim) => {
      const sell = await signed(sim, "POST", "/api/v3/order", { symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "0.01" })
      expect(sell.body.fills[0]).toMatchObject({ commission: "0.60000000", commissionAsset: "USDT" })
      const buy = await signed(sim, "POST", "/api/v3/order", { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quoteOrderQty: "100" })
      expect(buy.body).toMatchObject({
        origQty: "0.00166000", executedQty: "0.00166000", origQuoteOrderQty: "100.00000000", cummulativeQuoteQty: "99.60000000"
      })
      const account = (await signed(sim, "GET", "/api/v3/account", { omitZeroBalances: "true" })).body
      expect(account.balances).toEqual([
        { asset: "BTC", free: "0.99165834", locked: "0.00000000" },
        { asset: "USDT", free: "1499.80000000", locked: "0.00000000" }
      ])
    }))

  it("newOrderRespType ACK and RESULT trim the answer", () =>
    withSim({}, async (sim) => {
      const ack = await signed(sim, "POST", "/api/v3/order", marketBuy({ newOrderRespType: "ACK" }))
      expect(Object.keys(ack.body)).toEqual(["symbol", "orderId", "orderListId", "clientOrderId", "transactTime"])
      expect(ack.body.clientOrderId).toMatch(/^[A-Za-z0-9]{22}$/) // generated when not sent
      const result = await signed(sim, "POST", "/api/v3/order", marketBuy({ newOrderRespType: "RESULT" }))
      expect(Object.keys(result.body)).toEqual(FULL_KEYS.filter((k) => k !== "fills"))
    }))

  it("accepts parameters split between query string and form body (signature over query + body)", () =>
    withSim({}, async (sim) => {
      const query = "symbol=BTCUSDT&side=BUY&type=MARKET"
      const bodyParams = `quantity=0.001&timestamp=${Date.now()}`
      const signature = hmacSha256Hex(query + bodyParams, SIM_API_SECRET)
      const res = await rawRequest(sim, "POST", `/api/v3/order?${query}`, {
        headers: { "X-MBX-APIKEY": SIM_API_KEY, "Content-Type": "application/x-www-form-urlencoded" },
        body: `${bodyParams}&signature=${signature}`
      })
      expect(res.status).toBe(200)
      expect(res.body.status).toBe("FILLED")
      const asBody = await signed(sim, "POST", "/api/v3/order", marketBuy(), { asBody: true })
      expect(asBody.status).toBe(200)
    }))

  it("a LIMIT order rests as NEW, locks funds, and fills when a later trade crosses it", () =>
    withSim({ startPrices: { BTCUSDT: 60000 } }, async (sim) => {
      const placed = await signed(sim, "POST", "/api/v3/order", limit("BUY", "59000", "0.01", { newClientOrderId: "lim-1" }))
      expect(placed.body).toMatchObject({ status: "NEW", executedQty: "0.00000000", price: "59000.00000000", fills: [] })
      const open = (await signed(sim, "GET", "/api/v3/openOrders", { symbol: "BTCUSDT" })).body
      expect(open).toHaveLength(1)
      expect(Object.keys(open[0])).toEqual(QUERY_KEYS)
      let account = (await signed(sim, "GET", "/api/v3/account", {})).body
      expect(balanceOf(account, "USDT")).toEqual({ asset: "USDT", free: "999410.00000000", locked: "590.00000000" })

      sim.emitTrade("BTCUSDT", 59500) // above the limit: nothing happens
      expect((await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", orderId: placed.body.orderId })).body.status).toBe("NEW")
      sim.emitTrade("BTCUSDT", 58990)
      const filled = (await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", origClientOrderId: "lim-1" })).body
      expect(filled).toMatchObject({ status: "FILLED", executedQty: "0.01000000", cummulativeQuoteQty: "590.00000000" })
      account = (await signed(sim, "GET", "/api/v3/account", {})).body
      expect(balanceOf(account, "USDT")).toEqual({ asset: "USDT", free: "999410.00000000", locked: "0.00000000" })
      expect(balanceOf(account, "BTC").free).toBe("0.00999000")
      expect((await signed(sim, "GET", "/api/v3/openOrders", {})).body).toEqual([])
    }))

  it("LIMIT crossing the market fills at once; LIMIT_MAKER would take and is refused; IOC expires", () =>
    withSim({ startPrices: { BTCUSDT: 60000 } }, async (sim) => {
      const taker = await signed(sim, "POST", "/api/v3/order", limit("BUY", "61000", "0.01"))
      expect(taker.body).toMatchObject({ status: "FILLED", cummulativeQuoteQty: "600.00000000" })
      expect(taker.body.fills[0].price).toBe("60000.00000000")
      const maker = await signed(sim, "POST", "/api/v3/order", {
        symbol: "BTCUSDT", side: "BUY", type: "LIMIT_MAKER", quantity: "0.01", price: "61000"
      })
      expect(maker).toMatchObject({ status: 400, body: { code: -2010, msg: "Order would immediately match and take." } })
      const ioc = await signed(sim, "POST", "/api/v3/order", limit("BUY", "59000", "0.01", { timeInForce: "IOC" }))
      expect(ioc.body).toMatchObject({ status: "EXPIRED", executedQty: "0.00000000", timeInForce: "IOC" })
    }))

  it("cancels an open order; cancelling it again is 'Unknown order sent.'", () =>
    withSim({}, async (sim) => {
      const placed = (await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000", "0.01", { newClientOrderId: "c-1" }))).body
      const canceled = await signed(sim, "DELETE", "/api/v3/order", { symbol: "BTCUSDT", origClientOrderId: "c-1", newClientOrderId: "cancel-c-1" })
      expect(canceled.status).toBe(200)
      expect(canceled.body).toMatchObject({
        symbol: "BTCUSDT", origClientOrderId: "c-1", orderId: placed.orderId, orderListId: -1, clientOrderId: "cancel-c-1",
        status: "CANCELED", type: "LIMIT", side: "BUY", price: "50000.00000000"
      })
      const account = (await signed(sim, "GET", "/api/v3/account", {})).body
      expect(balanceOf(account, "USDT")).toEqual({ asset: "USDT", free: "1000000.00000000", locked: "0.00000000" })
      const again = await signed(sim, "DELETE", "/api/v3/order", { symbol: "BTCUSDT", orderId: placed.orderId })
      expect(again).toMatchObject({ status: 400, body: { code: -2011, msg: "Unknown order sent." } })
      expect((await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", orderId: placed.orderId })).body.status).toBe("CANCELED")
    }))

  it("a newClientOrderId is unique among OPEN orders only: reusing a FILLED order's id executes again", () =>
    withSim({}, async (sim) => {
      // While an order with the id is open, any new order with it is a duplicate.
      const resting = await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000", "0.01", { newClientOrderId: "dup-1" }))
      expect(resting.body.status).toBe("NEW")
      const duplicate = { status: 400, body: { code: -2010, msg: "Duplicate order sent." } }
      expect(await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000", "0.01", { newClientOrderId: "dup-1" }))).toMatchObject(duplicate)
      expect(await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "dup-1" }))).toMatchObject(duplicate)

      // Binance's rule: once the order is FILLED the same id is accepted again and executes again.
      // An idempotent client therefore cannot rely on the exchange to refuse a retried MARKET order.
      const first = await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "mkt-1" }))
      const second = await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "mkt-1" }))
      expect(first.body.status).toBe("FILLED")
      expect(second.body.status).toBe("FILLED")
      expect(second.body.orderId).not.toBe(first.body.orderId)
      const executed = sim.orders().filter((o) => o.clientOrderId === "mkt-1")
      expect(executed.map((o) => o.status)).toEqual(["FILLED", "FILLED"])
      // Querying by the id answers the newest order.
      const queried = await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", origClientOrderId: "mkt-1" })
      expect(queried.body.orderId).toBe(second.body.orderId)

      // A canceled order frees its id as well.
      await signed(sim, "DELETE", "/api/v3/order", { symbol: "BTCUSDT", origClientOrderId: "dup-1" })
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "dup-1" }))).body.status).toBe("FILLED")
    }))
})

describe("REST errors", () => {
  it("wrong signature: HTTP 400, -1022", () =>
    withSim({}, async (sim) => {
      const res = await signed(sim, "POST", "/api/v3/order", marketBuy(), { secret: "wrong-secret" })
      expect(res).toMatchObject({ status: 400, body: { code: -1022, msg: "Signature for this request is not valid." } })
      expect(Object.keys(res.body)).toEqual(["code", "msg"])
      expect(res.headers.get("x-mbx-used-weight-1m")).toBe("1")
      expect(sim.orders()).toEqual([])
      expect(sim.requests()).toContainEqual({ method: "POST", path: "/api/v3/order", status: 400, code: -1022 })
    }))

  it("the signature is case-insensitive hex", () =>
    withSim({}, async (sim) => {
      const query = unsignedQuery({ ...marketBuy(), timestamp: Date.now() })
      const signature = hmacSha256Hex(query, SIM_API_SECRET).toUpperCase()
      const res = await rawRequest(sim, "POST", `/api/v3/order?${query}&signature=${signature}`, { headers: { "X-MBX-APIKEY": SIM_API_KEY } })
      expect(res.status).toBe(200)
    }))

  it("timestamp outside recvWindow or ahead of server time: -1021", () =>
    withSim({}, async (sim) => {
      const stale = await signed(sim, "GET", "/api/v3/account", {}, { timestamp: Date.now() - 6000 })
      expect(stale).toMatchObject({ status: 400, body: { code: -1021, msg: "Timestamp for this request is outside of the recvWindow." } })
      const widened = await signed(sim, "GET", "/api/v3/account", { recvWindow: 10000 }, { timestamp: Date.now() - 6000 })
      expect(widened.status).toBe(200)
      const ahead = await signed(sim, "GET", "/api/v3/account", {}, { timestamp: Date.now() + 5000 })
      expect(ahead).toMatchObject({ status: 400, body: { code: -1021, msg: "Timestamp for this request was 1000ms ahead of the server's time." } })
      const tooWide = await signed(sim, "GET", "/api/v3/account", { recvWindow: 60001 })
      expect(tooWide).toMatchObject({ status: 400, body: { code: -1102 } })
    }))

  it("clock skew makes a correct client's timestamp stale", () =>
    withSim({}, async (sim) => {
      sim.setClockSkewMs(10_000)
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy())).body.code).toBe(-1021)
      sim.setClockSkewMs(0)
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy())).status).toBe(200)
    }))

  it("missing or unknown API key: HTTP 401, -2014 / -2015", () =>
    withSim({}, async (sim) => {
      expect(await signed(sim, "GET", "/api/v3/account", {}, { apiKey: null })).toMatchObject({
        status: 401, body: { code: -2014, msg: "API-key format invalid." }
      })
      expect(await signed(sim, "GET", "/api/v3/account", {}, { apiKey: "someone-else" })).toMatchObject({
        status: 401, body: { code: -2015, msg: "Invalid API-key, IP, or permissions for action." }
      })
    }))

  it("mandatory parameters: -1102 with the parameter's name", () =>
    withSim({}, async (sim) => {
      const noTimestamp = await rawRequest(sim, "GET", "/api/v3/account?signature=00", { headers: { "X-MBX-APIKEY": SIM_API_KEY } })
      expect(noTimestamp).toMatchObject({
        status: 400, body: { code: -1102, msg: "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed." }
      })
      const noSignature = await rawRequest(sim, "GET", `/api/v3/account?timestamp=${Date.now()}`, { headers: { "X-MBX-APIKEY": SIM_API_KEY } })
      expect(noSignature.body).toEqual({ code: -1102, msg: "Mandatory parameter 'signature' was not sent, was empty/null, or malformed." })
      expect((await signed(sim, "POST", "/api/v3/order", { side: "BUY", type: "MARKET", quantity: "1" })).body).toEqual({
        code: -1102, msg: "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed."
      })
      expect((await signed(sim, "POST", "/api/v3/order", { symbol: "BTCUSDT", side: "BUY", type: "MARKET" })).body).toEqual({
        code: -1102, msg: "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
      })
      expect((await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000", "0.01", { timeInForce: "" }))).body.code).toBe(-1115)
      expect((await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT" })).body).toEqual({
        code: -1102, msg: "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
      })
    }))

  it("invalid symbol -1121, invalid enum values, parameters sent when not required", () =>
    withSim({}, async (sim) => {
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ symbol: "DOGEBTC" }))).body).toEqual({ code: -1121, msg: "Invalid symbol." })
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ side: "HOLD" }))).body.code).toBe(-1117)
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ type: "FANCY" }))).body.code).toBe(-1116)
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ timeInForce: "GTC" }))).body).toEqual({
        code: -1106, msg: "Parameter 'timeInForce' sent when not required."
      })
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ type: "STOP_LOSS" }))).body).toEqual({
        code: -2010, msg: "Stop loss orders are not supported for this symbol."
      })
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ colour: "red" }))).body).toEqual({
        code: -1104, msg: "Not all sent parameters were read; read '6' parameter(s) but was sent '7'."
      })
    }))

  it("unknown order: GET -2013, DELETE -2011", () =>
    withSim({}, async (sim) => {
      expect(await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", orderId: 999 })).toMatchObject({
        status: 400, body: { code: -2013, msg: "Order does not exist." }
      })
      expect((await signed(sim, "GET", "/api/v3/order", { symbol: "BTCUSDT", origClientOrderId: "never-sent" })).body.code).toBe(-2013)
      expect((await signed(sim, "DELETE", "/api/v3/order", { symbol: "BTCUSDT", orderId: 999 })).body).toEqual({
        code: -2011, msg: "Unknown order sent."
      })
    }))

  it("filter failures: -1013 'Filter failure: …'; too much precision -1111; malformed decimals -1100", () =>
    withSim({ startPrices: { BTCUSDT: 60000 } }, async (sim) => {
      const failure = (filter: string) => ({ status: 400, body: { code: -1013, msg: `Filter failure: ${filter}` } })
      expect(await signed(sim, "POST", "/api/v3/order", marketBuy({ quantity: "0.000015" }))).toMatchObject(failure("LOT_SIZE"))
      expect(await signed(sim, "POST", "/api/v3/order", marketBuy({ quantity: "0.00008" }))).toMatchObject(failure("NOTIONAL")) // 4.8 USDT < 5
      expect(await signed(sim, "POST", "/api/v3/order", marketBuy({ quantity: "200" }))).toMatchObject(failure("MARKET_LOT_SIZE"))
      expect(await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000.005", "0.01"))).toMatchObject(failure("PRICE_FILTER"))
      expect(await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000", "10000"))).toMatchObject(failure("LOT_SIZE"))
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ quantity: "0.000000001" }))).body).toEqual({
        code: -1111, msg: "Parameter 'quantity' has too much precision."
      })
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ quantity: "1e-3" }))).body.code).toBe(-1100)
      expect(sim.orders()).toEqual([])
    }))

  it("insufficient balance: -2010", () =>
    withSim({ balances: { USDT: 100 } }, async (sim) => {
      const insufficient = { status: 400, body: { code: -2010, msg: "Account has insufficient balance for requested action." } }
      expect(await signed(sim, "POST", "/api/v3/order", marketBuy())).toMatchObject(insufficient) // 600 USDT needed
      expect(await signed(sim, "POST", "/api/v3/order", { symbol: "BTCUSDT", side: "SELL", type: "MARKET", quantity: "0.001" })).toMatchObject(insufficient)
      expect(await signed(sim, "POST", "/api/v3/order", limit("BUY", "50000", "0.01"))).toMatchObject(insufficient)
      expect(sim.orders()).toEqual([])
    }))

  it("newClientOrderId must match ^[\\.A-Z\\:/a-z0-9_-]{1,36}$ (-1100)", () =>
    withSim({}, async (sim) => {
      const expected = {
        code: -1100,
        msg: "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'."
      }
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "has space" }))).body).toEqual(expected)
      expect((await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "x".repeat(37) }))).body).toEqual(expected)
      const ok = await signed(sim, "POST", "/api/v3/order", marketBuy({ newClientOrderId: "BTC:1/a.b_c-D" }))
      expect(ok.body.clientOrderId).toBe("BTC:1/a.b_c-D")
    }))
})
