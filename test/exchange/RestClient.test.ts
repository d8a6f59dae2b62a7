/**
 * The REST client's edges on real sockets: a request that gets no answer within EXCHANGE_HTTP_TIMEOUT fails as
 * ExchangeUnavailable (outcome unknown, so the order manager looks the order up) and its socket is closed; an
 * interrupted request is aborted on the wire; a refused connection is reported as never sent; a 429/418 is
 * ExchangeRateLimited with its Retry-After. Each for both forms of a placement (`placeOrder`, `now.placeOrder`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Redacted } from "effect"
import { createServer, type IncomingMessage, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import type { ExchangeOrder, ExchangeShape, OrderRequest } from "../../src/exchange/Exchange.ts"
import type { ExchangeError } from "../../src/exchange/ExchangeErrors.ts"

/** `server` listening on a free loopback port until the scope closes (its open connections cut then); its URL. */
const listening = (server: Server) =>
  Effect.acquireRelease(
    Effect.callback<string>((resume) => {
      server.listen(0, "127.0.0.1", () => resume(Effect.succeed(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)))
    }),
    () =>
      Effect.callback<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

/** An HTTP server that reads every request and never answers; `closed` resolves when a request's socket closes. */
const silentServer = Effect.gen(function*() {
  const received = yield* Deferred.make<IncomingMessage>()
  const closed = yield* Deferred.make<void>()
  const server: Server = createServer((req) => {
    req.resume()
    req.socket.once("close", () => Deferred.doneUnsafe(closed, Exit.void))
    Deferred.doneUnsafe(received, Exit.succeed(req))
  })
  const url = yield* listening(server)
  return { server, url, received, closed }
})

const exchangeAt = (restBaseUrl: string, httpTimeout: Duration.Duration, warmHold?: Duration.Duration) =>
  BinanceExchange.make({
    ...(warmHold === undefined ? {} : { warmHold }),
    wsBaseUrl: "ws://127.0.0.1:1",
    restBaseUrl,
    apiKey: Redacted.make("key"),
    apiSecret: Redacted.make("secret"),
    recvWindowMs: 5000,
    httpTimeout,
    idleTimeout: Duration.seconds(30)
  })

/** An HTTP server answering every order; counts connections and records which connection each request came on. */
const answeringServer = Effect.gen(function*() {
  const sockets: Array<unknown> = []
  const requests: Array<{ readonly connection: number; readonly body: string }> = []
  const server: Server = createServer((req, res) => {
    let body = ""
    req.on("data", (c: Buffer) => (body += c.toString()))
    req.on("end", () => {
      requests.push({ connection: sockets.indexOf(req.socket), body })
      const id = /newClientOrderId=([^&]+)/.exec(body)?.[1] ?? ""
      res.setHeader("Content-Type", "application/json")
      res.end(JSON.stringify({ symbol: "BTCUSDT", orderId: requests.length, clientOrderId: id, status: "FILLED", executedQty: "0.001", cummulativeQuoteQty: "0.1" }))
    })
  })
  server.on("connection", (socket) => sockets.push(socket))
  const url = yield* listening(server)
  return { server, url, sockets, requests }
})

const until = (condition: () => boolean, what: string) =>
  Effect.gen(function*() {
    const started = Date.now()
    while (!condition()) {
      if (Date.now() - started > 10_000) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 5)))
    }
  })

const order = { symbol: "BTCUSDT", side: "BUY", type: "MARKET", quantity: "0.001", clientOrderId: "at-test-1", timestamp: Date.now(), recvWindowMs: 5000 } as const

/** An HTTP server answering every request with `status`, `headers` and `body`. */
const statusServer = (status: number, headers: Record<string, string>, body: string) =>
  listening(createServer((req, res) => {
    req.resume()
    req.on("end", () => {
      res.writeHead(status, { "Content-Type": "application/json", ...headers })
      res.end(body)
    })
  }))

/**
 * The two forms of an order placement: `placeOrder` (written when its effect runs) and `now.placeOrder` (written when
 * called, the order manager's first placement; its effect awaits the answer). Same answers and errors.
 */
const forms: ReadonlyArray<{ readonly name: string; readonly place: (exchange: ExchangeShape, o: OrderRequest) => Effect.Effect<ExchangeOrder, ExchangeError> }> = [
  { name: "placeOrder", place: (exchange, o) => exchange.placeOrder(o) },
  { name: "now.placeOrder", place: (exchange, o) => Effect.suspend(() => exchange.now!.placeOrder(o)) }
]

for (const { name, place } of forms) {
  describe(`REST client: ${name}`, () => {
    it.live("no answer within the timeout: ExchangeUnavailable (not 'not sent'), the request's socket closed", () =>
      Effect.gen(function*() {
        const server = yield* silentServer
        const exchange = yield* exchangeAt(server.url, Duration.millis(300))
        const started = Date.now()
        const exit = yield* place(exchange, order).pipe(Effect.exit)
        const elapsed = Date.now() - started
        assert.isTrue(Exit.isFailure(exit))
        const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
        assert.strictEqual(error?._tag, "Fail")
        const failure = error?._tag === "Fail" ? error.error : undefined
        assert.strictEqual(failure?._tag, "ExchangeUnavailable")
        if (failure?._tag === "ExchangeUnavailable") {
          assert.match(failure.reason, /timeout, no response within/)
          assert.notStrictEqual(failure.notSent, true, "the request was written: its outcome is unknown")
        }
        assert.isAtLeast(elapsed, 250)
        const req = yield* Deferred.await(server.received)
        assert.strictEqual(req.url, "/api/v3/order")
        assert.strictEqual(req.headers["x-mbx-apikey"], "key")
        yield* Deferred.await(server.closed)
      }).pipe(Effect.scoped))

    it.live("an interrupted request is aborted on the wire", () =>
      Effect.gen(function*() {
        const server = yield* silentServer
        const exchange = yield* exchangeAt(server.url, Duration.hours(1))
        const fiber = yield* place(exchange, order).pipe(Effect.forkChild)
        yield* Deferred.await(server.received)
        yield* Fiber.interrupt(fiber)
        yield* Deferred.await(server.closed)
      }).pipe(Effect.scoped))

    it.live("a refused connection is reported as not sent", () =>
      Effect.gen(function*() {
        const server = yield* silentServer
        const url = server.url
        yield* Effect.callback<void>((resume) => {
          server.server.close(() => resume(Effect.void))
        })
        const exchange = yield* exchangeAt(url, Duration.hours(1))
        const failure = yield* place(exchange, order).pipe(Effect.flip)
        assert.strictEqual(failure._tag, "ExchangeUnavailable")
        if (failure._tag === "ExchangeUnavailable") {
          assert.strictEqual(failure.notSent, true)
          assert.match(failure.reason, /ECONNREFUSED/)
        }
      }).pipe(Effect.scoped))

    const limited: ReadonlyArray<{ readonly status: number; readonly headers: Record<string, string>; readonly retryAfterMs: number }> = [
      { status: 429, headers: { "Retry-After": "7" }, retryAfterMs: 7_000 },
      { status: 418, headers: { "Retry-After": "300" }, retryAfterMs: 300_000 },
      { status: 429, headers: {}, retryAfterMs: 60_000 },
      { status: 418, headers: {}, retryAfterMs: 120_000 }
    ]
    for (const { status, headers, retryAfterMs } of limited) {
      it.live(`${status}${"Retry-After" in headers ? ` with Retry-After: ${headers["Retry-After"]}` : " without Retry-After"}: ExchangeRateLimited, hold ${retryAfterMs} ms`, () =>
        Effect.gen(function*() {
          const url = yield* statusServer(status, headers, `{"code":-1003,"msg":"Too many requests."}`)
          const exchange = yield* exchangeAt(url, Duration.seconds(5))
          const failure = yield* place(exchange, order).pipe(Effect.flip)
          assert.strictEqual(failure._tag, "ExchangeRateLimited")
          if (failure._tag === "ExchangeRateLimited") {
            assert.deepStrictEqual([failure.operation, failure.httpStatus, failure.retryAfterMs], ["placeOrder", status, retryAfterMs])
            assert.match(failure.msg, /Too many requests/)
          }
        }).pipe(Effect.scoped))
    }
  })
}

describe("REST client: now.placeOrder", () => {
  it.live("the request is on the wire before the effect runs (its effect only awaits the answer)", () =>
    Effect.gen(function*() {
      const server = yield* silentServer
      const exchange = yield* exchangeAt(server.url, Duration.hours(1))
      const answer = exchange.now!.placeOrder(order) // not run
      const req = yield* Deferred.await(server.received)
      assert.strictEqual(req.url, "/api/v3/order")
      // interrupting the awaiting effect aborts the request
      const fiber = yield* Effect.forkChild(answer)
      yield* Effect.yieldNow
      yield* Fiber.interrupt(fiber)
      yield* Deferred.await(server.closed)
    }).pipe(Effect.scoped))
})

describe("REST client", () => {
  it.live("after an order's answer the next order's connection is opened ahead and the next order goes out on it", () =>
    Effect.gen(function*() {
      const server = yield* answeringServer
      const exchange = yield* exchangeAt(server.url, Duration.seconds(5))
      const first = yield* exchange.placeOrder({ ...order, clientOrderId: "at-warm-1" })
      assert.strictEqual(first.clientOrderId, "at-warm-1")
      // the answered order's connection went back to the pool and a second one waits with the next request
      yield* until(() => server.sockets.length === 2 && BinanceExchange.idleConnections(server.url) === 2, "a connection opened ahead")
      assert.strictEqual(server.requests.length, 1, "nothing is sent on the waiting connection before it is used")
      const second = yield* exchange.placeOrder({ ...order, clientOrderId: "at-warm-2" })
      assert.strictEqual(second.clientOrderId, "at-warm-2")
      assert.strictEqual(server.requests.length, 2)
      assert.strictEqual(server.requests[1].connection, 1, "the second order went out on the connection opened ahead")
      assert.match(server.requests[1].body, /newClientOrderId=at-warm-2&.*&signature=[0-9a-f]{64}$/)
    }).pipe(Effect.scoped))

  it.live("a connection opened ahead is dropped after its longest hold; the next order still goes out", () =>
    Effect.gen(function*() {
      const server = yield* answeringServer
      const exchange = yield* exchangeAt(server.url, Duration.seconds(5), Duration.millis(300))
      yield* exchange.placeOrder({ ...order, clientOrderId: "at-hold-1" })
      yield* until(() => server.sockets.length === 2 && BinanceExchange.idleConnections(server.url) === 2, "a connection opened ahead")
      const held = server.sockets[1] as { readonly destroyed: boolean }
      // nobody orders: after 300 ms the waiting request lets its connection go (servers close idle ones after ~5 s)
      yield* until(() => BinanceExchange.idleConnections(server.url) === 1 && held.destroyed, "the held connection closed")
      assert.strictEqual(server.requests.length, 1, "nothing was sent on it")
      const next = yield* exchange.placeOrder({ ...order, clientOrderId: "at-hold-2" })
      assert.strictEqual(next.clientOrderId, "at-hold-2")
      assert.strictEqual(server.requests.length, 2)
      assert.notStrictEqual(server.requests[1].connection, 1, "not on the dropped connection")
    }).pipe(Effect.scoped))

  it.live("a connection opened ahead that the exchange closes is dropped; the next order opens its own", () =>
    Effect.gen(function*() {
      const server = yield* answeringServer
      const exchange = yield* exchangeAt(server.url, Duration.seconds(5))
      yield* exchange.placeOrder({ ...order, clientOrderId: "at-drop-1" })
      yield* until(() => server.sockets.length === 2 && BinanceExchange.idleConnections(server.url) === 2, "a connection opened ahead")
      server.server.closeAllConnections() // the exchange's idle timeout, a restart
      yield* until(() => BinanceExchange.idleConnections(server.url) === 0, "the client saw its connections closed")
      const next = yield* exchange.placeOrder({ ...order, clientOrderId: "at-drop-2" })
      assert.strictEqual(next.clientOrderId, "at-drop-2")
      assert.strictEqual(server.requests.length, 2)
      assert.strictEqual(server.requests[1].connection, 2, "a new connection")
    }).pipe(Effect.scoped))
})

describe("which network errors prove an order was not sent", () => {
  it("a failed name lookup or connect proves it; the same codes on an established connection do not", () => {
    // what node reports for a connect that failed: code and syscall "connect" (undici wraps it in `cause`)
    for (const code of ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"]) {
      assert.isTrue(BinanceExchange.provablyNotSent({ code, syscall: "connect" }), code)
      assert.isTrue(BinanceExchange.provablyNotSent({ cause: { code, syscall: "connect" } }), `${code} (cause)`)
      // on a kept-alive socket, after the order was written: its outcome is unknown, it must be looked up
      assert.isFalse(BinanceExchange.provablyNotSent({ code, syscall: "read" }), `${code} on read`)
      assert.isFalse(BinanceExchange.provablyNotSent({ code }), `${code} without syscall`)
    }
    for (const code of ["ENOTFOUND", "EAI_AGAIN"]) assert.isTrue(BinanceExchange.provablyNotSent({ code, syscall: "getaddrinfo" }), code)
    for (const code of ["ECONNRESET", "EPIPE", "ETIMEDOUT"]) assert.isFalse(BinanceExchange.provablyNotSent({ code, syscall: "connect" }), code)
    assert.isFalse(BinanceExchange.provablyNotSent(new Error("socket hang up")))
    assert.isFalse(BinanceExchange.provablyNotSent(undefined))
  })
})
