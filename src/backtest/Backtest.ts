/**
 * A whole backtest as the `replay` command runs it, callable without the CLI: inputs checked first (one line and
 * an exit code each), exchange filters chosen, every variant replayed over ONE read, metrics, ranking,
 * walk-forward, the text summary and the HTML report.
 */
import { Clock, Console, Effect } from "effect"
import { writeFile } from "node:fs/promises"
import type { RiskLimits } from "../risk/RiskGate.ts"
import type { SignalWindows } from "../signals/SignalWorker.ts"
import { loadSavedRules, rulesByDay } from "./ExchangeRules.ts"
import { combinations, type Fold, type GridSpec, variantsOf, walkForward } from "./Grid.ts"
import { checkWritable, EXIT_DATA, preflight, ReplayInputError, usage } from "./Inputs.ts"
import { type Metrics, periodBasisFor, periodName, RANK_METRICS, type RankMetric, rankBy } from "./Metrics.ts"
import { DEFAULT_BALANCE, flagFilters, type PaperOptions, quoteAssetOf, type RulesOf } from "./PaperExecution.ts"
import { openDuckDB } from "../storage/ParquetSource.ts"
import { baseVariant, formatSummary, metricsOf, type ReplayPlan, type ReplayProgress, replayVariants, type Variant, type VariantResult } from "./Replay.ts"
import { duration, makeMarketRecorder, renderReport } from "./Report.ts"

export interface BacktestOptions {
  readonly path: string
  readonly symbols?: ReadonlyArray<string>
  readonly from?: number
  readonly to?: number
  /** Taker fee rate (every paper order is a MARKET order). */
  readonly fee: number
  readonly makerFee?: number
  readonly slippageBps: number
  readonly latencyMs?: number
  readonly startingBalance?: number
  /** Filters from flags (override a saved exchangeInfo). */
  readonly filters?: { readonly stepSize: number; readonly minQty: number; readonly minNotional: number }
  readonly windows: SignalWindows
  readonly limits: RiskLimits
  readonly grid?: GridSpec
  readonly walkForward?: number
  readonly rankBy?: RankMetric
  /** Variants compared with the base run (e.g. a model-gated one); ignored with a grid. */
  readonly extraVariants?: ReadonlyArray<Variant>
  readonly report?: string
  readonly strict?: boolean
  readonly onProgress?: (p: ReplayProgress) => Effect.Effect<void>
}

export interface RankedVariant {
  readonly result: VariantResult
  readonly metrics: Metrics
}

export interface BacktestOutcome {
  readonly plan: ReplayPlan
  /** Best first when ranked (grid or extra variants), else the one run. */
  readonly ranked: ReadonlyArray<RankedVariant>
  readonly folds: ReadonlyArray<Fold>
  readonly warnings: ReadonlyArray<string>
  readonly ticks: number
  readonly duplicates: number
  /** Rows read from the files: once for all variants. */
  readonly rowsRead: number
  readonly elapsedMs: number
  readonly text: string
  readonly html: string | undefined
  /** Time to render and write the report (0 without one). */
  readonly reportMs: number
}

/** Flag values that cannot be right, as one line each (exit 2). */
export const checkOptions = (o: BacktestOptions): string | undefined => {
  const nonNegative: ReadonlyArray<readonly [string, number | undefined]> = [
    ["--fee", o.fee],
    ["--maker-fee", o.makerFee],
    ["--slippage-bps", o.slippageBps],
    ["--latency", o.latencyMs],
    ["--step-size", o.filters?.stepSize],
    ["--min-qty", o.filters?.minQty],
    ["--min-notional", o.filters?.minNotional]
  ]
  for (const [flag, value] of nonNegative) {
    if (value !== undefined && !(Number.isFinite(value) && value >= 0)) return `${flag} ${value}: must be 0 or more`
  }
  if (o.fee >= 1 || (o.makerFee ?? 0) >= 1) return `--fee ${o.fee}: a rate below 1 (0.001 = 0.1 %)`
  if (o.startingBalance !== undefined && !(o.startingBalance > 0)) return `--balance ${o.startingBalance}: must be more than 0`
  if (o.from !== undefined && o.to !== undefined && o.from >= o.to) {
    return `--from ${new Date(o.from).toISOString()} is not before --to ${new Date(o.to).toISOString()} (--from is inclusive, --to exclusive)`
  }
  if (o.walkForward !== undefined && !(Number.isInteger(o.walkForward) && o.walkForward >= 1 && o.walkForward <= 50)) {
    return `--walk-forward ${o.walkForward}: a number of folds from 1 to 50`
  }
  return undefined
}

const pctText = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? "-" : `${(x * 100).toFixed(d)} %`)
const numText = (x: number | undefined, d = 2) => (x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d))

export const runBacktest = (o: BacktestOptions) =>
  Effect.scoped(Effect.gen(function*() {
    const bad = checkOptions(o)
    if (bad !== undefined) return yield* usage(bad)
    if (o.report !== undefined) yield* checkWritable(o.report)
    // one DuckDB for the input checks and the merge (closed when the backtest ends)
    const duckdb = yield* openDuckDB.pipe(
      Effect.mapError((e) => new ReplayInputError({ message: `${o.path}: cannot read (${e.message.split("\n")[0]})`, exitCode: EXIT_DATA }))
    )
    const pre = yield* preflight(o.path, { ...(o.from === undefined ? {} : { from: o.from }), ...(o.to === undefined ? {} : { to: o.to }) }, duckdb)
    const warnings: Array<string> = []
    for (const s of pre.skipped) {
      if (o.strict === true) return yield* new ReplayInputError({ message: `${s.path}: ${s.why} (--strict)`, exitCode: EXIT_DATA })
      warnings.push(`skipped ${s.path}: ${s.why}`)
    }
    if (pre.files.length === 0) {
      return yield* new ReplayInputError({ message: `${o.path}: no tick files (${pre.skipped.length} Parquet file(s) of another schema)`, exitCode: EXIT_DATA })
    }
    if (o.symbols !== undefined) {
      const unknown = o.symbols.filter((s) => !pre.symbols.includes(s))
      if (unknown.length > 0) {
        return yield* usage(`--symbols: ${unknown.join(", ")} not in ${o.path} (present: ${pre.symbols.join(", ") || "none"})`)
      }
    }
    for (const w of warnings) yield* Console.error(`warning: ${w}`)

    // exchange filters: flags, else the saved exchangeInfo of each day, else none (said loudly)
    let rules: RulesOf | undefined
    let filters: string
    if (o.filters !== undefined) {
      rules = flagFilters(o.filters)
      filters = `from flags: LOT_SIZE stepSize ${o.filters.stepSize}, minQty ${o.filters.minQty}; NOTIONAL minNotional ${o.filters.minNotional}`
    } else {
      const saved = yield* loadSavedRules(o.path)
      for (const f of saved.invalid) warnings.push(`ignored ${f}: not exchangeInfo JSON`)
      if (saved.days.size > 0) {
        rules = rulesByDay(saved.days)
        const wanted = o.symbols ?? pre.symbols
        const missing = wanted.filter((s) => ![...saved.days.values()].some((d) => d.has(s)))
        if (missing.length > 0) warnings.push(`no saved exchange filters for ${missing.join(", ")}: their orders are not rounded or refused`)
        filters = `saved exchangeInfo of ${saved.days.size} day(s) in ${saved.dir} (each day's own, else the nearest day's)`
      } else {
        filters = "none: no saved exchangeInfo and no --step-size/--min-qty/--min-notional; quantities are not rounded and nothing is refused"
        warnings.push(`no exchange filters: ${filters}`)
      }
    }

    const from = pre.minTs ?? o.from ?? 0
    const to = Math.max(from + 1, pre.maxTs === undefined ? from + 1 : o.to !== undefined && pre.maxTs >= o.to ? o.to : pre.maxTs + 1)
    const folds = o.walkForward ?? 0
    const plan: ReplayPlan = { from, to, periodMs: periodBasisFor(to - from, Math.max(100, 30 * (folds + 1))) }
    const base = baseVariant(o.limits, o.windows)
    let variants: Array<Variant>
    if (o.grid !== undefined) {
      const { combos, invalid } = combinations(o.grid, { windows: o.windows, limits: o.limits })
      if (combos.length === 0) return yield* usage(`--grid: no valid combination (fast must be below slow): ${invalid.join("; ")}`)
      if (combos.length > 500) return yield* usage(`--grid: ${combos.length} combinations; at most 500 in one pass`)
      if (invalid.length > 0) warnings.push(`grid combinations left out (fast must be below slow): ${invalid.join("; ")}`)
      variants = variantsOf(combos)
    } else variants = [base, ...(o.extraVariants ?? [])]

    const startingBalance = o.startingBalance ?? DEFAULT_BALANCE
    const paper: PaperOptions = {
      fee: o.fee,
      makerFee: o.makerFee ?? o.fee,
      slippageBps: o.slippageBps,
      latencyMs: o.latencyMs ?? 0,
      startingBalance,
      ...(rules === undefined ? {} : { rules })
    }
    let market: ReturnType<typeof makeMarketRecorder> | undefined
    const run = yield* replayVariants(
      o.path,
      {
        files: pre.files,
        duckdb,
        ...(o.symbols === undefined ? {} : { symbols: o.symbols }),
        ...(o.from === undefined ? {} : { from: o.from }),
        ...(o.to === undefined ? {} : { to: o.to })
      },
      variants,
      paper,
      {
        plan,
        listener: (replayers) => (market = makeMarketRecorder(plan, replayers, o.report !== undefined)).listener,
        ...(o.onProgress === undefined ? {} : { onProgress: o.onProgress })
      }
    )
    const metric: RankMetric = o.rankBy ?? "sharpe"
    const all = run.results.map((result, i) => ({ result, metrics: metricsOf(result, plan), index: i }))
    const ranked = variants.length > 1 ? rankBy(all, (x) => x.metrics, metric) : all
    const foldList = folds > 0 ? walkForward(run.results, plan, folds, metric) : []
    const ticks = run.results[0].summary.ticks
    const recorder = market!

    // text
    const quote = [...new Set((o.symbols ?? pre.symbols).map(quoteAssetOf))].join("/")
    const bh = recorder.buyAndHold()
    const bhRets = [...bh.values()].map((b) => b.ret)
    const bhAll = bhRets.length === 0 ? undefined : bhRets.reduce((a, b) => a + b, 0) / bhRets.length
    const lines: Array<string> = []
    const best = ranked[0]
    const m = best.metrics
    lines.push(formatSummary(best.result.summary, run.elapsedMs))
    const kv = (k: string, v: string) => lines.push(`${k.padEnd(13)} ${v}`)
    if (ranked.length > 1) kv("variant", `${best.result.variant.name} (best of ${ranked.length} by ${metric})`)
    kv("return", `${pctText(m.totalReturn, 3)} on ${startingBalance} ${quote} (buy & hold ${pctText(bhAll, 3)})`)
    kv("sharpe", `${numText(m.sharpe)} / sortino ${numText(m.sortino)} (${periodName(plan.periodMs)} returns, annualized)`)
    kv("drawdown", `${pctText(m.drawdown.fraction, 3)} (${m.drawdown.peakTs === undefined ? "-" : `${new Date(m.drawdown.peakTs).toISOString()} → ${new Date(m.drawdown.troughTs!).toISOString()}`})`)
    kv("profit factor", `${numText(m.profitFactor)}, expectancy ${numText(m.expectancy, 6)} ${quote}/trip, exposure ${pctText(m.exposure, 1)}`)
    kv("fees/gross", m.feesOfGross === undefined ? "-" : pctText(m.feesOfGross, 1))
    const rej = [...best.result.rejections].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")
    kv("rejections", rej === "" ? "-" : rej)
    kv("filters", filters)
    if (ranked.length > 1) {
      lines.push("", `rank  ${"variant".padEnd(28)} ${"return".padStart(10)} ${"sharpe".padStart(8)} ${"max DD".padStart(9)} ${"trips".padStart(6)} ${"PF".padStart(6)}`)
      ranked.forEach((x, i) =>
        lines.push(
          `${String(i + 1).padStart(4)}  ${x.result.variant.name.padEnd(28)} ${pctText(x.metrics.totalReturn, 3).padStart(10)} ${numText(x.metrics.sharpe).padStart(8)} ${pctText(x.metrics.drawdown.fraction, 2).padStart(9)} ${String(x.metrics.roundTrips).padStart(6)} ${numText(x.metrics.profitFactor).padStart(6)}`
        )
      )
    }
    if (foldList.length > 0) {
      lines.push("", `walk-forward  ${folds} folds of ${duration((plan.to - plan.from) / (folds + 1))}, chosen by ${metric} in sample, scored on the next window`)
      for (const f of foldList) {
        lines.push(
          `  fold ${f.index}: best in sample ${f.best} (${pctText(f.inSampleMetrics.totalReturn, 3)}, sharpe ${numText(f.inSampleMetrics.sharpe)}) → out of sample ${pctText(f.outOfSampleMetrics.totalReturn, 3)}, sharpe ${numText(f.outOfSampleMetrics.sharpe)}, rank ${f.outOfSampleRank}/${variants.length}`
        )
      }
    }

    let html: string | undefined
    const renderStart = yield* Clock.currentTimeMillis
    if (o.report !== undefined) {
      const order = ranked.map((x) => x.index)
      html = renderReport({
        params: {
          title: `autotrader replay of ${o.path}`,
          source: o.path,
          limits: o.limits,
          fee: o.fee,
          makerFee: o.makerFee ?? o.fee,
          slippageBps: o.slippageBps,
          latencyMs: o.latencyMs ?? 0,
          startingBalance,
          quoteAsset: quote,
          filters,
          plan,
          ticks,
          duplicates: run.duplicates,
          ...(variants.length > 1 ? { rankBy: metric } : {})
        },
        main: 0,
        variants: ranked.map((x) => ({ result: x.result, metrics: x.metrics })),
        recorderIndex: order,
        market: recorder,
        folds: foldList,
        warnings
      })
      const path = o.report
      yield* Effect.tryPromise({
        try: () => writeFile(path, html!),
        catch: (e) => new ReplayInputError({ message: `--report ${path}: cannot write (${String(e)})`, exitCode: 73 })
      })
      lines.push(`report        ${path} (${((yield* Clock.currentTimeMillis) - renderStart).toLocaleString("en-US")} ms to render and write)`)
    }
    const reportMs = (yield* Clock.currentTimeMillis) - renderStart
    return {
      plan,
      ranked: ranked.map(({ result, metrics }) => ({ result, metrics })),
      folds: foldList,
      warnings,
      ticks,
      duplicates: run.duplicates,
      rowsRead: run.rowsRead,
      elapsedMs: run.elapsedMs,
      text: lines.join("\n"),
      html,
      reportMs
    } satisfies BacktestOutcome
  }))

export const RANK_BY_NAMES = Object.keys(RANK_METRICS) as ReadonlyArray<RankMetric>
