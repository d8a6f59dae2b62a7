/** Pure order preparation: deterministic client ids and exchange-filter rounding. */
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

const decimalsOf = (step: number): number => {
  if (step <= 0) return 8
  const text = step.toFixed(12).replace(/0+$/, "")
  const dot = text.indexOf(".")
  return dot === -1 ? 0 : text.length - dot - 1
}

/** Rounds down to a multiple of `step` and formats with the step's decimals (no exponent form). */
export const roundDownToStep = (value: number, step: number): string => {
  if (step <= 0) return value.toFixed(8)
  const decimals = decimalsOf(step)
  // a tiny epsilon so 0.3 / 0.1 = 2.9999999 still counts as 3 steps
  const steps = Math.floor(value / step + 1e-9)
  return (steps * step).toFixed(decimals)
}

export const roundToTick = (price: number, tick: number): string => {
  if (tick <= 0) return price.toFixed(8)
  return (Math.round(price / tick) * tick).toFixed(decimalsOf(tick))
}

export type Prepared =
  | { readonly _tag: "Ready"; readonly request: OrderRequest; readonly quantity: number }
  | { readonly _tag: "Refused"; readonly reason: string }

/**
 * A MARKET order for the approval, rounded to LOT_SIZE. Refused locally (not sent) when below the minimum
 * quantity or notional, or when the symbol is not trading. `price` is the latest known price (the candidate's).
 */
export const prepareMarketOrder = (approved: Approved, rules: SymbolRules, price: number): Prepared => {
  if (rules.status !== "TRADING") return { _tag: "Refused", reason: `${rules.symbol} is not trading (status ${rules.status})` }
  const quantityText = roundDownToStep(approved.qty, rules.stepSize)
  const quantity = Number(quantityText)
  if (quantity <= 0 || quantity < rules.minQty) {
    return { _tag: "Refused", reason: `quantity ${approved.qty} rounds to ${quantityText}, below LOT_SIZE minQty ${rules.minQty}` }
  }
  if (rules.maxQty > 0 && quantity > rules.maxQty) {
    return { _tag: "Refused", reason: `quantity ${quantityText} above LOT_SIZE maxQty ${rules.maxQty}` }
  }
  const notional = quantity * price
  if (rules.applyMinToMarket && notional < rules.minNotional) {
    return {
      _tag: "Refused",
      reason: `notional ${notional.toFixed(8)} below NOTIONAL minNotional ${rules.minNotional}`
    }
  }
  return {
    _tag: "Ready",
    quantity,
    request: {
      symbol: approved.candidate.symbol,
      side: approved.orderSide,
      type: "MARKET",
      quantity: quantityText,
      clientOrderId: clientOrderIdFor(approved.id)
    }
  }
}
