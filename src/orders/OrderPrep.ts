/**
 * Pure order preparation: deterministic client ids and exchange-filter rounding, in exact decimals.
 *
 * Binance's filters are decimals (LOT_SIZE stepSize "0.00001000"): a quantity is valid when
 * `(quantity − minQty) % stepSize == 0`, which floats cannot decide (0.3 / 0.1 = 2.9999999999999996). Every check here
 * is done in `BigDecimal`; a `number` input (the approved quantity, the candidate's price) is read as the shortest
 * decimal that prints as it (`0.1` is 0.1, not 0.1000000000000000055…), which is what a person who typed it meant.
 * The backtest calls `prepareMarketOrder` with the same inputs, so live and paper orders round alike.
 */
import { BigDecimal } from "effect"
import { createHash } from "node:crypto"
import type { Approved } from "../domain/Messages.ts"
import type { OrderRequest, SymbolRules } from "../exchange/Exchange.ts"

const CLIENT_ID = /^[.A-Z:/a-z0-9_-]{1,36}$/

/**
 * The order's `newClientOrderId` follows from the approved signal's id, so a retry or a restart sends the same id.
 * Binance allows 36 chars of `^[\.A-Z\:/a-z0-9_-]{1,36}$`; longer or foreign ids are hashed.
 */
export const clientOrderIdFor = (signalId: string): string => {
  const direct = `at-${signalId}`
  if (CLIENT_ID.test(direct)) return direct
  return `at-${createHash("sha256").update(signalId).digest("base64url").slice(0, 33)}`
}

const ZERO = BigDecimal.fromBigInt(0n)

/** A finite number as the decimal it prints as; non-finite → 0 (callers validate their inputs before). */
export const decimalOf = (n: number | BigDecimal.BigDecimal): BigDecimal.BigDecimal =>
  typeof n !== "number" ? n : Number.isFinite(n) ? BigDecimal.normalize(BigDecimal.fromNumberUnsafe(n)) : ZERO

/** Fixed-point text with exactly `scale` decimals (no exponent form), as Binance accepts quantities and prices. */
export const toFixedText = (d: BigDecimal.BigDecimal, scale: number): string => {
  const scaled = BigDecimal.scale(d, Math.max(0, scale))
  const negative = scaled.value < 0n
  const digits = (negative ? -scaled.value : scaled.value).toString().padStart(scaled.scale + 1, "0")
  const text = scaled.scale === 0 ? digits : `${digits.slice(0, -scaled.scale)}.${digits.slice(-scaled.scale)}`
  return negative ? `-${text}` : text
}

/** Decimals a step has once trailing zeros are dropped ("0.00001000" → 5). */
const decimalsOf = (step: BigDecimal.BigDecimal): number => Math.max(0, BigDecimal.normalize(step).scale)

/** Exact: the largest multiple of `step` not above `value` (value itself when step ≤ 0). */
export const floorToStep = (value: BigDecimal.BigDecimal, step: BigDecimal.BigDecimal): BigDecimal.BigDecimal => {
  if (!BigDecimal.isPositive(step)) return value
  const steps = BigDecimal.floor(BigDecimal.divideUnsafe(value, step), 0)
  return BigDecimal.multiply(steps, step)
}

/**
 * Rounds down to a multiple of `step` and formats with the step's decimals (no exponent form). Exact: 0.3 with step
 * 0.1 is "0.3". Without a step (≤ 0) the value is written with 8 decimals, truncated.
 */
export const roundDownToStep = (value: number | BigDecimal.BigDecimal, step: number | BigDecimal.BigDecimal): string => {
  const v = decimalOf(value)
  const s = decimalOf(step)
  if (!BigDecimal.isPositive(s)) return toFixedText(BigDecimal.truncate(v, 8), 8)
  return toFixedText(floorToStep(v, s), decimalsOf(s))
}

/** Rounds to the nearest multiple of `tick` (half away from zero), formatted with the tick's decimals. */
export const roundToTick = (price: number | BigDecimal.BigDecimal, tick: number | BigDecimal.BigDecimal): string => {
  const p = decimalOf(price)
  const t = decimalOf(tick)
  if (!BigDecimal.isPositive(t)) return toFixedText(BigDecimal.round(p, { scale: 8 }), 8)
  const ticks = BigDecimal.round(BigDecimal.divideUnsafe(p, t), { scale: 0, mode: "half-from-zero" })
  return toFixedText(BigDecimal.multiply(ticks, t), decimalsOf(t))
}

export type Prepared =
  | {
    readonly _tag: "Ready"
    readonly request: OrderRequest
    /** The rounded quantity as a number, for events on the bus. */
    readonly quantity: number
    /** The rounded quantity, exact: what is sent. */
    readonly quantityDecimal: BigDecimal.BigDecimal
  }
  | { readonly _tag: "Refused"; readonly reason: string }

const text = (d: BigDecimal.BigDecimal): string => BigDecimal.format(BigDecimal.normalize(d))

/** A quantity as the filters take it, whatever the price: rounded down to LOT_SIZE and within its bounds, or why not. */
type QuantityCheck =
  | { readonly _tag: "Ready"; readonly text: string; readonly decimal: BigDecimal.BigDecimal; readonly number: number }
  | { readonly _tag: "Refused"; readonly reason: string }

const checkQuantity = (qty: number, rules: SymbolRules): QuantityCheck => {
  const quantityText = roundDownToStep(qty, rules.stepSize)
  const quantity = BigDecimal.fromStringUnsafe(quantityText)
  if (!BigDecimal.isPositive(quantity) || BigDecimal.isLessThan(quantity, rules.minQty)) {
    return { _tag: "Refused", reason: `quantity ${qty} rounds to ${quantityText}, below LOT_SIZE minQty ${text(rules.minQty)}` }
  }
  if (BigDecimal.isPositive(rules.maxQty) && BigDecimal.isGreaterThan(quantity, rules.maxQty)) {
    return { _tag: "Refused", reason: `quantity ${quantityText} above LOT_SIZE maxQty ${text(rules.maxQty)}` }
  }
  return { _tag: "Ready", text: quantityText, decimal: quantity, number: BigDecimal.toNumberUnsafe(quantity) }
}

/**
 * Per rules (one object per symbol until the filters are reloaded): the quantities checked so far (a strategy sends
 * the same few again and again) and minNotional as a number. The exact decimal work of a check cost tens of µs on the
 * tick → order path, per order; bounded (cleared past 256 quantities).
 */
const memo = new WeakMap<SymbolRules, { readonly quantities: Map<number, QuantityCheck>; readonly minNotional: number }>()
const memoOf = (rules: SymbolRules) => {
  let m = memo.get(rules)
  if (m === undefined) {
    m = { quantities: new Map(), minNotional: BigDecimal.toNumberUnsafe(rules.minNotional) }
    memo.set(rules, m)
  }
  return m
}

/**
 * A MARKET order for the approval, rounded down to LOT_SIZE. Refused locally (not sent) when below the minimum
 * quantity or notional, above the maximum quantity, or when the symbol is not trading. `price` is the latest known
 * price (the candidate's). All decisions exact: the notional is compared in floats only when it is above the minimum
 * by far more than their rounding (a relative 1e-9 against errors of ~1e-15), else in decimals.
 */
export const prepareMarketOrder = (approved: Approved, rules: SymbolRules, price: number | BigDecimal.BigDecimal): Prepared => {
  if (rules.status !== "TRADING") return { _tag: "Refused", reason: `${rules.symbol} is not trading (status ${rules.status})` }
  const m = memoOf(rules)
  let check = m.quantities.get(approved.qty)
  if (check === undefined) {
    check = checkQuantity(approved.qty, rules)
    if (m.quantities.size >= 256) m.quantities.clear()
    m.quantities.set(approved.qty, check)
  }
  if (check._tag === "Refused") return check
  const clearlyAbove = typeof price === "number" && Number.isFinite(price) && check.number * price > m.minNotional * (1 + 1e-9)
  if (rules.applyMinToMarket && !clearlyAbove) {
    const notional = BigDecimal.multiply(check.decimal, decimalOf(price))
    if (BigDecimal.isLessThan(notional, rules.minNotional)) {
      return {
        _tag: "Refused",
        reason: `notional ${toFixedText(BigDecimal.truncate(notional, 8), 8)} below NOTIONAL minNotional ${text(rules.minNotional)}`
      }
    }
  }
  return {
    _tag: "Ready",
    quantity: check.number,
    quantityDecimal: check.decimal,
    request: {
      symbol: approved.candidate.symbol,
      side: approved.orderSide,
      type: "MARKET",
      quantity: check.text,
      clientOrderId: clientOrderIdFor(approved.id)
    }
  }
}

/** Rules from plain numbers (tests, paper trading): each read as the decimal it prints as. */
export const rulesFromNumbers = (r: {
  readonly symbol: string
  readonly status?: string
  readonly baseAsset: string
  readonly quoteAsset: string
  readonly tickSize?: number
  readonly minPrice?: number
  readonly maxPrice?: number
  readonly stepSize: number
  readonly minQty: number
  readonly maxQty?: number
  readonly minNotional: number
  readonly applyMinToMarket?: boolean
}): SymbolRules => ({
  symbol: r.symbol,
  status: r.status ?? "TRADING",
  baseAsset: r.baseAsset,
  quoteAsset: r.quoteAsset,
  tickSize: decimalOf(r.tickSize ?? 0),
  minPrice: decimalOf(r.minPrice ?? 0),
  maxPrice: decimalOf(r.maxPrice ?? 0),
  stepSize: decimalOf(r.stepSize),
  minQty: decimalOf(r.minQty),
  maxQty: decimalOf(r.maxQty ?? 0),
  minNotional: decimalOf(r.minNotional),
  applyMinToMarket: r.applyMinToMarket ?? true
})
