/**
 * Signal worker: per symbol, a fast and a slow moving average of the last `fast` and `slow` trade prices (MA10 and
 * MA30 by default: `SIGNAL_FAST`, `SIGNAL_SLOW`) and Δprice.
 * A candidate is emitted at the tick where the sign of fast − slow differs from its last non-zero sign
 * (the first non-zero sign only sets the baseline: a crossover needs something to cross from).
 * Nothing before both averages exist; nothing while the difference is zero. O(1) work per tick.
 */
import { Effect, Stream } from "effect"
import { type Candidate, candidateId, originOf, type Tick } from "../domain/Messages.ts"

/** The two moving-average windows, in trades: a parameter of the state, so live and replay (and every grid variant) share the code. */
export interface SignalWindows {
  readonly fast: number
  readonly slow: number
}

export const DEFAULT_WINDOWS: SignalWindows = { fast: 10, slow: 30 }

/** Why `windows` cannot drive the rule, or undefined when they can (integers, 1 ≤ fast < slow ≤ 100000). */
export const windowsProblem = (w: SignalWindows): string | undefined =>
  !Number.isInteger(w.fast) || !Number.isInteger(w.slow) || w.fast < 1 || w.slow > 100_000 || w.fast >= w.slow
    ? `fast ${w.fast} / slow ${w.slow}: windows must be whole numbers of trades with 1 ≤ fast < slow ≤ 100000`
    : undefined
/** Running sums are recomputed exactly this often so floating-point drift never accumulates. */
const RESUM_EVERY = 1024

interface SymbolState {
  readonly prices: Float64Array // ring buffer of the last `slow` prices
  count: number
  head: number
  sumFast: number
  sumSlow: number
  prev: number
  lastSign: -1 | 0 | 1
  lastTradeId: number
  sinceResum: number
}

/** Per-symbol state, keyed by symbol, with the windows it runs. */
export class SignalState extends Map<string, SymbolState> {
  readonly fast: number
  readonly slow: number
  constructor(windows: SignalWindows) {
    super()
    this.fast = windows.fast
    this.slow = windows.slow
  }
}

export const initialSignalState = (windows: SignalWindows = DEFAULT_WINDOWS): SignalState => new SignalState(windows)

const newSymbolState = (slow: number): SymbolState => ({
  prices: new Float64Array(slow),
  count: 0,
  head: 0,
  sumFast: 0,
  sumSlow: 0,
  prev: Number.NaN,
  lastSign: 0,
  lastTradeId: -1,
  sinceResum: 0
})

const at = (s: SymbolState, back: number): number => {
  const n = s.prices.length
  return s.prices[(s.head - 1 - back + 2 * n) % n]
}

const resum = (s: SymbolState, fast: number): void => {
  let sFast = 0
  let sSlow = 0
  const n = Math.min(s.count, s.prices.length)
  for (let i = 0; i < n; i++) {
    const p = at(s, i)
    if (i < fast) sFast += p
    sSlow += p
  }
  s.sumFast = sFast
  s.sumSlow = sSlow
  s.sinceResum = 0
}

export interface Features {
  readonly ma10: number
  readonly ma30: number
  readonly delta: number
}

/**
 * The moving averages the state holds for `symbol` right now: `ma10` is the fast one, `ma30` the slow one (the
 * names of the default windows; NaN until `fast`, resp. `slow`, prices were seen); undefined for a symbol never
 * seen. Pure: reads the state, never writes it.
 */
export const featuresOf = (state: SignalState, symbol: string): { readonly ma10: number; readonly ma30: number } | undefined => {
  const s = state.get(symbol)
  if (s === undefined) return undefined
  return {
    ma10: s.count >= state.fast ? s.sumFast / state.fast : Number.NaN,
    ma30: s.count >= state.slow ? s.sumSlow / state.slow : Number.NaN
  }
}

/**
 * Feeds one tick into the state; returns the candidate this tick produces, if any. Ticks whose trade id is not
 * newer than the last seen for the symbol are duplicates (at-least-once delivery) and are ignored.
 */
export const stepSignal = (state: SignalState, tick: Tick): Candidate | undefined => {
  let s = state.get(tick.symbol)
  if (s === undefined) {
    s = newSymbolState(state.slow)
    state.set(tick.symbol, s)
  }
  const fast = state.fast
  const slow = state.slow
  if (tick.tradeId <= s.lastTradeId) return undefined
  s.lastTradeId = tick.tradeId
  const price = tick.price
  const delta = Number.isNaN(s.prev) ? 0 : price - s.prev
  s.prev = price
  // slide the windows: drop what falls out, add the new price
  if (s.count >= fast) s.sumFast -= at(s, fast - 1)
  if (s.count >= slow) s.sumSlow -= at(s, slow - 1)
  s.prices[s.head] = price
  s.head = (s.head + 1) % slow
  s.count++
  s.sumFast += price
  s.sumSlow += price
  if (++s.sinceResum >= RESUM_EVERY) resum(s, fast)
  if (s.count < slow) return undefined
  const ma10 = s.sumFast / fast
  const ma30 = s.sumSlow / slow
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
export const candidates = <E, R>(
  ticks: Stream.Stream<Tick, E, R>,
  windows: SignalWindows = DEFAULT_WINDOWS
): Stream.Stream<Candidate, E, R> =>
  ticks.pipe(
    Stream.mapAccum(() => initialSignalState(windows), (state, tick) => {
      const c = stepSignal(state, tick)
      return [state, c === undefined ? [] : [c]] as const
    }),
    Stream.tap((c) =>
      Effect.logDebug("signal generated", { id: c.id, symbol: c.symbol, side: c.side, price: c.price, ma10: c.ma10, ma30: c.ma30 })
    )
  )
