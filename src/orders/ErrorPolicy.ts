/**
 * Binance error codes → what the order manager does. Anything not listed stops trading and alerts:
 * an unknown answer is never retried blindly.
 * Codes: binance-spot-api-docs errors.md.
 */
export type ErrorDecision =
  /** −1021: our clock is off; resync with GET /api/v3/time and retry once. */
  | "resync"
  /** Throttled or busy: back off and retry; the order's state is kept. */
  | "backoff"
  /** The request may have been executed: look the order up before anything else. */
  | "reconcile"
  /** The exchange refused this order: it does not exist; the signal is rejected, no retry. */
  | "reject"
  /** Something is wrong with the symbol: stop trading it. */
  | "haltSymbol"
  /** Credentials, permissions or an unknown failure: stop all trading and alert. */
  | "haltAll"

const REJECT_CODES = new Set([
  -1013, // filter failure (LOT_SIZE, NOTIONAL, PRICE_FILTER, …)
  -1100, -1101, -1102, -1103, -1104, -1105, -1106, // bad parameters
  -1111, -1112, -1114, -1115, -1116, -1117, -1118, -1119, -1120, // precision, tif, order type, side, …
  -1125, -1127, -1128, -1130, -1131,
  -2011 // cancel rejected
])

export const classifyApiError = (code: number, msg: string): ErrorDecision => {
  switch (code) {
    case -1021:
      return "resync"
    case -1003: // too many requests
    case -1008: // server busy
    case -1015: // too many new orders
      return "backoff"
    case -1000: // unknown error while processing: execution status unknown
    case -1001: // internal error; unable to process your request
    case -1006: // unexpected response from the message bus: execution status unknown
    case -1007: // timeout waiting for the backend: send status unknown
      return "reconcile"
    case -2010:
      // NEW_ORDER_REJECTED covers both "Duplicate order sent." (an open order with this id exists: find it)
      // and business rejections such as insufficient balance (no order exists).
      return /duplicate/i.test(msg) ? "reconcile" : "reject"
    case -1121: // invalid symbol
      return "haltSymbol"
    case -1002: // unauthorized
    case -1022: // signature invalid
    case -2014: // API-key format invalid
    case -2015: // invalid API-key, IP or permissions
      return "haltAll"
    default:
      return REJECT_CODES.has(code) ? "reject" : "haltAll"
  }
}
