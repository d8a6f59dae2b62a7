/**
 * Binance SPOT REST semantics over plain request data: routing, request weight, SIGNED-endpoint security
 * (API key, timestamp/recvWindow, HMAC signature), parameter validation with Binance's codes and messages,
 * and injected faults. The HTTP server only moves bytes; everything Binance-specific is decided here.
 */
import { verifySignature } from "../exchange/BinanceSigning.ts"
import type { EngineOrder, NewOrder, OrderType, Side, SimEngine, TimeInForce } from "./Engine.ts"
import { isOpen } from "./Engine.ts"
import * as Fixed from "./Fixed.ts"
import { historicalTrades, type MarketFaults, TradeHistory } from "./MarketData.ts"
import { exchangeInfo, RATE_LIMITS, STP_MODES } from "./Markets.ts"
import {
  badRequest,
  BinanceError,
  illegalChars,
  invalidSymbol,
  mandatory,
  notRequired,
  type Params,
  parseParams,
  totalParamsForSignature
} from "./Params.ts"
import * as Responses from "./Responses.ts"

export type SimFault =
  /** Execute the order, then destroy the socket without a response. */
  | { readonly kind: "executeThenDrop" }
  /** Execute the order, then answer normally after `ms`. */
  | { readonly kind: "executeThenDelay"; readonly ms: number }
  /** Answer a 5xx; the order executes first when `executed`. */
  | { readonly kind: "httpStatus"; readonly status: 500 | 502 | 503 | 504; readonly executed: boolean }
  /** Answer 429/418 with Retry-After and code -1003, without executing. */
  | { readonly kind: "rateLimited"; readonly status: 429 | 418; readonly retryAfterSec: number }
  /** Answer this Binance error (HTTP 400 unless given), without executing. */
  | { readonly kind: "error"; readonly code: number; readonly msg: string; readonly status?: number }
  /** Destroy the socket without a response and without executing (a request lost on the way in). */
  | { readonly kind: "drop" }
  /**
   * Hold the request `ms` (as if delayed in transit), then process it normally: its timestamp is checked against the
   * server's clock when it is processed, so it executes only if still inside its recvWindow.
   */
  | { readonly kind: "hold"; readonly ms: number }

export interface RestRequest {
  readonly method: string
  readonly pathname: string
  readonly rawQuery: string
  readonly rawBody: string
  readonly apiKey: string | undefined
}

export interface RestReply {
  readonly status: number
  readonly body: unknown
  readonly headers: Readonly<Record<string, string>>
  /** The Binance error code, when the body is an error. */
  readonly code?: number
}

export type Outcome =
  | { readonly _tag: "Reply"; readonly reply: RestReply; readonly delayMs: number }
  | { readonly _tag: "Drop" }
  /** Wait `ms`, then handle the same request again without taking a fault. */
  | { readonly _tag: "Hold"; readonly ms: number }

export interface RestApiOptions {
  readonly engine: SimEngine
  readonly apiKey: string
  readonly apiSecret: string
  /** Server time: real time plus the configured skew. */
  readonly now: () => number
  readonly takeFault: () => SimFault | undefined
  /** Public trades for historicalTrades, and its faults (market-data side). */
  readonly history?: TradeHistory
  readonly marketFaults?: { current: MarketFaults }
  /** Faults for order lookups (GET /api/v3/order); none when absent. */
  readonly takeQueryFault?: () => SimFault | undefined
}

const MAX_RECV_WINDOW = 60000
const DEFAULT_RECV_WINDOW = 5000
const CLIENT_ORDER_ID_RANGE = "^[\\.A-Z\\:/a-z0-9_-]{1,36}$"
const CLIENT_ORDER_ID = new RegExp(CLIENT_ORDER_ID_RANGE)
const LONG_RANGE = "^[0-9]{1,20}$"
const SYMBOLS_RANGE = '^\\[("[A-Z0-9-_.]{1,20}"(,"[A-Z0-9-_.]{1,20}"){0,}){0,1}\\]$'
const SYMBOLS_PATTERN = new RegExp(SYMBOLS_RANGE)
const SIDES: ReadonlyArray<Side> = ["BUY", "SELL"]
const ALL_ORDER_TYPES = ["LIMIT", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "LIMIT_MAKER"]
const TIME_IN_FORCE: ReadonlyArray<TimeInForce> = ["GTC", "IOC", "FOK"]
const UNSUPPORTED_TYPE_MESSAGE: Record<string, string> = {
  STOP_LOSS: "Stop loss orders are not supported for this symbol.",
  STOP_LOSS_LIMIT: "Stop loss limit orders are not supported for this symbol.",
  TAKE_PROFIT: "Take profit orders are not supported for this symbol.",
  TAKE_PROFIT_LIMIT: "Take profit limit orders are not supported for this symbol."
}
const SECURITY = ["recvWindow", "timestamp", "signature"]
const NEW_ORDER_PARAMS = [
  "symbol", "side", "type", "timeInForce", "quantity", "quoteOrderQty", "price", "newClientOrderId", "strategyId",
  "strategyType", "stopPrice", "trailingDelta", "icebergQty", "newOrderRespType", "selfTradePreventionMode",
  "pegPriceType", "pegOffsetValue", "pegOffsetType", ...SECURITY
]

/** What a 5xx fault answers: Binance's "execution status unknown" family. */
const SERVER_ERRORS: Record<number, { readonly code: number; readonly msg: string }> = {
  500: { code: -1000, msg: "An unknown error occurred while processing the request." },
  502: { code: -1001, msg: "Internal error; unable to process your request. Please try again." },
  503: { code: -1008, msg: "Server is currently overloaded with other requests. Please try again in a few minutes." },
  504: { code: -1007, msg: "Timeout waiting for response from backend server. Send status unknown; execution status unknown." }
}

interface Handled {
  readonly body: unknown
  readonly headers?: Readonly<Record<string, string>>
  /** An order was placed and executed/accepted (faults that "execute" apply only then). */
  readonly executed?: boolean
}

interface Route {
  readonly weight: (params: Params) => number
  readonly signed: boolean
  /** For SIGNED endpoints: every parameter the endpoint reads (others fail with -1104). */
  readonly accepts: ReadonlyArray<string>
  readonly handle: (params: Params) => Handled
}

const fixedWeight = (weight: number) => () => weight
const emptyHistory = new TradeHistory(0)

export class RestApi {
  readonly #engine: SimEngine
  readonly #apiKey: string
  readonly #apiSecret: string
  readonly #now: () => number
  readonly #takeFault: () => SimFault | undefined
  readonly #takeQueryFault: () => SimFault | undefined
  readonly #routes: ReadonlyMap<string, Route>
  #weightWindow = -1
  #usedWeight = 0
  #orderWindows = { tenSeconds: -1, day: -1, countTenSeconds: 0, countDay: 0 }

  constructor(options: RestApiOptions) {
    this.#engine = options.engine
    this.#apiKey = options.apiKey
    this.#apiSecret = options.apiSecret
    this.#now = options.now
    this.#takeFault = options.takeFault
    this.#takeQueryFault = options.takeQueryFault ?? (() => undefined)
    this.#routes = new Map<string, Route>([
      ["GET /api/v3/ping", { weight: fixedWeight(1), signed: false, accepts: [], handle: () => ({ body: {} }) }],
      ["GET /api/v3/time", { weight: fixedWeight(1), signed: false, accepts: [], handle: () => ({ body: { serverTime: this.#now() } }) }],
      ["GET /api/v3/exchangeInfo", { weight: fixedWeight(20), signed: false, accepts: [], handle: (p) => this.#exchangeInfo(p) }],
      [
        "GET /api/v3/historicalTrades",
        {
          weight: fixedWeight(25),
          signed: false,
          accepts: [],
          handle: (p) => ({
            body: historicalTrades(options.history ?? emptyHistory, p, this.#requiredSymbol(p), options.marketFaults ?? { current: {} })
          })
        }
      ],
      ["GET /api/v3/avgPrice", { weight: fixedWeight(2), signed: false, accepts: [], handle: (p) => this.#avgPrice(p) }],
      [
        "GET /api/v3/ticker/price",
        { weight: (p) => (p.has("symbol") ? 2 : 4), signed: false, accepts: [], handle: (p) => this.#tickerPrice(p) }
      ],
      ["POST /api/v3/order", { weight: fixedWeight(1), signed: true, accepts: NEW_ORDER_PARAMS, handle: (p) => this.#newOrder(p, false) }],
      [
        "POST /api/v3/order/test",
        { weight: fixedWeight(1), signed: true, accepts: [...NEW_ORDER_PARAMS, "computeCommissionRates"], handle: (p) => this.#newOrder(p, true) }
      ],
      [
        "GET /api/v3/order",
        { weight: fixedWeight(4), signed: true, accepts: ["symbol", "orderId", "origClientOrderId", ...SECURITY], handle: (p) => this.#queryOrder(p) }
      ],
      [
        "DELETE /api/v3/order",
        {
          weight: fixedWeight(1),
          signed: true,
          accepts: ["symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions", ...SECURITY],
          handle: (p) => this.#cancelOrder(p)
        }
      ],
      [
        "GET /api/v3/openOrders",
        { weight: (p) => (p.has("symbol") ? 6 : 80), signed: true, accepts: ["symbol", ...SECURITY], handle: (p) => this.#openOrders(p) }
      ],
      [
        "DELETE /api/v3/openOrders",
        { weight: fixedWeight(1), signed: true, accepts: ["symbol", ...SECURITY], handle: (p) => this.#cancelOpenOrders(p) }
      ],
      [
        "GET /api/v3/allOrders",
        {
          weight: fixedWeight(20),
          signed: true,
          accepts: ["symbol", "orderId", "startTime", "endTime", "limit", ...SECURITY],
          handle: (p) => this.#allOrders(p)
        }
      ],
      [
        "GET /api/v3/myTrades",
        {
          weight: (p) => (p.has("orderId") ? 5 : 20),
          signed: true,
          accepts: ["symbol", "orderId", "startTime", "endTime", "fromId", "limit", ...SECURITY],
          handle: (p) => this.#myTrades(p)
        }
      ],
      [
        "GET /api/v3/account",
        { weight: fixedWeight(20), signed: true, accepts: ["omitZeroBalances", ...SECURITY], handle: (p) => this.#account(p) }
      ]
    ])
  }

  /** True when Binance would serve this method and path. */
  knows(method: string, pathname: string): boolean {
    return this.#routes.has(`${method} ${pathname}`)
  }

  /** `faults: false` handles a request whose fault was already taken (the second pass of a held request). */
  handle(request: RestRequest, faults = true): Outcome {
    const route = this.#routes.get(`${request.method} ${request.pathname}`)
    if (route === undefined) {
      return reply({ status: 404, body: "<html><body><h2>404 Not found</h2></body></html>", headers: { "Content-Type": "text/html" } })
    }
    const isPlacement = request.method === "POST" && request.pathname === "/api/v3/order"
    const isLookup = request.method === "GET" && request.pathname === "/api/v3/order"
    const fault = !faults ? undefined : isPlacement ? this.#takeFault() : isLookup ? this.#takeQueryFault() : undefined
    if (fault?.kind === "hold") return { _tag: "Hold", ms: fault.ms }
    if (fault?.kind === "drop") return { _tag: "Drop" }
    let params: Params | undefined
    try {
      params = parseParams(request.rawQuery, request.rawBody)
    } catch (error) {
      if (!(error instanceof BinanceError)) throw error
    }
    const weightHeaders = this.#spendWeight(params === undefined ? 1 : route.weight(params))
    if (weightHeaders instanceof BinanceError) return errorReply(weightHeaders, {})

    if (fault !== undefined) {
      const early = faultReply(fault, this.#now())
      if (early !== undefined) return reply({ ...early, headers: { ...weightHeaders, ...early.headers } })
    }
    try {
      if (params === undefined) params = parseParams(request.rawQuery, request.rawBody)
      if (route.signed) this.#authenticate(request, params)
      const handled = route.handle(params)
      if (route.signed) checkAllRead(params, route.accepts)
      const headers = { ...weightHeaders, ...handled.headers }
      const ok: RestReply = { status: 200, body: handled.body, headers }
      if (fault === undefined || handled.executed !== true) return reply(ok)
      switch (fault.kind) {
        case "executeThenDrop":
          return { _tag: "Drop" }
        case "executeThenDelay":
          return { _tag: "Reply", reply: ok, delayMs: fault.ms }
        case "httpStatus": {
          const error = SERVER_ERRORS[fault.status]
          return reply({ status: fault.status, body: error, headers: weightHeaders, code: error.code })
        }
        default:
          return reply(ok)
      }
    } catch (error) {
      if (error instanceof BinanceError) return errorReply(error, weightHeaders)
      throw error
    }
  }

  // ---- limits and security --------------------------------------------------------------------

  #spendWeight(weight: number): Record<string, string> | BinanceError {
    const now = this.#now()
    const window = Math.floor(now / 60_000)
    if (window !== this.#weightWindow) {
      this.#weightWindow = window
      this.#usedWeight = 0
    }
    this.#usedWeight += weight
    const used = String(this.#usedWeight)
    const headers = { "X-MBX-USED-WEIGHT": used, "X-MBX-USED-WEIGHT-1M": used }
    if (this.#usedWeight > RATE_LIMITS.requestWeightPerMinute) {
      const retryAfter = Math.max(1, Math.ceil(((window + 1) * 60_000 - now) / 1000))
      return new BinanceError(
        429,
        -1003,
        `Too much request weight used; current limit is ${RATE_LIMITS.requestWeightPerMinute} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.`,
        { ...headers, "Retry-After": String(retryAfter) }
      )
    }
    return headers
  }

  #countOrder(): Record<string, string> {
    const now = this.#now()
    const w = this.#orderWindows
    const tenSeconds = Math.floor(now / 10_000)
    const day = Math.floor(now / 86_400_000)
    if (tenSeconds !== w.tenSeconds) {
      w.tenSeconds = tenSeconds
      w.countTenSeconds = 0
    }
    if (day !== w.day) {
      w.day = day
      w.countDay = 0
    }
    w.countTenSeconds++
    w.countDay++
    return { "X-MBX-ORDER-COUNT-10S": String(w.countTenSeconds), "X-MBX-ORDER-COUNT-1D": String(w.countDay) }
  }

  #authenticate(request: RestRequest, params: Params): void {
    if (request.apiKey === undefined || request.apiKey === "") {
      throw new BinanceError(401, -2014, "API-key format invalid.")
    }
    if (request.apiKey !== this.#apiKey) {
      throw new BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
    }
    const timestampText = params.get("timestamp")
    if (timestampText === undefined || timestampText === "") throw mandatory("timestamp")
    if (!/^[0-9]{1,20}$/.test(timestampText)) throw illegalChars("timestamp", LONG_RANGE)
    const signature = params.get("signature")
    if (signature === undefined || signature === "") throw mandatory("signature")
    let recvWindow = DEFAULT_RECV_WINDOW
    const recvWindowText = params.get("recvWindow")
    if (recvWindowText !== undefined) {
      if (!/^[0-9]{1,20}(\.[0-9]{1,3})?$/.test(recvWindowText)) {
        throw illegalChars("recvWindow", "^[0-9]{1,20}(\\.[0-9]{1,3})?$")
      }
      recvWindow = Number(recvWindowText)
      if (recvWindow > MAX_RECV_WINDOW) {
        throw badRequest(-1102, `'recvWindow' contains unexpected value. Cannot be greater than ${MAX_RECV_WINDOW}.`)
      }
    }
    // Timestamps may be sent in microseconds (16 digits and more).
    const raw = Number(timestampText)
    const timestamp = timestampText.length >= 16 ? raw / 1000 : raw
    const serverTime = this.#now()
    if (timestamp >= serverTime + 1000) {
      throw badRequest(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
    }
    if (serverTime - timestamp > recvWindow) {
      throw badRequest(-1021, "Timestamp for this request is outside of the recvWindow.")
    }
    if (!verifySignature(totalParamsForSignature(request.rawQuery, request.rawBody), signature, this.#apiSecret)) {
      throw badRequest(-1022, "Signature for this request is not valid.")
    }
  }

  // ---- public endpoints -----------------------------------------------------------------------

  #exchangeInfo(params: Params): Handled {
    const symbol = params.get("symbol")
    const symbolsText = params.get("symbols")
    let symbols: ReadonlyArray<string>
    if (symbol !== undefined) {
      symbols = [this.#symbol(symbol)]
    } else if (symbolsText !== undefined) {
      if (!SYMBOLS_PATTERN.test(symbolsText)) throw illegalChars("symbols", SYMBOLS_RANGE)
      const list = JSON.parse(symbolsText) as Array<string>
      if (new Set(list).size !== list.length) throw badRequest(-1151, "Symbol is present multiple times in the list.")
      symbols = list.map((s) => this.#symbol(s))
    } else {
      symbols = this.#engine.symbols()
    }
    const specs = symbols.map((s) => this.#engine.spec(s)!)
    return { body: exchangeInfo(specs, this.#now()) }
  }

  #avgPrice(params: Params): Handled {
    const symbol = this.#requiredSymbol(params)
    const spec = this.#engine.spec(symbol)!
    return { body: { mins: spec.avgPriceMins, price: Fixed.format(this.#engine.avgPrice(symbol)), closeTime: this.#engine.lastTradeTime(symbol) ?? this.#now() } }
  }

  #tickerPrice(params: Params): Handled {
    const symbol = params.get("symbol")
    const price = (s: string) => ({ symbol: s, price: Fixed.format(this.#engine.lastPrice(s)) })
    if (symbol !== undefined) return { body: price(this.#symbol(symbol)) }
    const symbolsText = params.get("symbols")
    if (symbolsText !== undefined) {
      if (!SYMBOLS_PATTERN.test(symbolsText)) throw illegalChars("symbols", SYMBOLS_RANGE)
      return { body: (JSON.parse(symbolsText) as Array<string>).map((s) => price(this.#symbol(s))) }
    }
    return { body: this.#engine.symbols().map(price) }
  }

  // ---- trading --------------------------------------------------------------------------------

  #newOrder(params: Params, testOnly: boolean): Handled {
    const symbol = this.#requiredSymbol(params)
    const side = required(params, "side")
    if (!SIDES.includes(side as Side)) throw badRequest(-1117, "Invalid side.")
    const type = required(params, "type")
    if (!ALL_ORDER_TYPES.includes(type)) throw badRequest(-1116, "Invalid orderType.")
    const unsupported = UNSUPPORTED_TYPE_MESSAGE[type]
    if (unsupported !== undefined) throw badRequest(-2010, unsupported)
    const orderType = type as OrderType

    const timeInForceText = params.get("timeInForce")
    if (timeInForceText !== undefined && !TIME_IN_FORCE.includes(timeInForceText as TimeInForce)) {
      throw badRequest(-1115, "Invalid timeInForce.")
    }
    if (orderType === "LIMIT" && timeInForceText === undefined) throw mandatory("timeInForce")
    if (orderType !== "LIMIT" && timeInForceText !== undefined) throw notRequired("timeInForce")

    const quantity = decimalParam(params, "quantity")
    const quoteOrderQty = decimalParam(params, "quoteOrderQty")
    const price = decimalParam(params, "price")
    if (orderType === "MARKET") {
      if (quantity === undefined && quoteOrderQty === undefined) {
        throw badRequest(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
      }
      if (quantity !== undefined && quoteOrderQty !== undefined) throw notRequired("quoteOrderQty")
      if (price !== undefined) throw notRequired("price")
    } else {
      if (quantity === undefined) throw mandatory("quantity")
      if (price === undefined) throw mandatory("price")
      if (quoteOrderQty !== undefined) throw notRequired("quoteOrderQty")
    }
    for (const name of ["stopPrice", "trailingDelta"]) if (params.has(name)) throw notRequired(name)
    if (params.has("icebergQty")) throw badRequest(-2010, "Iceberg orders are not supported for this symbol.")
    if (params.has("pegPriceType") || params.has("pegOffsetValue") || params.has("pegOffsetType")) {
      throw badRequest(-2010, "Pegged orders are not supported for this symbol.")
    }

    const clientOrderId = this.#newClientOrderId(params)
    const respTypeText = params.get("newOrderRespType")
    if (respTypeText !== undefined && !["ACK", "RESULT", "FULL"].includes(respTypeText)) {
      throw badRequest(-1130, "Data sent for parameter 'newOrderRespType' is not valid.")
    }
    const respType = (respTypeText ?? "FULL") as Responses.OrderRespType
    const stp = params.get("selfTradePreventionMode")
    if (stp !== undefined && !(STP_MODES as ReadonlyArray<string>).includes(stp)) {
      throw badRequest(-1130, "Data sent for parameter 'selfTradePreventionMode' is not valid.")
    }
    const strategyId = integerParam(params, "strategyId")
    const strategyType = integerParam(params, "strategyType")
    if (strategyType !== undefined && strategyType < 1000000) throw badRequest(-1134, "strategyType was less than 1000000.")

    const input: NewOrder = {
      symbol,
      side: side as Side,
      type: orderType,
      timeInForce: timeInForceText as TimeInForce | undefined,
      quantity,
      quoteOrderQty,
      price,
      clientOrderId,
      selfTradePreventionMode: stp,
      strategyId,
      strategyType
    }
    if (testOnly) {
      checkAllRead(params, [...NEW_ORDER_PARAMS, "computeCommissionRates"])
      return { body: {} }
    }
    checkAllRead(params, NEW_ORDER_PARAMS)
    const result = this.#engine.place(input)
    if (result._tag === "Rejected") throw badRequest(result.rejection.code, result.rejection.msg)
    return { body: Responses.newOrder(result.order, respType), headers: this.#countOrder(), executed: true }
  }

  #queryOrder(params: Params): Handled {
    const symbol = this.#requiredSymbol(params)
    const { orderId, origClientOrderId } = orderRef(params)
    let order: EngineOrder | undefined
    if (orderId !== undefined) {
      order = this.#engine.findById(symbol, orderId)
      if (order === undefined) throw badRequest(-2013, "Order does not exist.")
      if (origClientOrderId !== undefined && order.clientOrderId !== origClientOrderId) {
        throw badRequest(-2039, "Client order ID is not correct for this order ID.")
      }
    } else {
      order = this.#engine.findByClientId(symbol, origClientOrderId!)
      if (order === undefined) throw badRequest(-2013, "Order does not exist.")
    }
    return { body: Responses.queryOrder(order) }
  }

  #cancelOrder(params: Params): Handled {
    const symbol = this.#requiredSymbol(params)
    const { orderId, origClientOrderId } = orderRef(params)
    const restriction = params.get("cancelRestrictions")
    if (restriction !== undefined && restriction !== "ONLY_NEW" && restriction !== "ONLY_PARTIALLY_FILLED") {
      throw badRequest(-1145, "Invalid cancelRestrictions")
    }
    const cancelId = this.#newClientOrderId(params)
    const unknown = () => badRequest(-2011, "Unknown order sent.")
    const order =
      orderId !== undefined
        ? this.#engine.findById(symbol, orderId)
        : this.#engine.openOrders(symbol).find((o) => o.clientOrderId === origClientOrderId)
    if (order === undefined || !isOpen(order)) throw unknown()
    if (origClientOrderId !== undefined && order.clientOrderId !== origClientOrderId) throw unknown()
    if (
      (restriction === "ONLY_NEW" && order.status !== "NEW") ||
      (restriction === "ONLY_PARTIALLY_FILLED" && order.status !== "PARTIALLY_FILLED")
    ) {
      throw badRequest(-2011, "Order was not canceled due to cancel restrictions.")
    }
    checkAllRead(params, ["symbol", "orderId", "origClientOrderId", "newClientOrderId", "cancelRestrictions", ...SECURITY])
    this.#engine.cancel(order)
    return { body: Responses.canceledOrder(order, cancelId, this.#now()) }
  }

  #cancelOpenOrders(params: Params): Handled {
    const symbol = this.#requiredSymbol(params)
    const open = this.#engine.openOrders(symbol)
    if (open.length === 0) throw badRequest(-2011, "Unknown order sent.")
    const now = this.#now()
    return {
      body: open.map((order) => {
        this.#engine.cancel(order)
        return Responses.canceledOrder(order, this.#engine.generateClientOrderId(), now)
      })
    }
  }

  #openOrders(params: Params): Handled {
    const symbolText = params.get("symbol")
    const symbol = symbolText === undefined ? undefined : this.#symbol(symbolText)
    return { body: this.#engine.openOrders(symbol).map(Responses.queryOrder) }
  }

  /** The account's own trades (fills), as GET /api/v3/myTrades documents them. */
  #myTrades(params: Params): Handled {
    const symbol = this.#requiredSymbol(params)
    const orderId = integerParam(params, "orderId")
    const fromId = integerParam(params, "fromId")
    const limit = Math.min(integerParam(params, "limit") ?? 500, 1000)
    const rows: Array<Record<string, unknown>> = []
    for (const o of this.#engine.allOrders(symbol)) {
      if (orderId !== undefined && o.orderId !== orderId) continue
      for (const f of o.fills) {
        if (fromId !== undefined && f.tradeId < fromId) continue
        rows.push({
          symbol,
          id: f.tradeId,
          orderId: o.orderId,
          orderListId: -1,
          price: Fixed.format(f.price),
          qty: Fixed.format(f.qty),
          quoteQty: Fixed.format(Fixed.mul(f.price, f.qty)),
          commission: Fixed.format(f.commission),
          commissionAsset: f.commissionAsset,
          time: o.updateTime,
          isBuyer: o.side === "BUY",
          isMaker: o.type !== "MARKET" && o.fills.length > 0 && o.time < o.updateTime,
          isBestMatch: true
        })
      }
    }
    rows.sort((a, b) => (a.id as number) - (b.id as number))
    return { body: rows.slice(0, limit) }
  }

  #allOrders(params: Params): Handled {
    const symbol = this.#requiredSymbol(params)
    const fromId = integerParam(params, "orderId")
    const startTime = integerParam(params, "startTime")
    const endTime = integerParam(params, "endTime")
    const limit = Math.min(integerParam(params, "limit") ?? 500, 1000)
    const selected = this.#engine
      .allOrders(symbol)
      .filter(
        (o) =>
          (fromId === undefined || o.orderId >= fromId) &&
          (startTime === undefined || o.time >= startTime) &&
          (endTime === undefined || o.time <= endTime)
      )
    const page = fromId !== undefined || startTime !== undefined ? selected.slice(0, limit) : selected.slice(-limit)
    return { body: page.map(Responses.queryOrder) }
  }

  #account(params: Params): Handled {
    return { body: Responses.account(this.#engine, params.get("omitZeroBalances") === "true") }
  }

  // ---- parameter helpers ----------------------------------------------------------------------

  #symbol(symbol: string): string {
    if (this.#engine.spec(symbol) === undefined) throw invalidSymbol()
    return symbol
  }

  #requiredSymbol(params: Params): string {
    return this.#symbol(required(params, "symbol"))
  }

  #newClientOrderId(params: Params): string {
    const id = params.get("newClientOrderId")
    if (id === undefined) return this.#engine.generateClientOrderId()
    if (id === "") throw badRequest(-1118, "New client order ID was empty.")
    if (!CLIENT_ORDER_ID.test(id)) throw illegalChars("newClientOrderId", CLIENT_ORDER_ID_RANGE)
    return id
  }
}

const reply = (r: RestReply): Outcome => ({ _tag: "Reply", reply: r, delayMs: 0 })

const errorReply = (error: BinanceError, headers: Readonly<Record<string, string>>): Outcome =>
  reply({ status: error.status, body: error.body(), headers: { ...headers, ...error.headers }, code: error.code })

/** Faults that answer without executing; `undefined` for those that execute first. */
const faultReply = (fault: SimFault, now: number): Omit<RestReply, "headers"> & { headers: Record<string, string> } | undefined => {
  switch (fault.kind) {
    case "rateLimited": {
      const msg =
        fault.status === 418
          ? `Way too much request weight used; IP banned until ${now + fault.retryAfterSec * 1000}. Please use WebSocket Streams for live updates to avoid bans.`
          : `Too much request weight used; current limit is ${RATE_LIMITS.requestWeightPerMinute} request weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid polling the API.`
      return { status: fault.status, body: { code: -1003, msg }, headers: { "Retry-After": String(fault.retryAfterSec) }, code: -1003 }
    }
    case "error":
      return { status: fault.status ?? 400, body: { code: fault.code, msg: fault.msg }, headers: {}, code: fault.code }
    case "httpStatus": {
      if (fault.executed) return undefined
      const error = SERVER_ERRORS[fault.status]
      return { status: fault.status, body: error, headers: {}, code: error.code }
    }
    default:
      return undefined
  }
}

const required = (params: Params, name: string): string => {
  const value = params.get(name)
  if (value === undefined || value === "") throw mandatory(name)
  return value
}

const decimalParam = (params: Params, name: string): Fixed.Fixed | undefined => {
  const text = params.get(name)
  if (text === undefined) return undefined
  if (text === "") throw mandatory(name)
  const parsed = Fixed.parse(text)
  switch (parsed._tag) {
    case "Ok":
      return parsed.value
    case "Illegal":
      throw illegalChars(name, Fixed.DECIMAL_PATTERN)
    case "TooPrecise":
      throw badRequest(-1111, `Parameter '${name}' has too much precision.`)
  }
}

const integerParam = (params: Params, name: string): number | undefined => {
  const text = params.get(name)
  if (text === undefined) return undefined
  if (!/^-?[0-9]{1,20}$/.test(text)) throw illegalChars(name, LONG_RANGE)
  return Number(text)
}

const orderRef = (params: Params): { readonly orderId: number | undefined; readonly origClientOrderId: string | undefined } => {
  const orderId = integerParam(params, "orderId")
  const origClientOrderId = params.get("origClientOrderId")
  if (orderId === undefined && (origClientOrderId === undefined || origClientOrderId === "")) {
    throw badRequest(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
  }
  return { orderId, origClientOrderId: origClientOrderId === "" ? undefined : origClientOrderId }
}

/** Binance rejects parameters an endpoint does not read. */
const checkAllRead = (params: Params, accepts: ReadonlyArray<string>): void => {
  const read = params.names.filter((name) => accepts.includes(name)).length
  if (read !== params.names.length) {
    throw badRequest(-1104, `Not all sent parameters were read; read '${read}' parameter(s) but was sent '${params.names.length}'.`)
  }
}
