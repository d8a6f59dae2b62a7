/**
 * Binance market-data WebSocket streams: raw `/ws/<stream>` and combined `/stream?streams=a/b`, live
 * SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY, ping frames every
 * `pingIntervalMs` with disconnection of clients that do not pong within `pongTimeoutMs`, and the
 * limit of 5 incoming messages per second.
 */
import type { IncomingMessage } from "node:http"
import type { Duplex } from "node:stream"
import { WebSocket, WebSocketServer } from "ws"
import type { PublicTrade } from "./Engine.ts"
import * as Fixed from "./Fixed.ts"
import type { MarketFaults } from "./MarketData.ts"

export interface StreamServerOptions {
  readonly pingIntervalMs: number
  readonly pongTimeoutMs: number
  readonly now: () => number
  /** Market-data faults, read on every trade (so tests switch them at run time). */
  readonly faults?: { current: MarketFaults }
  /** Seeded randomness for the faults. */
  readonly random?: () => number
}

/** Kinds of malformed frames the `malformedRate` fault sends, in turn. */
const malformedFrame = (n: number, valid: string): string => {
  switch (n % 4) {
    case 0:
      return "this is not JSON"
    case 1:
      return valid.slice(0, Math.max(1, Math.floor(valid.length / 2))) // partial frame
    case 2:
      return JSON.stringify({ stream: "btcusdt@trade", data: { e: "trade", junk: "x".repeat(100_000) } }) // oversized
    default:
      return JSON.stringify({ stream: "btcusdt@trade", data: { e: "trade", s: "BTCUSDT", t: "NaN", p: "-1" } })
  }
}

interface Client {
  readonly socket: WebSocket
  /** The TCP socket under `socket`: corked while a loop turn's frames are written, so they leave in one writev. */
  readonly raw: Duplex
  corked: boolean
  readonly streams: Set<string>
  combined: boolean
  /** When the oldest unanswered ping went out; `undefined` when the client is up to date. */
  awaitingPongSince: number | undefined
  pongTimer: ReturnType<typeof setTimeout> | undefined
  /** Times of incoming control messages and pings in the last second. */
  readonly incoming: Array<number>
  /** Closes the connection once it is `maxConnectionMs` old. */
  lifetimeTimer: ReturnType<typeof setTimeout> | undefined
}

const MAX_INCOMING_PER_SECOND = 5
const MAX_STREAMS = 1024
const KLINE_INTERVALS = "1s|1m|3m|5m|15m|30m|1h|2h|4h|6h|8h|12h|1d|3d|1w|1M"
/** Stream names Binance serves; others are an "invalid stream". Only `@trade` carries data here. */
const STREAM_NAME = new RegExp(
  "^(?:[a-z0-9]+@(?:trade|aggTrade|blockTrade|referencePrice|avgPrice|bookTicker|miniTicker|ticker" +
    `|ticker_(?:1h|4h|1d)|depth(?:5|10|20)?(?:@100ms|@1000ms)?|kline_(?:${KLINE_INTERVALS})` +
    `|kline_(?:${KLINE_INTERVALS})@\\+08:00)` +
    "|!miniTicker@arr|!ticker@arr|!ticker_(?:1h|4h|1d)@arr)$"
)
const METHODS = ["SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY"]

export const isValidStreamName = (name: string): boolean => STREAM_NAME.test(name)

/** The trade payload exactly as Binance documents it (field order included). */
export const tradePayload = (trade: PublicTrade, eventTime: number) => ({
  e: "trade",
  E: eventTime,
  s: trade.symbol,
  t: trade.tradeId,
  p: Fixed.format(trade.price),
  q: Fixed.format(trade.qty),
  T: trade.time,
  m: trade.buyerIsMaker,
  M: true
})

/**
 * `JSON.stringify(tradePayload(trade, eventTime))`, built by hand (the sender of every frame at tens of thousands a
 * second): same fields, same order, same text. Symbols are `[A-Z0-9]` and decimals digits, so nothing needs escaping.
 */
export const tradePayloadJson = (trade: PublicTrade, eventTime: number): string =>
  `{"e":"trade","E":${eventTime},"s":"${trade.symbol}","t":${trade.tradeId},"p":"${Fixed.format(trade.price)}","q":"${
    Fixed.format(trade.qty)
  }","T":${trade.time},"m":${trade.buyerIsMaker},"M":true}`

type RequestId = number | string | null

export class StreamServer {
  readonly #wss = new WebSocketServer({ noServer: true })
  readonly #clients = new Set<Client>()
  readonly #options: StreamServerOptions
  readonly #pingTimer: ReturnType<typeof setInterval> | undefined
  readonly #faults: { current: MarketFaults }
  readonly #random: () => number
  #cutTimer: ReturnType<typeof setTimeout> | undefined
  #cutArmed: MarketFaults["cutEveryMs"]
  #stallTimer: ReturnType<typeof setInterval> | undefined
  #stallArmed: MarketFaults["stallEveryMs"]
  #stalledUntil = 0
  #held: PublicTrade | undefined
  #malformedSent = 0
  #sent: Array<{ readonly symbol: string; readonly tradeId: number }> | undefined
  /** Clients corked in this loop turn; uncorked together right after it (process.nextTick). */
  #corked: Array<Client> = []
  readonly #streamOf = new Map<string, string>()

  constructor(options: StreamServerOptions) {
    this.#options = options
    this.#faults = options.faults ?? { current: {} }
    this.#random = options.random ?? Math.random
    this.#pingTimer = options.pingIntervalMs > 0 ? setInterval(() => this.#pingAll(), options.pingIntervalMs) : undefined
    this.faultsChanged()
  }

  /** Re-arms the timers that depend on the faults (random cuts, periodic stalls). Call after changing `faults.current`. */
  faultsChanged(): void {
    const stall = this.#faults.current.stallEveryMs
    if (stall !== this.#stallArmed) {
      this.#stallArmed = stall
      if (this.#stallTimer !== undefined) clearInterval(this.#stallTimer)
      this.#stallTimer = stall === undefined ? undefined : setInterval(() => this.stall(stall.forMs), stall.every)
    }
    const cut = this.#faults.current.cutEveryMs
    if (cut === this.#cutArmed) return
    this.#cutArmed = cut
    if (this.#cutTimer !== undefined) clearTimeout(this.#cutTimer)
    this.#cutTimer = undefined
    if (cut === undefined) return
    const arm = () => {
      const delay = cut.min + this.#random() * Math.max(0, cut.max - cut.min)
      this.#cutTimer = setTimeout(() => {
        this.dropAll()
        arm()
      }, delay)
    }
    arm()
  }

  /** No frames and no pings for `ms` (the sockets stay open): a stalled connection. Trades meanwhile are not sent. */
  stall(ms: number): void {
    this.#stalledUntil = Date.now() + ms
  }

  /** Sends `text` as is to every client (tests of malformed frames). */
  sendRaw(text: string): void {
    for (const client of this.#clients) if (client.socket.readyState === WebSocket.OPEN) client.socket.send(text)
  }

  /** Starts (or stops) recording which trades were sent to a client; returns what was recorded so far. */
  recordSent(on: boolean): ReadonlyArray<{ readonly symbol: string; readonly tradeId: number }> {
    const sent = this.#sent ?? []
    this.#sent = on ? [] : undefined
    return sent
  }

  /** Handles an HTTP upgrade; answers 404 for unknown paths and 400 for invalid stream names. */
  upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? "/", "http://sim")
    let streams: Array<string>
    let combined: boolean
    if (url.pathname === "/ws" || url.pathname.startsWith("/ws/")) {
      streams = url.pathname.slice(3).split("/").filter((s) => s !== "")
      combined = false
    } else if (url.pathname === "/stream" || url.pathname === "/stream/") {
      streams = (url.searchParams.get("streams") ?? "").split("/").filter((s) => s !== "")
      combined = true
    } else {
      return rejectUpgrade(socket, 404, "Not Found")
    }
    if (!streams.every(isValidStreamName) || streams.length > MAX_STREAMS) {
      return rejectUpgrade(socket, 400, "Bad Request")
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#register(ws, socket, streams, combined))
  }

  publishTrade(trade: PublicTrade): void {
    if (Date.now() < this.#stalledUntil) return
    const f = this.#faults.current
    const roll = (rate: number | undefined) => rate !== undefined && rate > 0 && this.#random() < rate
    if (roll(f.reorderRate) && this.#held === undefined) {
      this.#held = trade
      return
    }
    const held = this.#held
    this.#held = undefined
    if (roll(f.malformedRate)) this.sendRaw(malformedFrame(this.#malformedSent++, JSON.stringify({ stream: "x", data: tradePayload(trade, 0) })))
    if (roll(f.unsubscribedRate)) this.#sendTrade({ ...trade, symbol: "XYZUSDT" }, true)
    this.#sendTrade(trade, false)
    if (roll(f.duplicateRate)) this.#sendTrade(trade, false)
    if (held !== undefined) this.#sendTrade(held, false)
  }

  /**
   * Sends a trade to its subscribers (`toAll`: to every client, subscribed or not), one frame per trade as Binance
   * does; the frames of one loop turn are written together (the socket stays corked until the turn ends).
   */
  #sendTrade(trade: PublicTrade, toAll: boolean): void {
    let stream = this.#streamOf.get(trade.symbol)
    if (stream === undefined) this.#streamOf.set(trade.symbol, (stream = `${trade.symbol.toLowerCase()}@trade`))
    let raw: string | undefined
    let wrapped: string | undefined
    for (const client of this.#clients) {
      if ((!toAll && !client.streams.has(stream)) || client.socket.readyState !== WebSocket.OPEN) continue
      this.#cork(client)
      if (client.combined) {
        wrapped ??= `{"stream":"${stream}","data":${raw ??= tradePayloadJson(trade, this.#options.now())}}`
        client.socket.send(wrapped)
      } else {
        raw ??= tradePayloadJson(trade, this.#options.now())
        client.socket.send(raw)
      }
      if (!toAll) this.#sent?.push({ symbol: trade.symbol, tradeId: trade.tradeId })
    }
  }

  #cork(client: Client): void {
    if (client.corked) return
    client.corked = true
    client.raw.cork()
    this.#corked.push(client)
    if (this.#corked.length === 1) process.nextTick(this.#uncorkAll)
  }

  readonly #uncorkAll = (): void => {
    const corked = this.#corked
    this.#corked = []
    for (const client of corked) {
      client.corked = false
      client.raw.uncork()
    }
  }

  /** Abrupt disconnect of every client (no close frame), like a network failure. */
  dropAll(): void {
    for (const client of this.#clients) client.socket.terminate()
  }

  clientCount(): number {
    return this.#clients.size
  }

  close(): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer)
    if (this.#cutTimer !== undefined) clearTimeout(this.#cutTimer)
    if (this.#stallTimer !== undefined) clearInterval(this.#stallTimer)
    this.#cutArmed = undefined
    this.#stallArmed = undefined
    this.dropAll()
    this.#wss.close()
  }

  #register(socket: WebSocket, raw: Duplex, streams: ReadonlyArray<string>, combined: boolean): void {
    const client: Client = {
      socket,
      raw,
      corked: false,
      streams: new Set(streams),
      combined,
      awaitingPongSince: undefined,
      pongTimer: undefined,
      incoming: [],
      lifetimeTimer: undefined
    }
    this.#clients.add(client)
    const lifetime = this.#faults.current.maxConnectionMs
    if (lifetime !== undefined) {
      // Binance closes every connection after 24 hours
      client.lifetimeTimer = setTimeout(() => socket.close(1001, "connection lifetime reached"), lifetime)
    }
    socket.on("pong", () => {
      // Only a pong after our ping counts; unsolicited pongs do not keep a connection alive.
      if (client.awaitingPongSince === undefined) return
      client.awaitingPongSince = undefined
      if (client.pongTimer !== undefined) clearTimeout(client.pongTimer)
      client.pongTimer = undefined
    })
    socket.on("ping", () => this.#countIncoming(client))
    socket.on("message", (data, isBinary) => {
      if (!this.#countIncoming(client)) return
      this.#onMessage(client, isBinary ? "" : data.toString())
    })
    socket.on("close", () => this.#forget(client))
    socket.on("error", () => this.#forget(client))
  }

  #forget(client: Client): void {
    if (client.pongTimer !== undefined) clearTimeout(client.pongTimer)
    if (client.lifetimeTimer !== undefined) clearTimeout(client.lifetimeTimer)
    this.#clients.delete(client)
  }

  /** False (and the client is disconnected) when it exceeds 5 messages per second. */
  #countIncoming(client: Client): boolean {
    const now = Date.now()
    while (client.incoming.length > 0 && client.incoming[0] <= now - 1000) client.incoming.shift()
    client.incoming.push(now)
    if (client.incoming.length > MAX_INCOMING_PER_SECOND) {
      client.socket.terminate()
      return false
    }
    return true
  }

  #pingAll(): void {
    if (Date.now() < this.#stalledUntil) return
    for (const client of this.#clients) {
      if (client.socket.readyState !== WebSocket.OPEN) continue
      client.socket.ping()
      if (client.awaitingPongSince === undefined) {
        client.awaitingPongSince = Date.now()
        client.pongTimer = setTimeout(() => {
          if (client.awaitingPongSince !== undefined) client.socket.terminate()
        }, this.#options.pongTimeoutMs)
      }
    }
  }

  #send(client: Client, message: unknown): void {
    if (client.socket.readyState === WebSocket.OPEN) client.socket.send(JSON.stringify(message))
  }

  #error(client: Client, code: number, msg: string, id?: RequestId): void {
    this.#send(client, id === undefined ? { error: { code, msg } } : { error: { code, msg }, id })
  }

  #onMessage(client: Client, text: string): void {
    let request: unknown
    try {
      request = JSON.parse(text)
    } catch {
      return this.#error(client, 3, "Invalid JSON: expected value at line 1 column 1")
    }
    if (typeof request !== "object" || request === null || Array.isArray(request)) {
      return this.#error(client, 2, "Invalid request: expected a JSON object")
    }
    const fields = request as Record<string, unknown>
    const id = fields.id
    const validId =
      id === null ||
      id === undefined ||
      (typeof id === "number" && Number.isSafeInteger(id)) ||
      (typeof id === "string" && /^[A-Za-z0-9]{1,36}$/.test(id))
    if (!validId) return this.#error(client, 2, "Invalid request: request ID must be an unsigned integer", null)
    const requestId = (id ?? null) as RequestId
    const method = fields.method
    if (method === undefined) {
      return this.#error(client, 2, `Invalid request: missing field \`method\` at line 1 column ${text.length}`, requestId)
    }
    if (typeof method !== "string" || !METHODS.includes(method)) {
      const column = text.indexOf(String(method)) + String(method).length + 1
      return this.#error(
        client,
        2,
        `Invalid request: unknown variant \`${String(method)}\`, expected one of \`SUBSCRIBE\`, \`UNSUBSCRIBE\`, \`LIST_SUBSCRIPTIONS\`, \`SET_PROPERTY\`, \`GET_PROPERTY\` at line 1 column ${column}`,
        requestId
      )
    }
    const params = fields.params
    switch (method) {
      case "SUBSCRIBE":
      case "UNSUBSCRIBE": {
        if (!Array.isArray(params) || !params.every((p) => typeof p === "string" && isValidStreamName(p))) {
          return this.#error(client, 2, "Invalid request: invalid stream", requestId)
        }
        if (method === "SUBSCRIBE") {
          if (new Set([...client.streams, ...params]).size > MAX_STREAMS) {
            return this.#error(client, 2, "Invalid request: too many streams", requestId)
          }
          for (const stream of params) client.streams.add(stream)
        } else {
          for (const stream of params) client.streams.delete(stream)
        }
        return this.#send(client, { result: null, id: requestId })
      }
      case "LIST_SUBSCRIPTIONS":
        return this.#send(client, { result: [...client.streams], id: requestId })
      case "SET_PROPERTY": {
        if (!Array.isArray(params) || typeof params[0] !== "string") {
          return this.#error(client, 2, "Invalid request: property name must be a string", requestId)
        }
        if (params.length > 2) return this.#error(client, 2, "Invalid request: too many parameters", requestId)
        if (params[0] !== "combined") return this.#error(client, 0, "Unknown property", requestId)
        if (typeof params[1] !== "boolean") return this.#error(client, 1, "Invalid value type: expected Boolean", requestId)
        client.combined = params[1]
        return this.#send(client, { result: null, id: requestId })
      }
      case "GET_PROPERTY": {
        if (!Array.isArray(params) || typeof params[0] !== "string") {
          return this.#error(client, 2, "Invalid request: property name must be a string", requestId)
        }
        if (params[0] !== "combined") return this.#error(client, 0, "Unknown property", requestId)
        return this.#send(client, { result: client.combined, id: requestId })
      }
    }
  }
}

const rejectUpgrade = (socket: Duplex, status: number, reason: string): void => {
  socket.once("finish", () => socket.destroy())
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`)
}
