/** Binance spot wire formats, decoded once at the boundary. Numbers arrive as decimal strings. */
import { Exit, Schema } from "effect"
import type { Tick } from "../domain/Messages.ts"

export const TradePayload = Schema.Struct({
  e: Schema.Literal("trade"),
  E: Schema.Finite,
  s: Schema.String,
  t: Schema.Number,
  p: Schema.String,
  q: Schema.String,
  T: Schema.Finite,
  m: Schema.Boolean
})
export type TradePayload = typeof TradePayload.Type

const CombinedFrame = Schema.Struct({ stream: Schema.String, data: Schema.Unknown })
const ControlReply = Schema.Struct({ id: Schema.Unknown, result: Schema.Unknown })

const decodeJson = Schema.decodeUnknownExit(Schema.fromJsonString(Schema.Unknown))
const decodeTrade = Schema.decodeUnknownExit(TradePayload)
const isCombined = Schema.is(CombinedFrame)
const isControlReply = Schema.is(ControlReply)

/** Why a frame was refused: the `reason` label of its dead letter. */
export type InvalidReason = "not_json" | "schema" | "bad_value" | "oversized"

export type FrameResult =
  | { readonly _tag: "Tick"; readonly tick: Tick }
  | { readonly _tag: "Ignored" }
  | { readonly _tag: "Invalid"; readonly reason: InvalidReason; readonly error: string; readonly raw: string }

/** A Binance trade frame is ~200 bytes; anything this long is not one, and is refused before parsing. */
export const MAX_FRAME_CHARS = 65_536

const SYMBOL = /^[A-Z0-9]{2,20}$/

const positive = (s: string): number | undefined => {
  const n = Number(s)
  return Number.isFinite(n) && n > 0 && s.trim() !== "" ? n : undefined
}

/** Decodes one WebSocket text frame (raw or combined stream) into a Tick. Subscription replies are ignored. */
export const decodeTradeFrame = (frame: string, receivedAt: number): FrameResult =>
  (frame.length <= MAX_FRAME_CHARS ? fastTradeFrame(frame, receivedAt) : undefined) ?? decodeTradeFrameBySchema(frame, receivedAt)

/**
 * The Schema path, for every frame: what `decodeTradeFrame` falls back to whenever its fast path is not sure, so
 * refusals (reasons, messages, dead letters) always come from here.
 */
export const decodeTradeFrameBySchema = (frame: string, receivedAt: number): FrameResult => {
  if (frame.length > MAX_FRAME_CHARS) {
    return { _tag: "Invalid", reason: "oversized", error: `frame of ${frame.length} chars (at most ${MAX_FRAME_CHARS})`, raw: frame }
  }
  const json = decodeJson(frame)
  if (Exit.isFailure(json)) return { _tag: "Invalid", reason: "not_json", error: "not JSON", raw: frame }
  let payload: unknown = json.value
  if (isCombined(payload)) payload = payload.data
  else if (isControlReply(payload)) return { _tag: "Ignored" }
  const trade = decodeTrade(payload)
  if (Exit.isFailure(trade)) return { _tag: "Invalid", reason: "schema", error: String(trade.cause), raw: frame }
  return tradeToTick(trade.value, frame, receivedAt)
}

type TradeFields = Pick<TradePayload, "s" | "t" | "p" | "q" | "T" | "m">

/** The value checks after the shape is known (both paths): the Tick, or why its values are not a trade. */
const tradeToTick = (t: TradeFields, frame: string, receivedAt: number): FrameResult => {
  const price = positive(t.p)
  const size = Number(t.q)
  if (price === undefined || !Number.isFinite(size) || size < 0 || t.q.trim() === "") {
    return { _tag: "Invalid", reason: "bad_value", error: `bad price or quantity: p=${t.p} q=${t.q}`, raw: frame }
  }
  if (!Number.isSafeInteger(t.t) || t.t < 0) return { _tag: "Invalid", reason: "bad_value", error: `bad trade id ${t.t}`, raw: frame }
  if (!SYMBOL.test(t.s)) return { _tag: "Invalid", reason: "bad_value", error: `bad symbol ${JSON.stringify(t.s.slice(0, 40))}`, raw: frame }
  return {
    _tag: "Tick",
    tick: {
      symbol: t.s,
      price,
      size,
      // m: the buyer is the market maker, so the aggressor (taker) sold
      side: t.m ? "SELL" : "BUY",
      tradeId: t.t,
      ts: t.T,
      receivedAt
    }
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v)

/**
 * The fast path (2–3× the Schema path's rate): JSON.parse and the shape of a trade frame checked by hand — exactly the
 * fields and types `TradePayload` requires. Undefined for anything else (not JSON, a control reply, a field missing
 * or of another type, a `stream` that is not a string): the Schema path then decides, as it always did.
 */
export const fastTradeFrame = (frame: string, receivedAt: number): FrameResult | undefined => {
  let json: unknown
  try {
    json = JSON.parse(frame)
  } catch {
    return undefined
  }
  if (!isRecord(json)) return undefined
  let t: unknown = json
  if (typeof json.stream === "string") t = json.data // a combined-stream frame
  else if ("stream" in json || ("id" in json && "result" in json)) return undefined
  if (!isRecord(t)) return undefined
  const { e, E, s, t: id, p, q, T, m } = t
  if (
    e !== "trade" || typeof E !== "number" || !Number.isFinite(E) || typeof s !== "string" || typeof id !== "number" ||
    typeof p !== "string" || typeof q !== "string" || typeof T !== "number" || !Number.isFinite(T) || typeof m !== "boolean"
  ) return undefined
  return tradeToTick({ s, t: id, p, q, T, m }, frame, receivedAt)
}

/** `wss://stream.binance.com:9443` + symbols → the combined-stream URL Binance documents. */
export const combinedStreamUrl = (base: string, symbols: ReadonlyArray<string>): string => {
  const streams = symbols.map((s) => `${s.toLowerCase()}@trade`).join("/")
  return `${base.replace(/\/+$/, "")}/stream?streams=${streams}`
}

/** One row of `GET /api/v3/historicalTrades` (Binance's field names and order). */
export const HistoricalTradeWire = Schema.Struct({
  id: Schema.Number,
  price: Schema.String,
  qty: Schema.String,
  quoteQty: Schema.String,
  time: Schema.Finite,
  isBuyerMaker: Schema.Boolean,
  isBestMatch: Schema.Boolean
})
export type HistoricalTradeWire = typeof HistoricalTradeWire.Type
export const HistoricalTradesWire = Schema.Array(HistoricalTradeWire)

/**
 * historicalTrades rows → Ticks, the same normalisation as the trade stream. Fails (with the reason) on the first
 * row that is not a valid trade, or when the rows are not strictly increasing by id: a page is used whole or not at all.
 */
export const historicalTicks = (
  symbol: string,
  rows: ReadonlyArray<HistoricalTradeWire>,
  receivedAt: number
): { readonly _tag: "Ticks"; readonly ticks: ReadonlyArray<Tick> } | { readonly _tag: "Invalid"; readonly error: string } => {
  const ticks: Array<Tick> = []
  let previous = -1
  for (const row of rows) {
    const price = positive(row.price)
    const size = Number(row.qty)
    if (price === undefined || !Number.isFinite(size) || size < 0 || row.qty.trim() === "") {
      return { _tag: "Invalid", error: `trade ${row.id}: bad price or quantity: price=${row.price} qty=${row.qty}` }
    }
    if (!Number.isSafeInteger(row.id) || row.id < 0) return { _tag: "Invalid", error: `bad trade id ${row.id}` }
    if (row.id <= previous) return { _tag: "Invalid", error: `trade ids not increasing: ${previous} then ${row.id}` }
    previous = row.id
    ticks.push({ symbol, price, size, side: row.isBuyerMaker ? "SELL" : "BUY", tradeId: row.id, ts: row.time, receivedAt })
  }
  return { _tag: "Ticks", ticks }
}

export const ApiErrorBody = Schema.Struct({ code: Schema.Number, msg: Schema.String })

/**
 * Binance's decimal strings ("0.00100000", "27341.5") decoded exactly, never through a float: LOT_SIZE and NOTIONAL
 * checks, executed quantities and quote amounts stay exact. Anything that is not a plain decimal fails the decode.
 */
export const Decimal = Schema.String.check(Schema.isPattern(/^-?\d+(\.\d+)?$/)).pipe(Schema.decodeTo(Schema.BigDecimalFromString))

export const OrderFillWire = Schema.Struct({
  price: Decimal,
  qty: Decimal,
  commission: Decimal,
  commissionAsset: Schema.String,
  tradeId: Schema.optional(Schema.Number)
})

/** FULL / RESULT / ACK order responses and GET /api/v3/order share these fields (ACK has only the ids). */
export const OrderWire = Schema.Struct({
  symbol: Schema.String,
  orderId: Schema.Number,
  clientOrderId: Schema.String,
  transactTime: Schema.optional(Schema.Number),
  time: Schema.optional(Schema.Number),
  price: Schema.optional(Decimal),
  origQty: Schema.optional(Decimal),
  executedQty: Schema.optional(Decimal),
  cummulativeQuoteQty: Schema.optional(Decimal),
  status: Schema.optional(Schema.String),
  type: Schema.optional(Schema.String),
  side: Schema.optional(Schema.String),
  fills: Schema.optional(Schema.Array(OrderFillWire))
})
export type OrderWire = typeof OrderWire.Type

export const ServerTimeWire = Schema.Struct({ serverTime: Schema.Number })

const FilterWire = Schema.Record(Schema.String, Schema.Unknown)
export const ExchangeInfoWire = Schema.Struct({
  symbols: Schema.Array(
    Schema.Struct({
      symbol: Schema.String,
      status: Schema.String,
      baseAsset: Schema.String,
      quoteAsset: Schema.String,
      filters: Schema.Array(FilterWire)
    })
  )
})
export type ExchangeInfoWire = typeof ExchangeInfoWire.Type

export const MyTradeWire = Schema.Struct({
  id: Schema.Number,
  orderId: Schema.Number,
  price: Decimal,
  qty: Decimal,
  commission: Decimal,
  commissionAsset: Schema.String
})
export const MyTradesWire = Schema.Array(MyTradeWire)
