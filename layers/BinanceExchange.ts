/**
 * Live Exchange over Binance's spot protocol: combined trade streams over WebSocket and signed REST
 * (HMAC-SHA256, `X-MBX-APIKEY`, `timestamp`, `recvWindow`, `signature`). Base URLs as Binance documents them
 * (`wss://stream.binance.com:9443`, `https://api.binance.com`); the paths are appended here.
 */
import { BigDecimal, Cause, Clock, Config, Duration, Effect, Exit, Layer, Metric, Option, Queue, Redacted, Ref, Schema, Stream } from "effect"
import WebSocket from "ws"
import { tickId } from "../src/domain/Messages.ts"
import { latencyTraceOn, traceMark, traceNow, traceWritten } from "../src/observability/LatencyTrace.ts"
import { Agent as HttpAgent, type ClientRequest, request as httpRequestRaw } from "node:http"
import { Agent as HttpsAgent, request as httpsRequest } from "node:https"
import { Bus, decodeReason, publishDeadLetter } from "../src/bus/Bus.ts"
import type { Fill } from "../src/domain/Messages.ts"
import {
  ApiErrorBody,
  combinedStreamUrl,
  Decimal,
  decodeTradeFrame,
  ExchangeInfoWire,
  type FrameResult,
  historicalTicks,
  HistoricalTradesWire,
  MyTradesWire,
  OrderWire,
  ServerTimeWire
} from "../src/exchange/BinanceCodec.ts"
import { encodeParams, signer } from "../src/exchange/BinanceSigning.ts"
import {
  Exchange,
  type ExchangeOrder,
  HISTORICAL_TRADES_MAX,
  type OrderRequest,
  type RateUsage,
  type SymbolRules,
  type TradesOptions
} from "../src/exchange/Exchange.ts"
import {
  ExchangeApiError,
  ExchangeDecodeError,
  type ExchangeError,
  ExchangeRateLimited,
  ExchangeUnavailable,
  MarketStreamError
} from "../src/exchange/ExchangeErrors.ts"
import { SIM_API_KEY, SIM_API_SECRET } from "../src/sim/SimExchange.ts"

export interface BinanceExchangeOptions {
  readonly wsBaseUrl: string
  readonly restBaseUrl: string
  readonly apiKey: Redacted.Redacted<string>
  readonly apiSecret: Redacted.Redacted<string>
  readonly recvWindowMs: number
  readonly httpTimeout: Duration.Duration
  /** No frame and no ping for this long → the socket is considered dead and the stream fails (→ reconnect). */
  readonly idleTimeout: Duration.Duration
  /** After our close frame, how long to wait for the exchange's (default 5 s). */
  readonly closeTimeout?: Duration.Duration
  /** Longest the next order's request waits with its connection open ahead before it is dropped (default 4 s). */
  readonly warmHold?: Duration.Duration
}

/** A frame larger than this closes the socket (1009); smaller oversized frames are dead-lettered by the codec. */
const MAX_WS_PAYLOAD = 4 * 1024 * 1024

/** Exchange config from env. URLs default to `defaults` (the embedded simulator when `autotrader run` starts one). */
export const exchangeConfig = (defaults: { readonly wsBaseUrl?: string; readonly restBaseUrl?: string } = {}) =>
  Config.all({
    wsBaseUrl: defaults.wsBaseUrl === undefined
      ? Config.String("EXCHANGE_WS_URL")
      : Config.String("EXCHANGE_WS_URL").pipe(Config.withDefault(defaults.wsBaseUrl)),
    restBaseUrl: defaults.restBaseUrl === undefined
      ? Config.String("EXCHANGE_REST_URL")
      : Config.String("EXCHANGE_REST_URL").pipe(Config.withDefault(defaults.restBaseUrl)),
    apiKey: Config.Redacted("EXCHANGE_API_KEY").pipe(Config.withDefault(Redacted.make(SIM_API_KEY))),
    apiSecret: Config.Redacted("EXCHANGE_API_SECRET").pipe(Config.withDefault(Redacted.make(SIM_API_SECRET))),
    recvWindowMs: Config.Int("EXCHANGE_RECV_WINDOW").pipe(Config.withDefault(5000)),
    httpTimeout: Config.Duration("EXCHANGE_HTTP_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
    idleTimeout: Config.Duration("EXCHANGE_WS_IDLE_TIMEOUT").pipe(Config.withDefault(Duration.seconds(60)))
  })

const usedWeight = Metric.gauge("exchange_used_weight_1m", { description: "Binance X-MBX-USED-WEIGHT-1M" })

const ZERO = BigDecimal.fromBigInt(0n)
const toNumber = BigDecimal.toNumberUnsafe

/** Why a request got no answer, in the operator's words: the errno (ECONNREFUSED, ENOTFOUND, …) or TLS code. */
export const networkCause = (e: unknown): string => {
  const err = e as { name?: string; message?: string; cause?: { code?: string; message?: string; cause?: { code?: string } } }
  if (err.name === "AbortError") return "aborted"
  const code = err.cause?.code ?? err.cause?.cause?.code
  const detail = err.cause?.message ?? err.message ?? String(e)
  if (code === undefined) return detail
  return detail.includes(code) ? detail : `${code} (${detail})`
}

// Quantities and prices arrive as exact decimals (decoded by `Decimal`); the order keeps them exact, a fill (a bus
// message) carries numbers.
const toOrder = (w: typeof OrderWire.Type): ExchangeOrder => {
  const fills: Array<Fill> = (w.fills ?? []).map((f) => ({
    price: toNumber(f.price),
    qty: toNumber(f.qty),
    commission: toNumber(f.commission),
    commissionAsset: f.commissionAsset,
    ...(f.tradeId === undefined ? {} : { tradeId: f.tradeId })
  }))
  return {
    symbol: w.symbol,
    orderId: w.orderId,
    clientOrderId: w.clientOrderId,
    status: w.status ?? "NEW",
    side: w.side ?? "",
    origQty: w.origQty ?? ZERO,
    executedQty: w.executedQty ?? ZERO,
    quoteQty: w.cummulativeQuoteQty ?? ZERO,
    time: w.transactTime ?? w.time ?? 0,
    fills
  }
}

const decodeDecimal = Schema.decodeUnknownOption(Decimal)

/** A filter's decimal string, exactly; a missing or malformed value means "no limit" (0). */
const filterDecimal = (f: Record<string, unknown>, key: string): BigDecimal.BigDecimal => {
  const v = f[key]
  const decoded = decodeDecimal(typeof v === "number" ? String(v) : v)
  // normalized ("0.00001000" → 1e-5 at scale 5), so equal filters are equal values whatever zeros the source wrote
  return BigDecimal.normalize(Option.getOrElse(decoded, () => ZERO))
}

export const toRules = (s: (typeof ExchangeInfoWire.Type)["symbols"][number]): SymbolRules => {
  const byType = new Map<string, Record<string, unknown>>()
  for (const f of s.filters) if (typeof f.filterType === "string") byType.set(f.filterType, f)
  const price = byType.get("PRICE_FILTER") ?? {}
  const lot = byType.get("LOT_SIZE") ?? {}
  const notional = byType.get("NOTIONAL") ?? byType.get("MIN_NOTIONAL") ?? {}
  return {
    symbol: s.symbol,
    status: s.status,
    baseAsset: s.baseAsset,
    quoteAsset: s.quoteAsset,
    tickSize: filterDecimal(price, "tickSize"),
    minPrice: filterDecimal(price, "minPrice"),
    maxPrice: filterDecimal(price, "maxPrice"),
    stepSize: filterDecimal(lot, "stepSize"),
    minQty: filterDecimal(lot, "minQty"),
    maxQty: filterDecimal(lot, "maxQty"),
    minNotional: filterDecimal(notional, "minNotional"),
    applyMinToMarket: notional.applyMinToMarket === undefined ? true : notional.applyMinToMarket === true
  }
}

/** Name lookups that failed: no connection was ever made. */
const LOOKUP_FAILED: ReadonlySet<string> = new Set(["ENOTFOUND", "EAI_AGAIN"])
/** Refusals that mean "not sent" only when the connect itself failed (node marks those `syscall: "connect"`). */
const CONNECT_FAILED: ReadonlySet<string> = new Set(["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"])

/**
 * Whether a network error proves the request never reached the exchange (so it may be sent again without a lookup).
 * Only a failed name lookup or a failed connect does: the same EHOSTUNREACH / ENETUNREACH on a kept-alive connection
 * (after retransmissions time out) can come after the order was written and received, and is an unknown outcome.
 */
export const provablyNotSent = (error: unknown): boolean => {
  const err = error as { code?: string; syscall?: string; cause?: { code?: string; syscall?: string } } | null
  const code = err?.code ?? err?.cause?.code
  const syscall = err?.syscall ?? err?.cause?.syscall
  if (code === undefined) return false
  return LOOKUP_FAILED.has(code) || (CONNECT_FAILED.has(code) && syscall === "connect")
}

/** Response headers by (case-insensitive) name, as `Headers.get` answers. */
interface HeaderLookup {
  readonly get: (name: string) => string | null
}

/** What came back for one REST request: status, headers, body text. */
interface HttpAnswer {
  readonly status: number
  readonly headers: HeaderLookup
  readonly text: string
}

/** Why a request got no answer (network error, or no complete response within the request's deadline). */
type HttpFailure = { readonly _tag: "Error"; readonly error: unknown } | { readonly _tag: "Timeout" }

/** setTimeout's largest delay; a longer deadline (tests use hours) is clamped to it, never to "fire at once". */
const MAX_TIMER_MS = 2 ** 31 - 1

/**
 * One REST request on a keep-alive connection (node:http/https agents, a few sockets kept open per origin). `fetch`
 * (undici) cost about a third of the order path's CPU here (WHATWG streams, Headers, Response objects per request).
 *
 * The deadline is a timer on the request itself (destroyed when it fires), settled once through `done`: racing an
 * Effect.timeout against an Effect.tryPromise with an AbortController cost two fibers, a sleep and a promise per
 * request: the trace's "post → written" hop went from 0.55 to 0.38 ms at 1k ticks/s (BENCHMARKS.md §1). The deadline
 * says only "no answer in time" (the outcome is then unknown and looked up), so a real-time I/O timer is what it
 * measures.
 */
const agents = { http: new HttpAgent({ keepAlive: true, maxSockets: 8 }), https: new HttpsAgent({ keepAlive: true, maxSockets: 8 }) }

interface Origin {
  readonly secure: boolean
  readonly hostname: string
  readonly port: string
}

/** A request created, not yet sent: node attaches its connection one process tick later. */
const openRequest = (origin: Origin, path: string, method: string, headers: Record<string, string>): ClientRequest =>
  (origin.secure ? httpsRequest : httpRequestRaw)({
    hostname: origin.hostname,
    port: origin.port,
    path,
    method,
    agent: origin.secure ? agents.https : agents.http,
    headers
  })

/**
 * Sends `req` (opened by `openRequest`) with `body`, reports its answer or failure once through `done`, and returns
 * its abort (an interrupted caller's: nothing is reported after it).
 */
const sendRequest = (req: ClientRequest, body: string | undefined, timeoutMs: number, done: (outcome: HttpAnswer | HttpFailure) => void) => {
  let settled = false
  const settle = (outcome: HttpAnswer | HttpFailure) => {
    if (settled) return
    settled = true
    clearTimeout(timer)
    done(outcome)
  }
  req.once("response", (res) => {
    const chunks: Array<Buffer> = []
    res.on("data", (chunk: Buffer) => chunks.push(chunk))
    res.on("error", (error) => settle({ _tag: "Error", error }))
    res.on("end", () => {
      const raw = res.headers
      settle({
        status: res.statusCode ?? 0,
        headers: {
          get: (name) => {
            const v = raw[name.toLowerCase()]
            return v === undefined ? null : Array.isArray(v) ? v.join(", ") : v
          }
        },
        text: chunks.length === 1 ? chunks[0].toString("utf8") : Buffer.concat(chunks).toString("utf8")
      })
    })
  })
  const timer = setTimeout(() => {
    settle({ _tag: "Timeout" })
    req.destroy()
  }, Math.max(1, Math.min(MAX_TIMER_MS, timeoutMs)))
  req.on("error", (error) => settle({ _tag: "Error", error }))
  if (body !== undefined) req.setHeader("Content-Length", String(Buffer.byteLength(body)))
  req.end(body)
  return () => {
    settled = true
    clearTimeout(timer)
    req.destroy()
  }
}

/**
 * The next order placement's request, opened ahead with its connection attached, so that the order is written to the
 * socket at once: a request opened when the order is ready gets its connection a process tick later, which waits for
 * every microtask pending (the fibers the order's own OrderSubmitted woke, logs), ~0.35 ms of the embedded tick →
 * order p50 at 1k ticks/s (trace: `written` marked at the socket's attachment instead of at `end`).
 *
 * Opened only after an order's answer (the exchange is up and orders are flowing), at most one at a time; one that
 * fails or is closed while it waits (the exchange's idle timeout, a restart) is dropped and not reopened until the
 * next answer, so a quiet or unreachable exchange gets no connection churn. Nothing reaches the exchange before its
 * use: headers and body leave together at `end`. A dropped connection not yet noticed fails the order as
 * "socket hang up" (outcome unknown, looked up), exactly as a pooled keep-alive connection would.
 *
 * It waits at most `holdMs` (then dropped): a socket held by a waiting request is not in the agent's free list, so
 * node's own retirement of idle sockets before the server's keep-alive timeout does not apply to it, and servers and
 * proxies close idle connections after a few seconds (node's default is 5 s). TCP keep-alive probes are turned on for
 * it, so a peer that vanished is noticed.
 */
const makeWarmRequests = (origin: Origin, path: string, headers: Record<string, string>, holdMs: number) => {
  let warm: {
    readonly req: ClientRequest
    attached: boolean
    readonly drop: (e: unknown) => void
    readonly onClose: () => void
    readonly expiry: ReturnType<typeof setTimeout>
  } | undefined
  let closed = false
  return {
    /** The waiting request if its connection is attached and open (it is then no longer waiting), else undefined. */
    take: (): ClientRequest | undefined => {
      const w = warm
      if (w === undefined || !w.attached || w.req.destroyed || w.req.socket === null || w.req.socket.destroyed || !w.req.socket.writable) return undefined
      warm = undefined
      clearTimeout(w.expiry)
      // from now on the request's own listeners decide (the socket goes back to the pool after the answer)
      w.req.removeListener("error", w.drop)
      w.req.socket.removeListener("close", w.onClose)
      return w.req
    },
    open: (): void => {
      if (closed || warm !== undefined) return
      const req = openRequest(origin, path, "POST", headers)
      const entry = {
        req,
        attached: false,
        drop: (_e: unknown) => {
          if (warm !== entry) return
          warm = undefined
          clearTimeout(entry.expiry)
          req.destroy()
        },
        onClose: () => entry.drop(undefined),
        // held too long: dropped (the next answer opens a new one); never keeps the process alive
        expiry: setTimeout(() => entry.drop(undefined), holdMs).unref()
      }
      req.on("error", entry.drop)
      req.once("socket", (socket) => {
        // taken before its connection came (cannot happen: `take` wants it attached) or already dropped
        if (warm !== entry) return
        entry.attached = true
        socket.setKeepAlive(true, 1_000)
        // the exchange closed the connection while the request waited: drop it (a new one opens after the next answer)
        socket.once("close", entry.onClose)
      })
      warm = entry
    },
    /** Kept-alive connections held by a waiting request (0 or 1). */
    held: (): number => (warm?.attached === true && warm.req.socket?.destroyed === false ? 1 : 0),
    close: (): void => {
      closed = true
      warm?.drop(undefined)
    }
  }
}

/** Every client's waiting order request, per origin prefix (diagnostics and tests, `idleConnections`). */
const warmByOrigin = new Map<string, Set<{ readonly held: () => number }>>()
const originKey = (origin: Origin) => `${origin.hostname}:${origin.port || (origin.secure ? "443" : "80")}:`

/**
 * Kept-alive connections to `baseUrl`'s origin idle in the pool or held by a waiting order request (diagnostics,
 * tests): a request on a connection the exchange has closed but whose close the client has not read yet fails as
 * "socket hang up", an unknown outcome, where a fresh connection to a closed port is refused (known not sent).
 */
export const idleConnections = (baseUrl: string): number => {
  const url = new URL(baseUrl)
  const secure = url.protocol === "https:"
  const prefix = originKey({ secure, hostname: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port })
  let n = 0
  for (const [name, sockets] of Object.entries((secure ? agents.https : agents.http).freeSockets)) {
    if (name.startsWith(prefix)) n += sockets?.length ?? 0
  }
  for (const w of warmByOrigin.get(prefix) ?? []) n += w.held()
  return n
}

export const make = (options: BinanceExchangeOptions) =>
  Effect.gen(function*() {
    const restBase = options.restBaseUrl.replace(/\/+$/, "")
    // REST answers that do not decode go to the dead-letter topic when a bus is there (tools and tests run without one).
    const bus = yield* Effect.serviceOption(Bus)
    const deadLetterRest = (operation: string, raw: string, error: string) =>
      Option.isSome(bus)
        ? publishDeadLetter(bus.value, { stage: "exchange.rest", reason: decodeReason(raw), topic: `exchange.rest:${operation}`, key: operation, raw, error })
        : Effect.void
    const offset = yield* Ref.make(0)
    const usage = yield* Ref.make<RateUsage>({})
    // read before every signed order: one map, not a generator
    const serverTime = Effect.flatMap(Ref.get(offset), (o) => Effect.map(Clock.currentTimeMillis, (now) => Math.round(now + o)))
    // the same, read at once with the Clock of the layer (the TestClock in tests)
    const clock = yield* Clock.Clock
    const serverTimeNow = () => Math.round(clock.currentTimeMillisUnsafe() + Ref.getUnsafe(offset))

    const readUsage = (headers: HeaderLookup) =>
      Effect.gen(function*() {
        const w = headers.get("x-mbx-used-weight-1m")
        const o10 = headers.get("x-mbx-order-count-10s")
        const o1d = headers.get("x-mbx-order-count-1d")
        if (w === null && o10 === null && o1d === null) return
        yield* Ref.update(usage, (u) => ({
          usedWeight1m: w === null ? u.usedWeight1m : Number(w),
          orderCount10s: o10 === null ? u.orderCount10s : Number(o10),
          orderCount1d: o1d === null ? u.orderCount1d : Number(o1d)
        }))
        if (w !== null) yield* Metric.update(usedWeight, Number(w))
      })

    const rest = new URL(`${restBase}/`)
    const origin = { secure: rest.protocol === "https:", hostname: rest.hostname.replace(/^\[(.*)\]$/, "$1"), port: rest.port }
    const pathBase = rest.pathname.replace(/\/+$/, "")
    const timeoutMs = Duration.toMillis(options.httpTimeout)
    const sign = signer(Redacted.value(options.apiSecret))
    // built once: the headers of every request (a body's length is added per request)
    const getHeaders: Record<string, string> = { "X-MBX-APIKEY": Redacted.value(options.apiKey) }
    const formHeaders: Record<string, string> = { ...getHeaders, "Content-Type": "application/x-www-form-urlencoded" }
    const ORDER_PATH = "/api/v3/order"
    const warmOrders = makeWarmRequests(origin, `${pathBase}${ORDER_PATH}`, formHeaders, Duration.toMillis(options.warmHold ?? Duration.seconds(4)))
    const warmKey = originKey(origin)
    const registry = warmByOrigin.get(warmKey) ?? new Set()
    warmByOrigin.set(warmKey, registry)
    registry.add(warmOrders)
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        warmOrders.close()
        registry.delete(warmOrders)
      })
    )

    /**
     * Writes the request at once, before it returns, and gives back the effect that awaits its answer (interrupting
     * that effect destroys the request). No answer → ExchangeUnavailable.
     */
    const sendNow = (operation: string, method: string, path: string, query: string, inBody: boolean, traceId: unknown): Effect.Effect<HttpAnswer, ExchangeUnavailable> => {
      const target = `${pathBase}${path}${!inBody && query !== "" ? `?${query}` : ""}`
      const placement = method === "POST" && path === ORDER_PATH
      const failed = (error: unknown) => {
        return new ExchangeUnavailable({
          operation,
          reason: `${method} ${restBase}${path}: ${networkCause(error)}`,
          // refused or unresolvable before any byte was sent: the request provably did not reach the exchange
          ...(provablyNotSent(error) ? { notSent: true } : {})
        })
      }
      // the outcome, kept until someone awaits it, or handed to the one awaiting
      let outcome: Effect.Effect<HttpAnswer, ExchangeUnavailable> | undefined
      let waiting: ((answer: Effect.Effect<HttpAnswer, ExchangeUnavailable>) => void) | undefined
      const settle = (answer: Effect.Effect<HttpAnswer, ExchangeUnavailable>) => {
        const resume = waiting
        waiting = undefined
        if (resume === undefined) outcome = answer
        else resume(answer)
      }
      let abort = () => {}
      try {
        const req = (placement ? warmOrders.take() : undefined) ?? openRequest(origin, target, method, inBody ? formHeaders : getHeaders)
        abort = sendRequest(req, inBody ? query : undefined, timeoutMs, (answer) => {
          if (!("_tag" in answer)) {
            settle(Effect.succeed(answer))
            // the exchange answers orders: have the next one's connection ready (best effort: a request node
            // refuses to open now is simply not opened ahead; the next order opens its own and sees the error)
            if (placement) {
              try {
                warmOrders.open()
              } catch {
                // nothing held
              }
            }
            return
          }
          if (answer._tag === "Timeout") {
            return settle(Effect.fail(
              new ExchangeUnavailable({ operation, reason: `${method} ${restBase}${path}: timeout, no response within ${Duration.format(options.httpTimeout)}` })
            ))
          }
          settle(Effect.fail(failed(answer.error)))
        })
      } catch (error) {
        // refused by node before anything was written (e.g. a header it rejects)
        outcome = Effect.fail(failed(error))
      }
      if (typeof traceId === "string" && latencyTraceOn()) traceWritten(traceId)
      return Effect.callback<HttpAnswer, ExchangeUnavailable>((resume) => {
        if (outcome !== undefined) return resume(outcome)
        waiting = resume
        return Effect.sync(() => {
          waiting = undefined
          abort()
        })
      })
    }

    /** The request on the wire when this runs; interrupting the caller destroys it. No answer → ExchangeUnavailable. */
    const send = (operation: string, method: string, path: string, query: string, inBody: boolean, traceId: unknown) =>
      Effect.suspend(() => sendNow(operation, method, path, query, inBody, traceId))

    /** What an answer means: the decoded body, or the error its status and body say. */
    const interpret = <S extends Schema.Top & { readonly DecodingServices: never }>(
      operation: string,
      method: string,
      path: string,
      schema: S,
      res: HttpAnswer
    ): Effect.Effect<S["Type"], ExchangeError> =>
      Effect.gen(function*() {
        const text = res.text
        yield* readUsage(res.headers)
        const status = res.status
        if (status === 429 || status === 418) {
          // no header (or an empty one) is the default hold, not none: Number("") is 0
          const header = res.headers.get("retry-after")?.trim()
          const retryAfter = header === undefined || header === "" ? Number.NaN : Number(header)
          return yield* new ExchangeRateLimited({
            operation,
            httpStatus: status,
            retryAfterMs: Number.isFinite(retryAfter) && retryAfter >= 0 ? retryAfter * 1000 : status === 418 ? 120_000 : 60_000,
            msg: text.slice(0, 300)
          })
        }
        if (status >= 500) {
          // Binance: a 5XX is NOT a failure; the execution status is unknown.
          return yield* new ExchangeUnavailable({ operation, reason: `${method} ${restBase}${path}: HTTP ${status}: ${text.slice(0, 200)}`, httpStatus: status })
        }
        const json = Schema.decodeUnknownExit(Schema.fromJsonString(Schema.Unknown))(text)
        if (status >= 400) {
          const body = Exit.isSuccess(json) ? Schema.decodeUnknownExit(ApiErrorBody)(json.value) : undefined
          if (body !== undefined && Exit.isSuccess(body)) {
            return yield* new ExchangeApiError({ operation, httpStatus: status, code: body.value.code, msg: body.value.msg })
          }
          return yield* new ExchangeApiError({ operation, httpStatus: status, code: 0, msg: `HTTP ${status}: ${text.slice(0, 200)}` })
        }
        const decoded = Exit.isSuccess(json) ? Schema.decodeUnknownExit(schema)(json.value) : json
        if (Exit.isFailure(decoded)) {
          const message = Cause.pretty(decoded.cause)
          yield* deadLetterRest(operation, text, message)
          return yield* new ExchangeDecodeError({ operation, raw: text.slice(0, 2000), message })
        }
        return decoded.value as S["Type"]
      })

    const request = <S extends Schema.Top & { readonly DecodingServices: never }>(
      operation: string,
      method: "GET" | "POST" | "DELETE",
      path: string,
      params: Record<string, string | number>,
      signed: boolean,
      schema: S,
      signing: { readonly timestamp?: number | undefined; readonly recvWindowMs?: number | undefined } = {}
    ): Effect.Effect<S["Type"], ExchangeError> =>
      Effect.gen(function*() {
        let query: string
        if (signed) {
          const timestamp = signing.timestamp ?? (yield* serverTime)
          query = sign({ ...params, recvWindow: signing.recvWindowMs ?? options.recvWindowMs, timestamp: Math.round(timestamp) })
        } else query = encodeParams(params)
        const res = yield* send(operation, method, path, query, method !== "GET" && signed, params.newClientOrderId)
        return yield* interpret(operation, method, path, schema, res)
      })

    const orderParams = (req: OrderRequest): Record<string, string | number> => ({
      symbol: req.symbol,
      side: req.side,
      type: req.type,
      ...(req.type === "LIMIT" ? { timeInForce: "GTC", price: req.price ?? "" } : {}),
      quantity: req.quantity,
      newClientOrderId: req.clientOrderId,
      newOrderRespType: "FULL"
    })

    /**
     * The order manager's first placement: signed and written before this returns (the caller's durable
     * OrderSubmitted carries `timestamp`); the effect awaits the answer. No span, as `placeOrder`.
     */
    const placeOrderNow = (req: OrderRequest): Effect.Effect<ExchangeOrder, ExchangeError> => {
      const params = orderParams(req)
      const query = sign({ ...params, recvWindow: req.recvWindowMs ?? options.recvWindowMs, timestamp: Math.round(req.timestamp ?? serverTimeNow()) })
      const answer = sendNow("placeOrder", "POST", ORDER_PATH, query, true, req.clientOrderId)
      return Effect.flatMap(answer, (res) => Effect.map(interpret("placeOrder", "POST", ORDER_PATH, OrderWire, res), toOrder))
    }

    const syncTime = Effect.gen(function*() {
      const before = yield* Clock.currentTimeMillis
      const { serverTime } = yield* request("time", "GET", "/api/v3/time", {}, false, ServerTimeWire)
      const after = yield* Clock.currentTimeMillis
      const skew = serverTime - (before + after) / 2
      yield* Ref.set(offset, skew)
      return skew
    }).pipe(Effect.withSpan("Exchange.syncTime"))

    const closeTimeout = options.closeTimeout ?? Duration.seconds(5)

    const trades = (symbols: ReadonlyArray<string>, tradesOptions: TradesOptions = {}): Stream.Stream<FrameResult, MarketStreamError> => {
      const url = combinedStreamUrl(options.wsBaseUrl, symbols)
      return Stream.callback<FrameResult, MarketStreamError>((queue) =>
        Effect.gen(function*() {
          const clock = yield* Clock.Clock
          let lastActivity = clock.currentTimeMillisUnsafe()
          let closing = false
          const failWith = (reason: string) => Queue.failCauseUnsafe(queue, Cause.fail(new MarketStreamError({ url, reason })))
          const ws = yield* Effect.acquireRelease(
            Effect.sync(() => new WebSocket(url, { handshakeTimeout: 10_000, maxPayload: MAX_WS_PAYLOAD })),
            (ws) => Effect.sync(() => ws.terminate())
          )
          // Frames keep arriving after our close frame until the exchange's close: they are emitted too.
          ws.on("message", (data) => {
            const at = latencyTraceOn() ? traceNow() : 0
            const now = clock.currentTimeMillisUnsafe()
            lastActivity = now
            const frame = decodeTradeFrame(String(data), now)
            if (at !== 0 && frame._tag === "Tick") {
              traceMark(tickId(frame.tick), "frame", at)
              traceMark(tickId(frame.tick), "decoded")
            }
            Queue.offerUnsafe(queue, frame)
          })
          // ws answers pings with pongs itself; a ping still proves the connection is alive
          ws.on("ping", () => {
            lastActivity = clock.currentTimeMillisUnsafe()
          })
          ws.on("close", (code, reason) => {
            if (closing) Queue.endUnsafe(queue)
            else failWith(`closed (${code}${reason.length > 0 ? ` ${reason.toString()}` : ""})`)
          })
          ws.on("error", (e) => (closing ? Queue.endUnsafe(queue) : failWith(e.message)))
          ws.on("unexpected-response", (_req, res) => failWith(`handshake refused: HTTP ${res.statusCode}`))
          if (tradesOptions.close !== undefined) {
            yield* tradesOptions.close.pipe(
              Effect.andThen(Effect.sync(() => {
                closing = true
                if (ws.readyState === WebSocket.OPEN) ws.close(1000, "client closing")
                else Queue.endUnsafe(queue)
              })),
              // bounded: an exchange that never answers our close does not hold the shutdown
              Effect.andThen(Effect.sleep(closeTimeout)),
              Effect.andThen(Effect.sync(() => Queue.endUnsafe(queue))),
              Effect.forkScoped
            )
          }
          const idleMs = Duration.toMillis(options.idleTimeout)
          yield* Effect.gen(function*() {
            while (true) {
              yield* Effect.sleep(Duration.millis(Math.max(1, Math.min(idleMs, 1000))))
              const now = yield* Clock.currentTimeMillis
              if (!closing && now - lastActivity >= idleMs) {
                failWith(`silent for ${Duration.format(options.idleTimeout)}`)
                return
              }
            }
          }).pipe(Effect.forkScoped)
        })
      )
    }

    const historicalTrades = (symbol: string, fromId: number, limit: number) =>
      Effect.gen(function*() {
        const operation = "historicalTrades"
        const rows = yield* request(
          operation,
          "GET",
          "/api/v3/historicalTrades",
          { symbol, fromId, limit: Math.max(1, Math.min(HISTORICAL_TRADES_MAX, Math.floor(limit))) },
          false,
          HistoricalTradesWire
        )
        const now = yield* Clock.currentTimeMillis
        const page = historicalTicks(symbol, rows, now)
        if (page._tag === "Ticks") return page.ticks
        const raw = JSON.stringify(rows)
        yield* deadLetterRest(operation, raw, page.error)
        return yield* new ExchangeDecodeError({ operation, raw: raw.slice(0, 2000), message: page.error })
      }).pipe(Effect.withSpan("Exchange.historicalTrades", { attributes: { symbol, fromId } }))

    return Exchange.of({
      trades,
      historicalTrades,
      placeOrder: (req) =>
        request("placeOrder", "POST", ORDER_PATH, orderParams(req), true, OrderWire, { timestamp: req.timestamp, recvWindowMs: req.recvWindowMs })
          // no span: it sits between the tick and the order on the wire (the order manager's events trace it)
          .pipe(Effect.map(toOrder)),
      queryOrder: (symbol, clientOrderId) =>
        request("queryOrder", "GET", "/api/v3/order", { symbol, origClientOrderId: clientOrderId }, true, OrderWire).pipe(
          Effect.map(toOrder),
          Effect.withSpan("Exchange.queryOrder")
        ),
      orderTrades: (symbol, orderId) =>
        request("orderTrades", "GET", "/api/v3/myTrades", { symbol, orderId }, true, MyTradesWire).pipe(
          Effect.map((trades) =>
            trades.map((t): Fill => ({
              price: toNumber(t.price),
              qty: toNumber(t.qty),
              commission: toNumber(t.commission),
              commissionAsset: t.commissionAsset,
              tradeId: t.id
            }))
          )
        ),
      exchangeInfo: (symbols) =>
        request(
          "exchangeInfo",
          "GET",
          "/api/v3/exchangeInfo",
          // none: every symbol the exchange lists (the start-up check of SYMBOLS)
          symbols.length === 0 ? {} : symbols.length === 1 ? { symbol: symbols[0] } : { symbols: JSON.stringify(symbols) },
          false,
          ExchangeInfoWire
        ).pipe(Effect.map((info) => info.symbols.map(toRules))),
      syncTime,
      usage: Ref.get(usage),
      serverTime,
      now: { serverTime: serverTimeNow, placeOrder: placeOrderNow }
    })
  })

export const layerOptions = (options: BinanceExchangeOptions) => Layer.effect(Exchange, make(options))

/** URLs from env, falling back to `defaults` (e.g. the embedded simulator's). */
export const layer = (defaults: { readonly wsBaseUrl?: string; readonly restBaseUrl?: string } = {}) =>
  Layer.effect(Exchange, Effect.gen(function*() {
    return yield* make(yield* exchangeConfig(defaults))
  }))
