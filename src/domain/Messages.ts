/**
 * Every message that crosses a stage boundary. Each carries an `Origin`: the id of the
 * tick that started the chain and that tick's receive time, so any stage can measure
 * tick→here latency and any order can be traced back to its tick.
 */
import { Schema } from "effect"

const PositiveFinite = Schema.Finite.check(Schema.isGreaterThan(0))
const NonNegativeFinite = Schema.Finite.check(Schema.isGreaterThanOrEqualTo(0))
const EpochMillis = Schema.Finite

export const Symbol = Schema.String.check(Schema.isPattern(/^[A-Z0-9]{2,20}$/))

/** Where a message came from: the tick id (`SYMBOL:tradeId`) and its receive time (epoch ms, Clock). */
export const Origin = Schema.Struct({
  tickId: Schema.String,
  receivedAt: EpochMillis
})
export type Origin = typeof Origin.Type

/** A normalized trade. `side` is the taker's side (Binance `m: true` means the buyer was the maker → taker SELL). */
export const Tick = Schema.Struct({
  symbol: Symbol,
  price: PositiveFinite,
  size: NonNegativeFinite,
  side: Schema.Literals(["BUY", "SELL"]),
  tradeId: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  ts: EpochMillis,
  receivedAt: EpochMillis
})
export type Tick = typeof Tick.Type

const SYMBOL = /^[A-Z0-9]{2,20}$/
const finite = (n: unknown): n is number => typeof n === "number" && Number.isFinite(n)

/** The checks of `Tick`, by hand: the fields, or undefined when any one is not what the schema requires. */
const tickOf = (v: unknown): Tick | undefined => {
  if (typeof v !== "object" || v === null) return undefined
  const { symbol, price, size, side, tradeId, ts, receivedAt } = v as Record<string, unknown>
  if (typeof symbol !== "string" || !SYMBOL.test(symbol)) return undefined
  if (!finite(price) || !(price > 0) || !finite(size) || !(size >= 0) || (side !== "BUY" && side !== "SELL")) return undefined
  if (typeof tradeId !== "number" || !Number.isSafeInteger(tradeId) || !(tradeId >= 0) || !finite(ts) || !finite(receivedAt)) return undefined
  return { symbol, price, size, side, tradeId, ts, receivedAt }
}

/**
 * market.raw's JSON without the Schema interpreter (every tick is encoded once by ingest and decoded by each
 * consumer: through the schema that was ~5 µs of a tick's ~40 µs of client CPU in each). Same text as
 * `JSON.stringify(Schema.encodeSync(Tick)(t))` (fields in the schema's order, numbers as JSON writes them; a valid
 * symbol needs no escaping) and the same value as the schema's decode; anything the checks refuse goes to the schema.
 */
export const tickJson = {
  encode: (t: Tick): string | undefined => {
    const v = tickOf(t)
    return v === undefined
      ? undefined
      : `{"symbol":"${v.symbol}","price":${v.price},"size":${v.size},"side":"${v.side}","tradeId":${v.tradeId},"ts":${v.ts},"receivedAt":${v.receivedAt}}`
  },
  decode: tickOf
}

export const tickId = (tick: Pick<Tick, "symbol" | "tradeId">): string => `${tick.symbol}:${tick.tradeId}`
export const originOf = (tick: Tick): Origin => ({ tickId: tickId(tick), receivedAt: tick.receivedAt })

export const SignalSide = Schema.Literals(["LONG", "SHORT"])
export type SignalSide = typeof SignalSide.Type

export const Candidate = Schema.Struct({
  /** Deterministic: `<SYMBOL>-<tradeId>-<L|S>`, so a replay or a restart yields the same id. */
  id: Schema.String,
  symbol: Symbol,
  side: SignalSide,
  price: PositiveFinite,
  ma10: Schema.Finite,
  ma30: Schema.Finite,
  delta: Schema.Finite,
  tickTradeId: Schema.Int,
  ts: EpochMillis,
  origin: Origin,
  /** When the signal worker published it (Clock, epoch ms): the risk gate's candidate → decision latency. */
  emittedAt: Schema.optional(EpochMillis),
  /** P(price up over the model's horizon) when a model (SIGNAL_MODEL) scored the candidate; absent without one. */
  probability: Schema.optional(Schema.Finite.check(Schema.isBetween({ minimum: 0, maximum: 1 })))
})
export type Candidate = typeof Candidate.Type

export const candidateId = (symbol: string, tradeId: number, side: SignalSide): string =>
  `${symbol}-${tradeId}-${side === "LONG" ? "L" : "S"}`

/** LONG opens a position (BUY), SHORT closes an open long (SELL): spot, long-only. */
export const Action = Schema.Literals(["OPEN", "CLOSE"])
export type Action = typeof Action.Type

export const Approved = Schema.TaggedStruct("Approved", {
  /** Same as the candidate's id; the order's clientOrderId derives from it. */
  id: Schema.String,
  candidate: Candidate,
  action: Action,
  orderSide: Schema.Literals(["BUY", "SELL"]),
  qty: PositiveFinite,
  ts: EpochMillis,
  origin: Origin
})
export type Approved = typeof Approved.Type

export const RejectReason = Schema.Literals([
  "PositionOpen",
  "PositionPending",
  "NoPosition",
  "TradesPerMinute",
  "TradesPerHour",
  "MaxPosition",
  "Paused",
  "SymbolHalted"
])
export type RejectReason = typeof RejectReason.Type

export const Rejected = Schema.TaggedStruct("Rejected", {
  id: Schema.String,
  candidate: Candidate,
  reason: RejectReason,
  detail: Schema.String,
  ts: EpochMillis,
  origin: Origin
})
export type Rejected = typeof Rejected.Type

export const OrderSide = Schema.Literals(["BUY", "SELL"])
export type OrderSide = typeof OrderSide.Type

const OrderRef = {
  /** The approved signal this order executes. */
  signalId: Schema.String,
  clientOrderId: Schema.String,
  symbol: Symbol,
  side: OrderSide,
  /** OPEN buys into a position; CLOSE sells all of it (what rounding leaves behind is dust, not a position). */
  action: Action,
  qty: Schema.Finite,
  ts: EpochMillis,
  origin: Origin
}

export const Fill = Schema.Struct({
  price: Schema.Finite,
  qty: Schema.Finite,
  commission: Schema.Finite,
  commissionAsset: Schema.String,
  tradeId: Schema.optional(Schema.Int)
})
export type Fill = typeof Fill.Type

/**
 * Fields of a signed placement request, made durable BEFORE it is sent: `signedAt` is the request's `timestamp`
 * parameter (exchange-clock estimate, ms) and `recvWindowMs` its window. The exchange executes the request only if it
 * arrives before `signedAt + recvWindowMs` (exchange clock), so an order that is not found is resendable only after
 * the LATEST attempt's window has passed. Optional for events written before these fields existed (then `ts` is used).
 */
const Signed = {
  signedAt: Schema.optional(EpochMillis),
  recvWindowMs: Schema.optional(Schema.Finite)
}

/** The order was about to be sent (its first signed attempt). Written before the REST call: a restart sees it in flight. */
export const OrderSubmitted = Schema.TaggedStruct("OrderSubmitted", { ...OrderRef, ...Signed })
/**
 * A further signed placement request for the same client order id (retry after 429/418/−1021, or a resend once the
 * exchange said −2013 after the previous window): written before it is sent, like `OrderSubmitted`. `attempt` is 2, 3, …
 */
export const OrderAttempt = Schema.TaggedStruct("OrderAttempt", {
  ...OrderRef,
  ...Signed,
  attempt: Schema.Int
})
/** The exchange accepted the order (e.g. a LIMIT resting on the book). */
export const OrderAccepted = Schema.TaggedStruct("OrderAccepted", {
  ...OrderRef,
  orderId: Schema.Int,
  status: Schema.String
})
export const OrderFilled = Schema.TaggedStruct("OrderFilled", {
  ...OrderRef,
  orderId: Schema.Int,
  status: Schema.String,
  executedQty: Schema.Finite,
  avgPrice: Schema.Finite,
  quoteQty: Schema.Finite,
  commission: Schema.Finite,
  commissionAsset: Schema.String,
  fills: Schema.Array(Fill)
})
/** The exchange (or a local filter) refused the order: it does not exist. */
export const OrderRejected = Schema.TaggedStruct("OrderRejected", {
  ...OrderRef,
  code: Schema.Int,
  reason: Schema.String,
  /** false when no request for this order ever reached the exchange (refused locally): no trade cap is used up. */
  reachedExchange: Schema.optional(Schema.Boolean)
})
/** The outcome is unknown (timeout, dropped connection, 5xx): the order may exist; it stays in flight. */
export const OrderUncertain = Schema.TaggedStruct("OrderUncertain", {
  ...OrderRef,
  reason: Schema.String
})
/** The order could not be placed and will not be retried (e.g. trading stopped for the symbol). */
export const OrderFailed = Schema.TaggedStruct("OrderFailed", {
  ...OrderRef,
  code: Schema.Int,
  reason: Schema.String,
  /** false when no request for this order ever reached the exchange (halted, connection refused): no trade cap is used up. */
  reachedExchange: Schema.optional(Schema.Boolean)
})

export const OrderEvent = Schema.Union([
  OrderSubmitted,
  OrderAttempt,
  OrderAccepted,
  OrderFilled,
  OrderRejected,
  OrderUncertain,
  OrderFailed
])
export type OrderEvent = typeof OrderEvent.Type
export type OrderFilled = typeof OrderFilled.Type

/** Operator switch (Telegram /pause, /resume); travels on the bus so it works across services. */
export const Control = Schema.Struct({
  command: Schema.Literals(["pause", "resume"]),
  by: Schema.String,
  ts: EpochMillis,
  /** Only this symbol (e.g. the order manager pausing a symbol whose order hit a bound); absent = all symbols. */
  symbol: Schema.optional(Symbol)
})
export type Control = typeof Control.Type

/** A stage-level failure worth telling an operator about. */
export const Alert = Schema.Struct({
  source: Schema.String,
  level: Schema.Literals(["warning", "error"]),
  message: Schema.String,
  ts: EpochMillis,
  origin: Schema.optional(Origin)
})
export type Alert = typeof Alert.Type

/**
 * A message that could not be decoded, with the raw input attached. `stage` is who failed to decode it (`ingest`,
 * a consumer group, `exchange.rest`), `reason` a short label for counting (`not_json`, `schema`, `bad_value`,
 * `oversized`, …) and `error` the decoder's full message. `raw` is cut at `DEAD_LETTER_RAW_MAX` characters;
 * `rawLength` is the length of the whole input.
 */
export const DeadLetter = Schema.Struct({
  stage: Schema.String,
  reason: Schema.String,
  /** Where the input came from: a bus topic, `exchange.ws`, or `exchange.rest:<operation>`. */
  topic: Schema.String,
  key: Schema.String,
  raw: Schema.String,
  rawLength: Schema.optional(Schema.Int),
  error: Schema.String,
  ts: EpochMillis
})
export type DeadLetter = typeof DeadLetter.Type

export const DEAD_LETTER_RAW_MAX = 65_536

/**
 * Trade ids `firstMissing`..`lastMissing` (inclusive) of `symbol` will never be on `market.raw`: the exchange no
 * longer had them, backfill kept failing, or it ran out of time. Published on `market.gaps`.
 */
export const MarketGap = Schema.Struct({
  symbol: Symbol,
  firstMissing: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  lastMissing: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)),
  reason: Schema.String,
  ts: EpochMillis
})
export type MarketGap = typeof MarketGap.Type
