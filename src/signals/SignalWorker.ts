/**
 * Signal worker: per symbol, MA(10) and MA(30) of the last 10 and 30 trade prices and Δprice.
 * A candidate is emitted at the tick where the sign of MA10 − MA30 differs from its last non-zero sign
 * (the first non-zero sign only sets the baseline: a crossover needs something to cross from).
 * Nothing before both averages exist; nothing while the difference is zero. O(1) work per tick.
 */
import { Effect, Stream } from "effect"
import { type Candidate, candidateId, originOf, type Tick } from "../domain/Messages.ts"

const SHORT_WINDOW = 10
const LONG_WINDOW = 30
/** Running sums are recomputed exactly this often so floating-point drift never accumulates. */
const RESUM_EVERY = 1024

interface SymbolState {
  readonly prices: Float64Array // ring buffer of the last LONG_WINDOW prices
  count: number
  head: number
  sum10: number
  sum30: number
  prev: number
  lastSign: -1 | 0 | 1
  lastTradeId: number
  sinceResum: number
}

export type SignalState = Map<string, SymbolState>

export const initialSignalState = (): SignalState => new Map()

const newSymbolState = (): SymbolState => ({
  prices: new Float64Array(LONG_WINDOW),
  count: 0,
  head: 0,
  sum10: 0,
  sum30: 0,
  prev: Number.NaN,
  lastSign: 0,
  lastTradeId: -1,
  sinceResum: 0
})

const at = (s: SymbolState, back: number): number => s.prices[(s.head - 1 - back + 2 * LONG_WINDOW) % LONG_WINDOW]

const resum = (s: SymbolState): void => {
  let s10 = 0
  let s30 = 0
  const n = Math.min(s.count, LONG_WINDOW)
  for (let i = 0; i < n; i++) {
    const p = at(s, i)
    if (i < SHORT_WINDOW) s10 += p
    s30 += p
  }
  s.sum10 = s10
  s.sum30 = s30
  s.sinceResum = 0
}

export interface Features {
  readonly ma10: number
  readonly ma30: number
  readonly delta: number
}

/**
 * The moving averages the state holds for `symbol` right now (NaN until 10, resp. 30, prices were seen);
 * undefined for a symbol never seen. Pure: reads the state, never writes it.
 */
export const featuresOf = (state: SignalState, symbol: string): { readonly ma10: number; readonly ma30: number } | undefined => {
  const s = state.get(symbol)
  if (s === undefined) return undefined
  return {
    ma10: s.count >= SHORT_WINDOW ? s.sum10 / SHORT_WINDOW : Number.NaN,
    ma30: s.count >= LONG_WINDOW ? s.sum30 / LONG_WINDOW : Number.NaN
  }
}

/**
 * Feeds one tick into the state; returns the candidate this tick produces, if any. Ticks whose trade id is not
 * newer than the last seen for the symbol are duplicates (at-least-once delivery) and are ignored.
 */
export const stepSignal = (state: SignalState, tick: Tick): Candidate | undefined => {
  let s = state.get(tick.symbol)
  if (s === undefined) {
    s = newSymbolState()
    state.set(tick.symbol, s)
  }
  if (tick.tradeId <= s.lastTradeId) return undefined
  s.lastTradeId = tick.tradeId
  const price = tick.price
  const delta = Number.isNaN(s.prev) ? 0 : price - s.prev
  s.prev = price
  // slide the windows: drop what falls out, add the new price
  if (s.count >= SHORT_WINDOW) s.sum10 -= at(s, SHORT_WINDOW - 1)
  if (s.count >= LONG_WINDOW) s.sum30 -= at(s, LONG_WINDOW - 1)
  s.prices[s.head] = price
  s.head = (s.head + 1) % LONG_WINDOW
  s.count++
  s.sum10 += price
  s.sum30 += price
  if (++s.sinceResum >= RESUM_EVERY) resum(s)
  if (s.count < LONG_WINDOW) return undefined
  const ma10 = s.sum10 / SHORT_WINDOW
  const ma30 = s.sum30 / LONG_WINDOW
  const diff = ma10 - ma30
  // differences within rounding noise of the running sums count as equality
  const sign: -1 | 0 | 1 = Math.abs(diff) <= Math.abs(ma30) * 1e-12 ? 0 : diff > 0 ? 1 : -1
  if (sign === 0) return undefined
  const previous = s.lastSign
  s.lastSign = sign
  if (previous === 0 || previous === sign) return undefined
  const side = sign > 0 ? "LONG" : "SHORT"
  return {
    id: candidateId(tick.symbol, tick.tradeId, side),
    symbol: tick.symbol,
    side,
    price,
    ma10,
    ma30,
    delta,
    tickTradeId: tick.tradeId,
    ts: tick.ts,
    origin: originOf(tick)
  }
}

/** The stage: ticks in, candidates out. State lives in the stream. */
export const candidates = <E, R>(ticks: Stream.Stream<Tick, E, R>): Stream.Stream<Candidate, E, R> =>
  ticks.pipe(
    Stream.mapAccum(initialSignalState, (state, tick) => {
      const c = stepSignal(state, tick)
      return [state, c === undefined ? [] : [c]] as const
    }),
    Stream.tap((c) =>
      Effect.logDebug("signal generated", { id: c.id, symbol: c.symbol, side: c.side, price: c.price, ma10: c.ma10, ma30: c.ma30 })
    )
  )
