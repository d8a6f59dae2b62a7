/**
 * Fixed-point decimals with 8 fractional digits (Binance's asset precision), as bigint.
 * Filter checks such as `quantity % stepSize == 0` must be exact, which floats cannot promise.
 */

export type Fixed = bigint

export const DECIMALS = 8
export const ONE: Fixed = 10n ** BigInt(DECIMALS)
export const ZERO: Fixed = 0n

/** Binance's legal range for DECIMAL parameters (as quoted in its -1100 message). */
export const DECIMAL_PATTERN = "^([0-9]{1,20})(\\.[0-9]{1,20})?$"
const decimalRegex = new RegExp(DECIMAL_PATTERN)

export type ParsedDecimal =
  | { readonly _tag: "Ok"; readonly value: Fixed }
  | { readonly _tag: "Illegal" }
  | { readonly _tag: "TooPrecise" }

export const parse = (text: string): ParsedDecimal => {
  const match = decimalRegex.exec(text)
  if (match === null) return { _tag: "Illegal" }
  const fraction = (match[2] ?? "").slice(1)
  // Extra digits are tolerated only when they are zeros ("1.000000000" is still 1).
  if (fraction.length > DECIMALS && /[1-9]/.test(fraction.slice(DECIMALS))) return { _tag: "TooPrecise" }
  const digits = fraction.slice(0, DECIMALS).padEnd(DECIMALS, "0")
  return { _tag: "Ok", value: BigInt(match[1]) * ONE + BigInt(digits) }
}

/** Rounds half away from zero to 8 decimals. */
export const fromNumber = (n: number): Fixed => {
  if (!Number.isFinite(n)) throw new RangeError(`not a finite number: ${n}`)
  const negative = n < 0
  const text = Math.abs(n).toFixed(DECIMALS + 1)
  const [whole, fraction] = text.split(".")
  let value = BigInt(whole) * ONE + BigInt(fraction.slice(0, DECIMALS))
  if (Number(fraction[DECIMALS]) >= 5) value += 1n
  return negative ? -value : value
}

export const toNumber = (f: Fixed): number => Number(format(f))

/** Always 8 decimals, e.g. `"0.00100000"`, like Binance's REST and stream payloads. */
export const format = (f: Fixed): string => {
  const negative = f < 0n
  const abs = negative ? -f : f
  const whole = abs / ONE
  const fraction = (abs % ONE).toString().padStart(DECIMALS, "0")
  return `${negative ? "-" : ""}${whole}.${fraction}`
}

/** a × b, truncated to 8 decimals. */
export const mul = (a: Fixed, b: Fixed): Fixed => (a * b) / ONE

/** a ÷ b, truncated to 8 decimals. */
export const div = (a: Fixed, b: Fixed): Fixed => (a * ONE) / b

/** Largest multiple of `step` not above `a` (a step of 0 means no step rule). */
export const floorTo = (a: Fixed, step: Fixed): Fixed => (step === 0n ? a : (a / step) * step)

/** Nearest multiple of `step`, ties up. */
export const roundTo = (a: Fixed, step: Fixed): Fixed => (step === 0n ? a : ((a + step / 2n) / step) * step)

export const isMultipleOf = (a: Fixed, step: Fixed): boolean => step === 0n || a % step === 0n

export const min = (a: Fixed, b: Fixed): Fixed => (a < b ? a : b)
export const max = (a: Fixed, b: Fixed): Fixed => (a > b ? a : b)
