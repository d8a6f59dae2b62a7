/**
 * Paper execution: what the exchange would have done with an approval, under the live order rules.
 *
 * An approval goes through `prepareMarketOrder` (the order manager's own function: LOT_SIZE step rounding, minQty,
 * maxQty, NOTIONAL, symbol status) with the exchange filters in force that day. A refused order becomes the same
 * `OrderRejected` event live emits (code −1013, "not sent: …"); a prepared one fills as a MARKET taker order at the
 * first trade of its symbol at or after signal time + latency, at that trade's price moved against us by the
 * slippage, paying the taker fee in the quote asset. A BUY the account cannot pay for (quote balance) is rejected
 * as the exchange would (−2010). Fills are applied through the same position book (and its dust rule) as live.
 */
import type { Approved, OrderFilled } from "../domain/Messages.ts"
import type { OrderRejected as OrderRejectedSchema } from "../domain/Messages.ts"

type OrderRejected = typeof OrderRejectedSchema.Type
import type { SymbolRules } from "../exchange/Exchange.ts"
import { clientOrderIdFor, decimalOf, prepareMarketOrder } from "../orders/OrderPrep.ts"

export interface FeeModel {
  /** Fee rate paid by orders that take liquidity (MARKET orders: every paper order). 0.001 = 0.1 %. */
  readonly taker: number
  /** Fee rate for resting orders; reported, unused while the strategy only sends MARKET orders. */
  readonly maker: number
}

export interface PaperOptions {
  /** Taker fee rate on each fill's notional, charged in the quote asset (0.001 = 0.1 %, Binance's base rate). */
  readonly fee: number
  /** Maker fee rate (default: the taker rate). */
  readonly makerFee?: number
  /** Adverse price move per fill, in basis points: buys fill higher, sells lower. */
  readonly slippageBps: number
  /** Fill at the first trade at or after signal time + this (ms); 0: at the signal's own trade. */
  readonly latencyMs?: number
  /** Quote balance at the start (default 10,000). */
  readonly startingBalance?: number
  /** Exchange filters per symbol and time (default: none, i.e. nothing rounded or refused). */
  readonly rules?: RulesOf
}

export const DEFAULT_BALANCE = 10_000

export type RulesOf = (symbol: string, ts: number) => SymbolRules

const QUOTES = ["USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "EUR", "TRY", "BRL", "BTC", "ETH", "BNB"]
/** The quote asset a symbol is priced in (what fees are paid in, so the position book counts them as quote). */
export const quoteAssetOf = (symbol: string): string => QUOTES.find((q) => symbol.endsWith(q) && symbol !== q) ?? symbol.slice(-4)

/** Filters that round nothing and refuse nothing: what replay uses when it has neither a saved exchangeInfo nor flags. */
export const noFilters = (symbol: string): SymbolRules => ({
  symbol,
  status: "TRADING",
  baseAsset: symbol.slice(0, symbol.length - quoteAssetOf(symbol).length),
  quoteAsset: quoteAssetOf(symbol),
  tickSize: decimalOf(0),
  minPrice: decimalOf(0),
  maxPrice: decimalOf(0),
  stepSize: decimalOf(0),
  minQty: decimalOf(0),
  maxQty: decimalOf(0),
  minNotional: decimalOf(0),
  applyMinToMarket: false
})

/** Filters given on the command line, the same for every symbol. */
export const flagFilters = (f: { readonly stepSize: number; readonly minQty: number; readonly minNotional: number }): RulesOf => (symbol) => ({
  ...noFilters(symbol),
  stepSize: decimalOf(f.stepSize),
  minQty: decimalOf(f.minQty),
  minNotional: decimalOf(f.minNotional),
  applyMinToMarket: f.minNotional > 0
})

/** Why an order was not sent, as a short category for the report (the detail stays in the event). */
export const refusalCategory = (reason: string): string =>
  /minQty/.test(reason)
    ? "LOT_SIZE minQty"
    : /maxQty/.test(reason)
    ? "LOT_SIZE maxQty"
    : /NOTIONAL|notional/.test(reason)
    ? "NOTIONAL minNotional"
    : /not trading/.test(reason)
    ? "SymbolNotTrading"
    : "OrderRefused"

/** A MARKET fill of `qty` at `price` (before slippage), as the order manager would publish it. */
export const paperFill = (
  a: Approved,
  qty: number,
  price: number,
  ts: number,
  paper: Pick<PaperOptions, "fee" | "slippageBps">,
  orderId: number,
  tradeId?: number
): OrderFilled => {
  const slip = paper.slippageBps / 10_000
  const fillPrice = a.orderSide === "BUY" ? price * (1 + slip) : price * (1 - slip)
  const quoteQty = qty * fillPrice
  const commission = quoteQty * paper.fee
  const commissionAsset = quoteAssetOf(a.candidate.symbol)
  return {
    _tag: "OrderFilled",
    signalId: a.id,
    clientOrderId: clientOrderIdFor(a.id),
    symbol: a.candidate.symbol,
    side: a.orderSide,
    action: a.action,
    qty,
    ts,
    origin: a.origin,
    orderId,
    status: "FILLED",
    executedQty: qty,
    avgPrice: fillPrice,
    quoteQty,
    commission,
    commissionAsset,
    fills: [{ price: fillPrice, qty, commission, commissionAsset, ...(tradeId === undefined ? {} : { tradeId }) }]
  }
}

export const rejection = (a: Approved, ts: number, code: number, reason: string): OrderRejected => ({
  _tag: "OrderRejected",
  signalId: a.id,
  clientOrderId: clientOrderIdFor(a.id),
  symbol: a.candidate.symbol,
  side: a.orderSide,
  action: a.action,
  qty: a.qty,
  ts,
  origin: a.origin,
  code,
  reason
})

export type Submitted =
  | { readonly _tag: "Ready"; readonly approved: Approved; readonly qty: number; readonly due: number }
  | { readonly _tag: "Refused"; readonly event: OrderRejected; readonly category: string }

/** The live order preparation for an approval at `ts` (price: the candidate's, as live). */
export const submit = (a: Approved, rules: SymbolRules, ts: number, latencyMs: number): Submitted => {
  const prepared = prepareMarketOrder(a, rules, a.candidate.price)
  if (prepared._tag === "Refused") {
    return { _tag: "Refused", event: rejection(a, ts, -1013, `not sent: ${prepared.reason}`), category: refusalCategory(prepared.reason) }
  }
  return { _tag: "Ready", approved: a, qty: prepared.quantity, due: ts + latencyMs }
}
