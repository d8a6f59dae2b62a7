/**
 * A simulated Binance SPOT exchange on one loopback port: market-data WebSocket streams and the signed
 * REST order API, with a seeded random walk for prices and injectable faults for resilience tests.
 * It stands in for an external system, so it runs on real time (plus an optional clock skew).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { SimEngine, type EngineOrder, type OrderStatus, type OrderType, type Side, type TimeInForce } from "./Engine.ts"
import * as Fixed from "./Fixed.ts"
import { makeSpec } from "./Markets.ts"
import { type MarketFaults, TradeHistory } from "./MarketData.ts"
import { mulberry32 } from "./PriceWalk.ts"
import { RestApi, type SimFault } from "./RestApi.ts"
import { StreamServer } from "./StreamServer.ts"

export type { SimFault } from "./RestApi.ts"
export type { MarketFaults } from "./MarketData.ts"

export const SIM_API_KEY = "sim-api-key"
export const SIM_API_SECRET = "sim-api-secret"

export interface SimExchangeOptions {
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Default 0: the OS picks a free port. */
  readonly port?: number
  /** Default ["BTCUSDT"]. */
  readonly symbols?: ReadonlyArray<string>
  /** Seed of the per-symbol random walks (and generated client order ids). Default 1. */
  readonly seed?: number
  /** Random-walk trades per second per symbol; 0 (default) = only trades you emit. */
  readonly ticksPerSecond?: number
  readonly apiKey?: string
  readonly apiSecret?: string
  readonly startPrices?: Readonly<Record<string, number>>
  /** The whole account: assets not listed are 0. Default { USDT: 1_000_000 }. */
  readonly balances?: Readonly<Record<string, number>>
  /** Binance: 20000. */
  readonly pingIntervalMs?: number
  /** Binance: 60000. */
  readonly pongTimeoutMs?: number
  /** Commission rate, taken from the asset received. Default 0.001. */
  readonly takerFee?: number
  /** Market-data faults from the start (switch them later with `setMarketFaults`). */
  readonly marketFaults?: MarketFaults
  /** Public trades kept per symbol for historicalTrades. Default 200,000. */
  readonly historyLimit?: number
  /** Observer: called right after a trade was sent to the stream clients (benchmarks time tick → order with it). */
  readonly onTradeSent?: (symbol: string, tradeId: number) => void
  /** Observer: an order placement (POST /api/v3/order) arrived; `receivedAt` is `performance.now()` when its request started. */
  readonly onOrderRequest?: (clientOrderId: string, receivedAt: number) => void
}

/** An order the simulator accepted or executed (rejected requests leave no order, as on Binance). */
export interface SimOrder {
  readonly symbol: string
  readonly orderId: number
  readonly clientOrderId: string
  readonly side: Side
  readonly type: OrderType
  readonly timeInForce: TimeInForce
  readonly status: OrderStatus
  /** Ordered base quantity (for a quoteOrderQty MARKET order, the quantity it resolved to). */
  readonly qty: number
  readonly executedQty: number
  /** The limit price; for MARKET orders the average fill price (0 before any fill). */
  readonly price: number
  readonly quoteQty: number
  readonly time: number
  readonly updateTime: number
}

export interface SimRequest {
  readonly method: string
  readonly path: string
  /** 0 when the simulator dropped the connection instead of answering. */
  readonly status: number
  readonly code?: number
}

export interface SimExchange {
  readonly port: number
  /** `ws://127.0.0.1:PORT`; streams live under `/ws/…` and `/stream?streams=…`. */
  readonly wsBaseUrl: string
  /** `http://127.0.0.1:PORT`; the API lives under `/api/v3/…`. */
  readonly restBaseUrl: string
  orders(): ReadonlyArray<SimOrder>
  requests(): ReadonlyArray<SimRequest>
  emitTrade(symbol: string, price: number, qty?: number): void
  /** One random-walk trade of `symbol` now (what `ticksPerSecond` does on a timer). */
  tick(symbol: string): void
  /** WebSocket clients connected now. */
  streamClients(): number
  setPrice(symbol: string, price: number): void
  /** Terminates every WebSocket client abruptly (no close frame). */
  dropConnections(): void
  /** Queues a fault for the next order-placement request (FIFO, one fault per request); `"lookup"`: for GET /api/v3/order. */
  injectFault(fault: SimFault, on?: "place" | "lookup"): void
  /** Drops every queued fault. */
  clearFaults(): void
  /** Server time = real time + `ms` (affects /time, trade times and the recvWindow check). */
  setClockSkewMs(ms: number): void
  /** Replaces the market-data faults (stream and historicalTrades); `{}` switches them all off. */
  setMarketFaults(faults: MarketFaults): void
  /** No frames and no pings for `ms`, sockets left open (trades meanwhile are only in historicalTrades). */
  stallMarketData(ms: number): void
  /** Sends `text` as a frame to every market-data client. */
  sendRawFrame(text: string): void
  /** historicalTrades no longer has trades of `symbol` below `tradeId`. */
  forgetTradesBelow(symbol: string, tradeId: number): void
  /** Starts recording the trades sent to market-data clients (`true`), or stops; returns what was recorded. */
  recordSentTrades(on: boolean): ReadonlyArray<{ readonly symbol: string; readonly tradeId: number }>
  /** The last trade id of `symbol` (0 before the first trade). */
  lastTradeId(symbol: string): number
  close(): Promise<void>
}

const MAX_BODY_BYTES = 1 << 20

export const toSimOrder = (order: EngineOrder): SimOrder => {
  const executed = Fixed.toNumber(order.executedQty)
  const quote = Fixed.toNumber(order.cummulativeQuoteQty)
  return {
    symbol: order.symbol,
    orderId: order.orderId,
    clientOrderId: order.clientOrderId,
    side: order.side,
    type: order.type,
    timeInForce: order.timeInForce,
    status: order.status,
    qty: Fixed.toNumber(order.origQty),
    executedQty: executed,
    price:
      order.type === "MARKET"
        ? order.executedQty === Fixed.ZERO
          ? 0
          : Fixed.toNumber(Fixed.div(order.cummulativeQuoteQty, order.executedQty))
        : Fixed.toNumber(order.price),
    quoteQty: quote,
    time: order.time,
    updateTime: order.updateTime
  }
}

export const startSimExchange = async (options: SimExchangeOptions = {}): Promise<SimExchange> => {
  const symbols = options.symbols ?? ["BTCUSDT"]
  for (const symbol of symbols) {
    if (!/^[A-Z0-9]{2,20}$/.test(symbol)) throw new Error(`invalid symbol "${symbol}": use Binance's upper-case form`)
  }
  const host = options.host ?? "127.0.0.1"
  let skewMs = 0
  const now = () => Date.now() + skewMs
  const faults: Array<SimFault> = []
  const queryFaults: Array<SimFault> = []
  const requests: Array<SimRequest> = []

  const marketFaults = { current: options.marketFaults ?? {} }
  const history = new TradeHistory(options.historyLimit ?? 200_000)
  const lastIds = new Map<string, number>()
  const streams = new StreamServer({
    pingIntervalMs: options.pingIntervalMs ?? 20_000,
    pongTimeoutMs: options.pongTimeoutMs ?? 60_000,
    now,
    faults: marketFaults,
    random: mulberry32(((options.seed ?? 1) ^ 0xfa017) >>> 0)
  })
  const engine = new SimEngine({
    specs: symbols.map((symbol) => makeSpec(symbol, options.startPrices?.[symbol])),
    seed: options.seed ?? 1,
    startPrices: options.startPrices ?? {},
    balances: options.balances ?? { USDT: 1_000_000 },
    takerFee: options.takerFee ?? 0.001,
    now,
    onTrade: (trade) => {
      history.record(trade)
      lastIds.set(trade.symbol, trade.tradeId)
      streams.publishTrade(trade)
      options.onTradeSent?.(trade.symbol, trade.tradeId)
    }
  })
  const rest = new RestApi({
    engine,
    apiKey: options.apiKey ?? SIM_API_KEY,
    apiSecret: options.apiSecret ?? SIM_API_SECRET,
    now,
    takeFault: () => faults.shift(),
    history,
    marketFaults,
    takeQueryFault: () => queryFaults.shift()
  })

  const respond = (res: ServerResponse, status: number, body: unknown, headers: Readonly<Record<string, string>> = {}) => {
    const text = typeof body === "string" ? body : JSON.stringify(body)
    res.writeHead(status, { "Content-Type": "application/json;charset=UTF-8", ...headers })
    res.end(text)
  }

  const handleHttp = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const startedAt = options.onOrderRequest === undefined ? 0 : performance.now()
    const rawUrl = req.url ?? "/"
    const q = rawUrl.indexOf("?")
    const pathname = q === -1 ? rawUrl : rawUrl.slice(0, q)
    const rawQuery = q === -1 ? "" : rawUrl.slice(q + 1)
    const method = req.method ?? "GET"
    const chunks: Array<Buffer> = []
    let size = 0
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.length
      if (size > MAX_BODY_BYTES) {
        respond(res, 413, { code: -1000, msg: "Request body too large." })
        return
      }
      chunks.push(chunk)
    }
    const contentType = req.headers["content-type"] ?? ""
    // Only form bodies carry parameters (and take part in the signature), as on Binance.
    const rawBody =
      contentType === "" || contentType.includes("application/x-www-form-urlencoded")
        ? Buffer.concat(chunks).toString("utf8")
        : ""

    if (method === "GET" && pathname === "/sim/orders") {
      return respond(res, 200, engine.orders().map(toSimOrder))
    }
    if (options.onOrderRequest !== undefined && method === "POST" && pathname === "/api/v3/order") {
      const id = new URLSearchParams(rawBody === "" ? rawQuery : rawBody).get("newClientOrderId")
      if (id !== null) options.onOrderRequest(id, startedAt)
    }
    const apiKeyHeader = req.headers["x-mbx-apikey"]
    const request = { method, pathname, rawQuery, rawBody, apiKey: Array.isArray(apiKeyHeader) ? apiKeyHeader[0] : apiKeyHeader }
    let outcome = rest.handle(request)
    if (outcome._tag === "Hold") {
      // delayed in transit: processed later whatever the client does meanwhile (it may have given up or died)
      await new Promise((resolve) => setTimeout(resolve, outcome._tag === "Hold" ? outcome.ms : 0))
      outcome = rest.handle(request, false)
    }
    if (outcome._tag === "Hold") throw new Error("a held request was held again")
    if (outcome._tag === "Drop") {
      requests.push({ method, path: pathname, status: 0 })
      req.socket.destroy()
      return
    }
    const { reply, delayMs } = outcome
    requests.push({ method, path: pathname, status: reply.status, ...(reply.code !== undefined ? { code: reply.code } : {}) })
    if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs))
    if (!res.destroyed) respond(res, reply.status, reply.body, reply.headers)
  }

  const server = createServer((req, res) => {
    handleHttp(req, res).catch((error: unknown) => {
      // A bug in the simulator must be visible, not a hung request.
      console.error("sim-exchange: request failed", error)
      if (!res.headersSent) respond(res, 500, { code: -1000, msg: "An unknown error occurred while processing the request." })
      else res.destroy()
    })
  })
  server.on("upgrade", (req, socket, head) => streams.upgrade(req, socket, head))

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject)
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject)
      resolve()
    })
  })
  const port = (server.address() as AddressInfo).port

  const tps = options.ticksPerSecond ?? 0
  let tickTimer: ReturnType<typeof setInterval> | undefined
  if (tps > 0) {
    const startedAt = Date.now()
    let emitted = 0
    tickTimer = setInterval(() => {
      // Catch up on timer lag so the rate holds; cap the burst after a long stall.
      const due = Math.min(Math.floor(((Date.now() - startedAt) * tps) / 1000) - emitted, 1000)
      for (let i = 0; i < due; i++) {
        for (const symbol of symbols) engine.tick(symbol)
      }
      emitted += Math.max(due, 0)
    }, Math.max(1, Math.floor(1000 / tps)))
  }

  const checkSymbol = (symbol: string) => {
    if (engine.spec(symbol) === undefined) throw new Error(`symbol ${symbol} is not simulated`)
  }
  const hostForUrl = host.includes(":") ? `[${host}]` : host
  let closed: Promise<void> | undefined

  return {
    port,
    wsBaseUrl: `ws://${hostForUrl}:${port}`,
    restBaseUrl: `http://${hostForUrl}:${port}`,
    orders: () => engine.orders().map(toSimOrder),
    requests: () => [...requests],
    emitTrade: (symbol, price, qty) => {
      checkSymbol(symbol)
      engine.emitTrade(symbol, price, qty)
    },
    tick: (symbol) => {
      checkSymbol(symbol)
      engine.tick(symbol)
    },
    streamClients: () => streams.clientCount(),
    setPrice: (symbol, price) => {
      checkSymbol(symbol)
      engine.setPrice(symbol, price)
    },
    dropConnections: () => streams.dropAll(),
    injectFault: (fault, on = "place") => {
      ;(on === "lookup" ? queryFaults : faults).push(fault)
    },
    clearFaults: () => {
      faults.length = 0
      queryFaults.length = 0
    },
    setClockSkewMs: (ms) => {
      skewMs = ms
    },
    setMarketFaults: (f) => {
      marketFaults.current = f
      streams.faultsChanged()
    },
    stallMarketData: (ms) => streams.stall(ms),
    sendRawFrame: (text) => streams.sendRaw(text),
    forgetTradesBelow: (symbol, tradeId) => history.forgetBelow(symbol, tradeId),
    recordSentTrades: (on) => streams.recordSent(on),
    lastTradeId: (symbol) => lastIds.get(symbol) ?? 0,
    close: () => {
      closed ??= new Promise<void>((resolve) => {
        if (tickTimer !== undefined) clearInterval(tickTimer)
        streams.close()
        server.close(() => resolve())
        server.closeAllConnections()
      })
      return closed
    }
  }
}
