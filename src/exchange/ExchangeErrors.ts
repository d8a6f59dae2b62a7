/** What can go wrong talking to the exchange. Each is a decision point in the order manager and ingest. */
import { Schema } from "effect"

/** Binance answered with `{"code":…,"msg":…}`: the request was processed and refused. */
export class ExchangeApiError extends Schema.TaggedError<ExchangeApiError>()("ExchangeApiError", {
  operation: Schema.String,
  httpStatus: Schema.Number,
  code: Schema.Number,
  msg: Schema.String
}) {}

/** 429 (rate limit) or 418 (IP banned): wait `retryAfterMs` before any further request. */
export class ExchangeRateLimited extends Schema.TaggedError<ExchangeRateLimited>()("ExchangeRateLimited", {
  operation: Schema.String,
  httpStatus: Schema.Number,
  retryAfterMs: Schema.Number,
  msg: Schema.String
}) {}

/**
 * No answer we can trust: timeout, dropped connection, 5xx. For an order this means the outcome is UNKNOWN:
 * the order may exist and must be looked up before any resend.
 */
export class ExchangeUnavailable extends Schema.TaggedError<ExchangeUnavailable>()("ExchangeUnavailable", {
  operation: Schema.String,
  reason: Schema.String,
  httpStatus: Schema.optional(Schema.Number),
  /** true when the request provably never left (connection refused, host not resolved): the outcome is known, nothing happened. */
  notSent: Schema.optional(Schema.Boolean)
}) {}

/** The exchange answered with something that is not its documented format. Outcome unknown for orders. */
export class ExchangeDecodeError extends Schema.TaggedError<ExchangeDecodeError>()("ExchangeDecodeError", {
  operation: Schema.String,
  raw: Schema.String,
  message: Schema.String
}) {}

/** The market-data socket closed, failed or went silent. Decision: reconnect on a Schedule. */
export class MarketStreamError extends Schema.TaggedError<MarketStreamError>()("MarketStreamError", {
  url: Schema.String,
  reason: Schema.String
}) {}

export type ExchangeError = ExchangeApiError | ExchangeRateLimited | ExchangeUnavailable | ExchangeDecodeError
