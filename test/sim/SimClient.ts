/** Test-side clients for the simulated exchange: signed REST calls and a WebSocket probe that waits on frames. */
import { request as httpRequest } from "node:http"
import WebSocket from "ws"
import { encodeParams, signedQuery } from "../../src/exchange/BinanceSigning.ts"
import { SIM_API_KEY, SIM_API_SECRET, type SimExchange, type SimExchangeOptions, startSimExchange } from "../../src/sim/index.ts"

export interface HttpResult {
  readonly status: number
  readonly headers: Headers
  readonly body: any
}

const toResult = async (response: Response): Promise<HttpResult> => {
  const text = await response.text()
  let body: unknown = text
  try {
    body = JSON.parse(text)
  } catch {
    // non-JSON bodies (404 pages) stay text
  }
  return { status: response.status, headers: response.headers, body }
}

export const publicGet = async (sim: SimExchange, pathAndQuery: string): Promise<HttpResult> =>
  toResult(await fetch(`${sim.restBaseUrl}${pathAndQuery}`))

export interface SignedOptions {
  readonly apiKey?: string | null
  readonly secret?: string
  /** Send the signed parameters as a form body instead of the query string. */
  readonly asBody?: boolean
  readonly timestamp?: number
}

export const signed = async (
  sim: SimExchange,
  method: "GET" | "POST" | "DELETE",
  path: string,
  params: Record<string, string | number>,
  options: SignedOptions = {}
): Promise<HttpResult> => {
  const query = signedQuery({ ...params, timestamp: options.timestamp ?? Date.now() }, options.secret ?? SIM_API_SECRET)
  const headers: Record<string, string> = {}
  const apiKey = options.apiKey === undefined ? SIM_API_KEY : options.apiKey
  if (apiKey !== null) headers["X-MBX-APIKEY"] = apiKey
  if (options.asBody) {
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    return toResult(await fetch(`${sim.restBaseUrl}${path}`, { method, headers, body: query }))
  }
  return toResult(await fetch(`${sim.restBaseUrl}${path}?${query}`, { method, headers }))
}

/** Unsigned raw request: for tests that build the query by hand. */
export const rawRequest = async (
  sim: SimExchange,
  method: string,
  pathAndQuery: string,
  init: { readonly headers?: Record<string, string>; readonly body?: string } = {}
): Promise<HttpResult> =>
  toResult(await fetch(`${sim.restBaseUrl}${pathAndQuery}`, { method, headers: init.headers ?? {}, body: init.body }))

export const unsignedQuery = encodeParams

/** A request over node:http, resolving with the status or rejecting with the socket error (e.g. hang-up). */
export const nodeRequest = (url: string, method: string, headers: Record<string, string>): Promise<number> =>
  new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false }, (res) => {
      res.resume()
      res.on("end", () => resolve(res.statusCode ?? 0))
    })
    req.on("error", reject)
    req.end()
  })

export const withSim = async <A>(options: SimExchangeOptions, body: (sim: SimExchange) => Promise<A>): Promise<A> => {
  const sim = await startSimExchange(options)
  try {
    return await body(sim)
  } finally {
    await sim.close()
  }
}

/** A WebSocket client that buffers frames and lets a test wait for the next one matching a predicate. */
export class WsProbe {
  readonly socket: WebSocket
  readonly frames: Array<any> = []
  readonly #waiters: Array<{ readonly match: (frame: any) => boolean; readonly resolve: (frame: any) => void }> = []
  readonly opened: Promise<void>
  readonly closed: Promise<{ readonly code: number }>
  pings = 0

  constructor(url: string, options: WebSocket.ClientOptions = {}) {
    this.socket = new WebSocket(url, options)
    this.opened = new Promise((resolve, reject) => {
      this.socket.once("open", () => resolve())
      this.socket.once("error", reject)
    })
    this.closed = new Promise((resolve) => this.socket.once("close", (code) => resolve({ code })))
    this.socket.on("error", () => {})
    this.socket.on("ping", () => {
      this.pings++
      this.#deliver({ __ping: this.pings })
    })
    this.socket.on("message", (data) => this.#deliver(JSON.parse(String(data))))
  }

  static async open(url: string, options?: WebSocket.ClientOptions): Promise<WsProbe> {
    const probe = new WsProbe(url, options)
    await probe.opened
    return probe
  }

  #deliver(frame: any): void {
    const index = this.#waiters.findIndex((w) => w.match(frame))
    if (index >= 0) {
      const [waiter] = this.#waiters.splice(index, 1)
      waiter.resolve(frame)
    } else {
      this.frames.push(frame)
    }
  }

  /** The next frame (buffered or future) matching `match`; fails after `timeoutMs`. */
  next(match: (frame: any) => boolean = (f) => !("__ping" in f), timeoutMs = 5000): Promise<any> {
    const index = this.frames.findIndex(match)
    if (index >= 0) return Promise.resolve(this.frames.splice(index, 1)[0])
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("timed out waiting for a frame")), timeoutMs)
      this.#waiters.push({
        match,
        resolve: (frame) => {
          clearTimeout(timer)
          resolve(frame)
        }
      })
    })
  }

  send(message: unknown): void {
    this.socket.send(typeof message === "string" ? message : JSON.stringify(message))
  }

  close(): void {
    this.socket.terminate()
  }
}
