/**
 * Backtest metrics: pure functions of a round-trip list and an equity series sampled once per period. No I/O.
 *
 * Conventions (stated in the report and the README):
 * - Returns are of equity = starting balance + realized PnL + open positions marked at the last trade price.
 * - Sharpe = mean / sample standard deviation of per-period equity returns, annualized by √(periods per 365-day
 *   year) (crypto trades every day); risk-free rate 0. Sortino = mean / downside deviation, where the downside
 *   deviation is √(Σ min(r, 0)² / n) over all n periods (target 0), annualized the same way.
 * - CAGR and Calmar (CAGR / max drawdown %) only when the period spans at least 30 days; annualizing minutes of
 *   data would print absurd numbers.
 * - Profit factor = gross profit / gross loss of round trips (net of fees); expectancy = mean net PnL per round trip.
 */

export interface RoundTrip {
  readonly symbol: string
  readonly entrySignalId: string
  readonly exitSignalId: string
  readonly entryTs: number
  readonly exitTs: number
  readonly entryPrice: number
  readonly exitPrice: number
  readonly qty: number
  /** Net of fees (both legs), in the quote asset. */
  readonly pnl: number
  readonly fees: number
}

export interface EquityPoint {
  readonly ts: number
  readonly equity: number
}

export interface Drawdown {
  /** Largest fall from a running peak, in quote units and as a fraction of that peak. */
  readonly amount: number
  readonly fraction: number
  /** The peak before the fall and the trough (epoch ms); undefined when equity never fell. */
  readonly peakTs: number | undefined
  readonly troughTs: number | undefined
}

export const DAY = 86_400_000
const YEAR = 365 * DAY

export const noDrawdown: Drawdown = { amount: 0, fraction: 0, peakTs: undefined, troughTs: undefined }

/** Tracks the max drawdown of an equity path point by point (what the replay does per tick). */
export class DrawdownTracker {
  private peak: number
  private peakTs: number | undefined
  amount = 0
  fraction = 0
  ddPeakTs: number | undefined
  ddTroughTs: number | undefined
  constructor(start: number, startTs?: number) {
    this.peak = start
    this.peakTs = startTs
  }
  offer(equity: number, ts: number): void {
    if (equity > this.peak) {
      this.peak = equity
      this.peakTs = ts
    } else if (this.peak - equity > this.amount) {
      this.amount = this.peak - equity
      this.fraction = this.peak > 0 ? this.amount / this.peak : 0
      this.ddPeakTs = this.peakTs ?? ts
      this.ddTroughTs = ts
    }
  }
  result(): Drawdown {
    return { amount: this.amount, fraction: this.fraction, peakTs: this.ddPeakTs, troughTs: this.ddTroughTs }
  }
}

/** Max drawdown of a series starting from `start` at `startTs`. */
export const drawdownOf = (start: number, points: ReadonlyArray<EquityPoint>, startTs?: number): Drawdown => {
  const t = new DrawdownTracker(start, startTs)
  for (const p of points) t.offer(p.equity, p.ts)
  return t.result()
}

/** Equity sampled at the end of each period from realized PnL only (a trade list without marks): for tests and tools. */
export const equityFromTrades = (
  startingBalance: number,
  trades: ReadonlyArray<RoundTrip>,
  t0: number,
  periods: number,
  periodMs: number
): Array<EquityPoint> => {
  const sorted = [...trades].sort((a, b) => a.exitTs - b.exitTs)
  const out: Array<EquityPoint> = []
  let k = 0
  let equity = startingBalance
  for (let i = 1; i <= periods; i++) {
    const end = t0 + i * periodMs
    while (k < sorted.length && sorted[k].exitTs < end) equity += sorted[k++].pnl
    out.push({ ts: end, equity })
  }
  return out
}

/** Per-period simple returns of a series that starts at `start`. */
export const returnsOf = (start: number, points: ReadonlyArray<EquityPoint>): Array<number> => {
  const out: Array<number> = []
  let prev = start
  for (const p of points) {
    out.push(prev === 0 ? 0 : p.equity / prev - 1)
    prev = p.equity
  }
  return out
}

const mean = (xs: ReadonlyArray<number>): number => (xs.length === 0 ? 0 : xs.reduce((a, b) => a + b, 0) / xs.length)


/** Annualized Sharpe of per-period returns (sample std, n − 1); undefined with < 2 returns or zero variance. */
export const sharpeOf = (returns: ReadonlyArray<number>, periodMs: number): number | undefined => {
  if (returns.length < 2) return undefined
  const m = mean(returns)
  let v = 0
  for (const r of returns) v += (r - m) ** 2
  const sd = Math.sqrt(v / (returns.length - 1))
  if (!(sd > 0)) return undefined
  return (m / sd) * Math.sqrt(YEAR / periodMs)
}

/** Annualized Sortino of per-period returns (downside deviation over all n periods, target 0). */
export const sortinoOf = (returns: ReadonlyArray<number>, periodMs: number): number | undefined => {
  if (returns.length < 2) return undefined
  const m = mean(returns)
  let d = 0
  for (const r of returns) if (r < 0) d += r * r
  const dd = Math.sqrt(d / returns.length)
  if (!(dd > 0)) return undefined
  return (m / dd) * Math.sqrt(YEAR / periodMs)
}

export interface Metrics {
  readonly startingBalance: number
  readonly endingEquity: number
  /** (ending − starting) / starting. */
  readonly totalReturn: number
  readonly netPnl: number
  readonly cagr: number | undefined
  readonly sharpe: number | undefined
  readonly sortino: number | undefined
  readonly calmar: number | undefined
  readonly periodMs: number
  readonly periods: number
  readonly roundTrips: number
  readonly wins: number
  readonly winRate: number | undefined
  readonly grossProfit: number
  readonly grossLoss: number
  readonly profitFactor: number | undefined
  readonly expectancy: number | undefined
  readonly avgTradeMs: number | undefined
  readonly maxTradeMs: number | undefined
  readonly fees: number
  /** Fees as a fraction of |PnL before fees| (undefined when that is 0). */
  readonly feesOfGross: number | undefined
  readonly drawdown: Drawdown
  /** Fraction of the period with at least one open position (undefined when not measured). */
  readonly exposure: number | undefined
  readonly spanMs: number
}

export interface MetricsInput {
  readonly startingBalance: number
  /** Start and end of the measured period (epoch ms). */
  readonly from: number
  readonly to: number
  /** Equity at the end of each period, oldest first, `periodMs` apart. */
  readonly points: ReadonlyArray<EquityPoint>
  readonly periodMs: number
  /** Equity at the end (default: the last point's). */
  readonly endingEquity?: number
  readonly trades: ReadonlyArray<RoundTrip>
  /** Fees of every fill in the period, open positions' entries included (default: the round trips'). */
  readonly fees?: number
  /** Measured per tick by the replay; otherwise from the points. */
  readonly drawdown?: Drawdown
  readonly exposure?: number
}

export const computeMetrics = (input: MetricsInput): Metrics => {
  const start = input.startingBalance
  const endingEquity = input.endingEquity ?? (input.points.length > 0 ? input.points[input.points.length - 1].equity : start)
  const totalReturn = start === 0 ? 0 : endingEquity / start - 1
  const spanMs = Math.max(0, input.to - input.from)
  const returns = returnsOf(start, input.points)
  const drawdown = input.drawdown ?? drawdownOf(start, input.points, input.from)
  const cagr = spanMs >= 30 * DAY && endingEquity > 0 && start > 0 ? (endingEquity / start) ** (YEAR / spanMs) - 1 : undefined
  let grossProfit = 0
  let grossLoss = 0
  let wins = 0
  let tradeFees = 0
  let durations = 0
  let maxTradeMs = 0
  for (const t of input.trades) {
    if (t.pnl > 0) {
      grossProfit += t.pnl
      wins++
    } else grossLoss -= t.pnl
    tradeFees += t.fees
    const d = t.exitTs - t.entryTs
    durations += d
    if (d > maxTradeMs) maxTradeMs = d
  }
  const n = input.trades.length
  const fees = input.fees ?? tradeFees
  const netPnl = endingEquity - start
  const gross = netPnl + fees
  return {
    startingBalance: start,
    endingEquity,
    totalReturn,
    netPnl,
    cagr,
    sharpe: sharpeOf(returns, input.periodMs),
    sortino: sortinoOf(returns, input.periodMs),
    calmar: cagr !== undefined && drawdown.fraction > 0 ? cagr / drawdown.fraction : undefined,
    periodMs: input.periodMs,
    periods: returns.length,
    roundTrips: n,
    wins,
    winRate: n === 0 ? undefined : wins / n,
    grossProfit,
    grossLoss,
    profitFactor: grossLoss > 0 ? grossProfit / grossLoss : undefined,
    expectancy: n === 0 ? undefined : (grossProfit - grossLoss) / n,
    avgTradeMs: n === 0 ? undefined : durations / n,
    maxTradeMs: n === 0 ? undefined : maxTradeMs,
    fees,
    feesOfGross: gross === 0 ? undefined : fees / Math.abs(gross),
    drawdown,
    exposure: input.exposure,
    spanMs
  }
}

/** Metrics a grid can be ranked by, each with its direction. */
export const RANK_METRICS = {
  sharpe: { of: (m: Metrics) => m.sharpe, higherIsBetter: true },
  sortino: { of: (m: Metrics) => m.sortino, higherIsBetter: true },
  return: { of: (m: Metrics) => m.totalReturn, higherIsBetter: true },
  calmar: { of: (m: Metrics) => m.calmar, higherIsBetter: true },
  "profit-factor": { of: (m: Metrics) => m.profitFactor, higherIsBetter: true },
  expectancy: { of: (m: Metrics) => m.expectancy, higherIsBetter: true },
  "win-rate": { of: (m: Metrics) => m.winRate, higherIsBetter: true },
  drawdown: { of: (m: Metrics) => m.drawdown.fraction, higherIsBetter: false }
} as const

export type RankMetric = keyof typeof RANK_METRICS
export const RANK_METRIC_NAMES = Object.keys(RANK_METRICS) as ReadonlyArray<RankMetric>

/** Sorts best first by `metric`; variants without a value (e.g. no trades) go last, ties keep their order. */
export const rankBy = <A>(items: ReadonlyArray<A>, metricsOf: (a: A) => Metrics, metric: RankMetric): Array<A> => {
  const { of, higherIsBetter } = RANK_METRICS[metric]
  const keyed = items.map((a, i) => ({ a, i, v: of(metricsOf(a)) }))
  keyed.sort((x, y) => {
    if (x.v === undefined || y.v === undefined) return x.v === undefined ? (y.v === undefined ? x.i - y.i : 1) : -1
    const d = higherIsBetter ? y.v - x.v : x.v - y.v
    return d !== 0 ? d : x.i - y.i
  })
  return keyed.map((k) => k.a)
}

/** The period the Sharpe/Sortino returns are taken over: the largest standard one giving at least `minPeriods`. */
const BASES: ReadonlyArray<readonly [number, string]> = [
  [DAY, "1 day"],
  [4 * 3_600_000, "4 hours"],
  [3_600_000, "1 hour"],
  [900_000, "15 minutes"],
  [300_000, "5 minutes"],
  [60_000, "1 minute"],
  [10_000, "10 seconds"],
  [1_000, "1 second"]
]
export const periodBasisFor = (spanMs: number, minPeriods = 100): number => {
  for (const [ms] of BASES) if (spanMs / ms >= minPeriods) return ms
  return 1_000
}
export const periodName = (ms: number): string => BASES.find(([b]) => b === ms)?.[1] ?? `${ms} ms`
