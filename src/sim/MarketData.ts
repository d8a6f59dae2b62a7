/**
 * The simulator's market-data memory and faults: every public trade kept per symbol (bounded) for
 * `GET /api/v3/historicalTrades`, and the faults a market-data client must survive, switchable at run time.
 */
import type { PublicTrade } from "./Engine.ts"
import * as Fixed from "./Fixed.ts"
import { BinanceError, illegalChars, type Params } from "./Params.ts"

/** Faults of the trade streams and of historicalTrades. Every field is optional; absent = off. */
export interface MarketFaults {
  /** Cut every market-data socket (no close frame) at random intervals between min and max ms. */
  readonly cutEveryMs?: { readonly min: number; readonly max: number }
  /** Close each connection (close frame 1001) once it is this old: Binance does so after 24 hours. */
  readonly maxConnectionMs?: number
  /** Per trade frame, the probability of a malformed frame sent before it: not JSON, partial JSON or oversized. */
  readonly malformedRate?: number
  /** Per trade frame, the probability of a trade frame for a symbol the client did not subscribe to. */
  readonly unsubscribedRate?: number
  /** Per trade frame, the probability it is sent twice. */
  readonly duplicateRate?: number
  /** Per trade frame, the probability it is held back and sent after the next one (out of order). */
  readonly reorderRate?: number
  /** historicalTrades answers 503 (code -1008) to this many requests, then normally. */
  readonly historicalFailures?: number
  /** historicalTrades always answers 503. */
  readonly historicalDown?: boolean
  /** historicalTrades returns at most this many trades, whatever the limit asked. */
  readonly historicalMaxRows?: number
  /** historicalTrades answers 200 with rows that are not Binance's format. */
  readonly historicalMalformed?: boolean
  /** Every `every` ms, no frames and no pings for `forMs` ms (sockets left open). */
  readonly stallEveryMs?: { readonly every: number; readonly forMs: number }
}

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }
const durationMs = (text: string): number | undefined => {
  const m = DURATION.exec(text.trim())
  return m === null ? undefined : Number(m[1]) * UNIT_MS[m[2]]
}

export const MARKET_FAULTS_HELP =
  "comma-separated: cut=2s-5s, stall=30s/5s (every/for), lifetime=24h, malformed=0.01, unsubscribed=0.01, " +
  "duplicate=0.01, reorder=0.01, historical-down, historical-malformed, historical-fail=3, historical-max=100"

/** Parses `autotrader sim-exchange --faults …` ({@link MARKET_FAULTS_HELP}); an error names the bad part and what is allowed. */
export const parseMarketFaults = (spec: string): { readonly faults: MarketFaults } | { readonly error: string } => {
  const faults: { -readonly [K in keyof MarketFaults]: MarketFaults[K] } = {}
  for (const part of spec.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const [name, value = ""] = part.split("=", 2)
    const bad = (allowed: string) => ({ error: `--faults: "${part}" is not valid; ${name} takes ${allowed} (${MARKET_FAULTS_HELP})` })
    const rate = () => {
      const n = Number(value)
      return value !== "" && Number.isFinite(n) && n >= 0 && n <= 1 ? n : undefined
    }
    const count = () => (/^\d+$/.test(value) ? Number(value) : undefined)
    switch (name) {
      case "cut": {
        const [lo, hi = lo] = value.split("-")
        const min = durationMs(lo ?? "")
        const max = durationMs(hi ?? "")
        if (min === undefined || max === undefined || min <= 0 || max < min) return bad("a duration range like 2s-5s")
        faults.cutEveryMs = { min, max }
        break
      }
      case "stall": {
        const [every, forText] = value.split("/")
        const e = durationMs(every ?? "")
        const f = durationMs(forText ?? "")
        if (e === undefined || f === undefined || e <= 0 || f <= 0) return bad("every/for durations like 30s/5s")
        faults.stallEveryMs = { every: e, forMs: f }
        break
      }
      case "lifetime": {
        const ms = durationMs(value)
        if (ms === undefined || ms <= 0) return bad("a duration like 24h")
        faults.maxConnectionMs = ms
        break
      }
      case "malformed":
      case "unsubscribed":
      case "duplicate":
      case "reorder": {
        const r = rate()
        if (r === undefined) return bad("a probability between 0 and 1")
        faults[`${name}Rate`] = r
        break
      }
      case "historical-down":
        faults.historicalDown = true
        break
      case "historical-malformed":
        faults.historicalMalformed = true
        break
      case "historical-fail": {
        const n = count()
        if (n === undefined) return bad("a count of failing requests")
        faults.historicalFailures = n
        break
      }
      case "historical-max": {
        const n = count()
        if (n === undefined || n < 1) return bad("a number of rows ≥ 1")
        faults.historicalMaxRows = n
        break
      }
      default:
        return { error: `--faults: unknown fault "${name}"; allowed: ${MARKET_FAULTS_HELP}` }
    }
  }
  return { faults }
}

export const HISTORICAL_TRADES_MAX = 1000
const LONG_RANGE = "^[0-9]{1,20}$"

/** Every public trade per symbol, oldest first, the oldest forgotten past `limit` (as Binance's database is finite). */
export class TradeHistory {
  readonly #trades = new Map<string, Array<PublicTrade>>()
  readonly #limit: number

  constructor(limit: number) {
    this.#limit = limit
  }

  record(trade: PublicTrade): void {
    let list = this.#trades.get(trade.symbol)
    if (list === undefined) {
      list = []
      this.#trades.set(trade.symbol, list)
    }
    list.push(trade)
    // trim in chunks so recording stays O(1) amortised
    if (list.length > this.#limit + Math.max(1, this.#limit >> 3)) list.splice(0, list.length - this.#limit)
  }

  /** Forgets every trade of `symbol` below `tradeId` (tests: "the exchange no longer has them"). */
  forgetBelow(symbol: string, tradeId: number): void {
    const list = this.#trades.get(symbol)
    if (list === undefined) return
    const keep = list.findIndex((t) => t.tradeId >= tradeId)
    list.splice(0, keep === -1 ? list.length : keep)
  }

  /** Up to `limit` trades from id `fromId` on; without `fromId`, the most recent `limit`. */
  query(symbol: string, fromId: number | undefined, limit: number): ReadonlyArray<PublicTrade> {
    const list = this.#trades.get(symbol) ?? []
    if (fromId === undefined) return list.slice(Math.max(0, list.length - limit))
    if (list.length === 0) return []
    // ids are consecutive within the list
    const start = Math.max(0, fromId - list[0].tradeId)
    return list.slice(start, start + limit)
  }
}

/** One row as Binance sends it (field order included). */
export const historicalTradeRow = (trade: PublicTrade) => ({
  id: trade.tradeId,
  price: Fixed.format(trade.price),
  qty: Fixed.format(trade.qty),
  quoteQty: Fixed.format(Fixed.mul(trade.price, trade.qty)),
  time: trade.time,
  isBuyerMaker: trade.buyerIsMaker,
  isBestMatch: true
})

const unavailable = (): BinanceError =>
  new BinanceError(503, -1008, "Server is currently overloaded with other requests. Please try again in a few minutes.")

/**
 * `GET /api/v3/historicalTrades`: `symbol` (mandatory), `limit` (default 500, capped at 1000), `fromId` (optional;
 * without it the most recent trades). Security type NONE today (it was MARKET_DATA: API key header only, no signature).
 * `faults` is read and updated (the failure count) per request.
 */
export const historicalTrades = (
  history: TradeHistory,
  params: Params,
  symbol: string,
  faults: { current: MarketFaults }
): unknown => {
  const f = faults.current
  if (f.historicalDown === true) throw unavailable()
  if (f.historicalMalformed === true) return [{ id: "one", price: 1, qty: null }]
  if (f.historicalFailures !== undefined && f.historicalFailures > 0) {
    faults.current = { ...f, historicalFailures: f.historicalFailures - 1 }
    throw unavailable()
  }
  const limitText = params.get("limit")
  let limit = 500
  if (limitText !== undefined) {
    if (!/^[0-9]{1,20}$/.test(limitText)) throw illegalChars("limit", LONG_RANGE)
    // Spot answers at most 1000 whatever was asked (the futures APIs refuse more; spot caps).
    limit = Math.max(1, Math.min(HISTORICAL_TRADES_MAX, Number(limitText)))
  }
  const fromIdText = params.get("fromId")
  let fromId: number | undefined
  if (fromIdText !== undefined) {
    if (!/^[0-9]{1,20}$/.test(fromIdText)) throw illegalChars("fromId", LONG_RANGE)
    fromId = Number(fromIdText)
  }
  const rows = Math.min(limit, f.historicalMaxRows ?? limit)
  return history.query(symbol, fromId, rows).map(historicalTradeRow)
}
