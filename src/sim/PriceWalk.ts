/**
 * The simulated market: a seeded geometric random walk per symbol. Pure given its generator, so the
 * same seed replays the same prices, quantities and maker flags for every symbol, independent of the
 * other symbols and of wall-clock time.
 */
import * as Fixed from "./Fixed.ts"

/** mulberry32: a tiny 32-bit PRNG with good statistical quality for simulation. Returns floats in [0, 1). */
export const mulberry32 = (seed: number): (() => number) => {
  let state = seed >>> 0
  return () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Per-symbol seed: FNV-1a of the symbol mixed with the global seed, so symbols walk independently. */
export const symbolSeed = (seed: number, symbol: string): number => {
  let hash = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < symbol.length; i++) {
    hash ^= symbol.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193) >>> 0
  }
  return hash >>> 0
}

export interface WalkStep {
  readonly price: Fixed.Fixed
  readonly qty: Fixed.Fixed
  readonly buyerIsMaker: boolean
}

export interface WalkParams {
  readonly tickSize: Fixed.Fixed
  readonly stepSize: Fixed.Fixed
  /** Standard deviation of the log return per trade. */
  readonly volatility: number
}

/** Standard normal from two uniforms (Box–Muller). */
const gaussian = (random: () => number): number => {
  const u1 = Math.max(random(), 1e-12)
  const u2 = random()
  return Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2)
}

/** One trade: every call consumes exactly four draws, which keeps sequences aligned across runs. */
export const step = (random: () => number, lastPrice: number, params: WalkParams): { readonly next: number; readonly trade: WalkStep } => {
  const next = lastPrice * Math.exp(params.volatility * gaussian(random))
  const tick = Fixed.toNumber(params.tickSize)
  const price = Fixed.max(Fixed.roundTo(Fixed.fromNumber(next), params.tickSize), params.tickSize)
  // Trade sizes: mostly small, occasionally large (cubed uniform), in whole steps.
  const lots = 1 + Math.floor(random() ** 3 * 2000)
  const qty = params.stepSize * BigInt(lots)
  const buyerIsMaker = random() < 0.5
  return { next: Math.max(next, tick), trade: { price, qty, buyerIsMaker } }
}

export interface PriceWalk {
  readonly next: () => WalkStep
  readonly current: () => number
  readonly reset: (price: number) => void
  /** One uniform draw from this symbol's generator (used for sizes the caller did not give). */
  readonly draw: () => number
}

export const makePriceWalk = (seed: number, symbol: string, startPrice: number, params: WalkParams): PriceWalk => {
  const random = mulberry32(symbolSeed(seed, symbol))
  let last = startPrice
  return {
    next: () => {
      const { next, trade } = step(random, last, params)
      last = next
      return trade
    },
    current: () => last,
    reset: (price) => {
      last = price
    },
    draw: random
  }
}

/** The first `n` trade prices of a symbol's walk: what a seed promises to reproduce. */
export const firstPrices = (
  seed: number,
  symbol: string,
  startPrice: number,
  params: WalkParams,
  n: number
): ReadonlyArray<string> => {
  const walk = makePriceWalk(seed, symbol, startPrice, params)
  return Array.from({ length: n }, () => Fixed.format(walk.next().price))
}
