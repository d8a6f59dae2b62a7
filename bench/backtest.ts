/**
 * Backtest scenarios for the benchmark runner (bench/run.ts calls these; `node bench/backtest.ts` runs them alone
 * and prints JSON). Targets (issue #14): a 9-combination grid replays at ≥ 1M ticks/s per combination-pass
 * (ticks × combinations / wall time) on 2 cores; the report for 1M ticks is generated in under 2 s.
 *
 *   node bench/backtest.ts [ticks]     prepares a store tree, runs every scenario, prints JSON
 */
import { Effect } from "effect"
import { mkdtempSync, rmSync, statSync } from "node:fs"
import { mkdir, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { runBacktest } from "../src/backtest/Backtest.ts"
import { combinations, parseGrid, variantsOf } from "../src/backtest/Grid.ts"
import { makeVariantReplayer } from "../src/backtest/Replay.ts"
import type { Tick } from "../src/domain/Messages.ts"
import { decimalOf } from "../src/orders/OrderPrep.ts"
import { exchangeInfoJson, exchangeInfoPath } from "../src/storage/ExchangeInfoFiles.ts"
import { defaultStoreOptions, makeStoreSink } from "../src/storage/StoreService.ts"
import * as TickStore from "../src/storage/TickStore.ts"

export const T0 = Date.UTC(2024, 0, 1, 0, 0, 0)
const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 2, maxTradesPerHour: 20 }
const BATCH = 512

/** `n` ticks over two symbols, a seeded random walk, one tick every 3 ms. */
export const makeTicks = (n: number, seed0 = 7): Array<Tick> => {
  let seed = seed0 >>> 0
  // mulberry32: a seeded uniform generator without float overflow (prices wander, no drift)
  const rand = () => {
    seed = (seed + 0x6d2b79f5) >>> 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  const price = { BTCUSDT: 42_000, ETHUSDT: 2_250 }
  const out: Array<Tick> = []
  for (let i = 0; i < n; i++) {
    const symbol = i % 2 === 0 ? "BTCUSDT" : "ETHUSDT"
    price[symbol] *= 1 + (rand() - 0.5) * 0.001
    const ts = T0 + i * 3
    out.push({ symbol, price: Math.round(price[symbol] * 100) / 100, size: Math.round(rand() * 1000) / 1000, side: rand() < 0.5 ? "BUY" : "SELL", tradeId: 3_000_000_000 + i, ts, receivedAt: ts + 2 })
  }
  return out
}

/** Writes `n` ticks as the store stage does, plus the day's exchangeInfo (Binance-like filters). Not timed. */
export const prepareStore = async (dir: string, n: number): Promise<void> => {
  const ticks = makeTicks(n)
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const sink = yield* makeStoreSink(defaultStoreOptions)
        for (let i = 0; i < ticks.length; i += BATCH) {
          yield* sink.offer(ticks.slice(i, i + BATCH).map((value, k) => ({ topic: "market.raw", key: value.symbol, value, partition: 0, assignment: 1, assigned: Effect.succeed(true), offset: i + k, commit: Effect.void })))
        }
        yield* sink.flushAll("shutdown")
      }).pipe(Effect.provide(TickStore.layer({ dataDir: dir })))
    )
  )
  const day = new Date(T0).toISOString().slice(0, 10)
  const d = decimalOf
  const rules = (symbol: string, base: string, step: number) => ({
    symbol, status: "TRADING", baseAsset: base, quoteAsset: "USDT", tickSize: d(0.01), minPrice: d(0.01), maxPrice: d(1_000_000),
    stepSize: d(step), minQty: d(step), maxQty: d(9000), minNotional: d(5), applyMinToMarket: true
  })
  await mkdir(join(dir, "exchangeInfo"), { recursive: true })
  await writeFile(exchangeInfoPath(dir, day), exchangeInfoJson([rules("BTCUSDT", "BTC", 0.00001), rules("ETHUSDT", "ETH", 0.0001)]))
}

export interface ScenarioResult {
  readonly ticks: number
  readonly combinations: number
  readonly seconds: number
  /** CPU seconds of the main (JS) thread and of the whole process (DuckDB's threads included): wall time lies on a loaded machine. */
  readonly mainThreadCpuSeconds: number
  readonly processCpuSeconds: number
  /** ticks / s of the one read */
  readonly ticksPerSec: number
  /** ticks × combinations / s */
  readonly comboTicksPerSec: number
}

const cpu = () => {
  const t = process.threadCpuUsage()
  const p = process.cpuUsage()
  return { thread: (t.user + t.system) / 1e6, process: (p.user + p.system) / 1e6 }
}

const timed = async <A>(f: () => Promise<A>): Promise<[A, number, { readonly thread: number; readonly process: number }]> => {
  const c0 = cpu()
  const started = performance.now()
  const a = await f()
  const c1 = cpu()
  return [a, (performance.now() - started) / 1000, { thread: c1.thread - c0.thread, process: c1.process - c0.process }]
}

/** One pass over the tree with a 3 × 3 grid of MA windows (9 strategy states per tick). */
export const gridScenario = async (dir: string): Promise<ScenarioResult> => {
  const grid = parseGrid(["fast=5,10,20", "slow=30,60,120"])
  if (typeof grid === "string") throw new Error(grid)
  const [out, seconds, c] = await timed(() =>
    Effect.runPromise(runBacktest({ path: dir, fee: 0.001, slippageBps: 1, windows: { fast: 10, slow: 30 }, limits, grid, rankBy: "sharpe" }))
  )
  return {
    ticks: out.ticks,
    combinations: out.ranked.length,
    seconds,
    mainThreadCpuSeconds: c.thread,
    processCpuSeconds: c.process,
    ticksPerSec: out.ticks / seconds,
    comboTicksPerSec: (out.ticks * out.ranked.length) / seconds
  }
}

/** The plain replay (one combination) through the backtest path, for comparison. */
export const singleScenario = async (dir: string): Promise<ScenarioResult> => {
  const [out, seconds, c] = await timed(() =>
    Effect.runPromise(runBacktest({ path: dir, fee: 0.001, slippageBps: 1, windows: { fast: 10, slow: 30 }, limits }))
  )
  return {
    ticks: out.ticks,
    combinations: 1,
    seconds,
    mainThreadCpuSeconds: c.thread,
    processCpuSeconds: c.process,
    ticksPerSec: out.ticks / seconds,
    comboTicksPerSec: out.ticks / seconds
  }
}

export interface ReportResult {
  readonly ticks: number
  /** Whole replay with the report (recording + render + write). */
  readonly seconds: number
  /** The same replay without a report, measured just before. */
  readonly baselineSeconds: number
  /** What the report adds: seconds − baselineSeconds. */
  readonly reportSeconds: number
  /** The same in main-thread CPU seconds (recording + rendering + writing run on the main thread). */
  readonly reportCpuSeconds: number
  /** Rendering the HTML and writing it, after the replay (wall). */
  readonly renderSeconds: number
  readonly bytes: number
}

/** Report generation cost: the replay with `--report` minus the same replay without it. */
export const reportScenario = async (dir: string): Promise<ReportResult> => {
  const base = await singleScenario(dir)
  const path = join(dir, "report.html")
  const [out, seconds, c] = await timed(() =>
    Effect.runPromise(runBacktest({ path: dir, fee: 0.001, slippageBps: 1, windows: { fast: 10, slow: 30 }, limits, report: path }))
  )
  return {
    ticks: out.ticks,
    seconds,
    baselineSeconds: base.seconds,
    reportSeconds: seconds - base.seconds,
    reportCpuSeconds: c.thread - base.mainThreadCpuSeconds,
    renderSeconds: out.reportMs / 1000,
    bytes: statSync(path).size
  }
}

/** The 9 strategy states alone, ticks already in memory (no read): what a combination-pass costs the main thread. */
export const gridCoreScenario = async (n: number): Promise<ScenarioResult> => {
  const ticks = makeTicks(n)
  const grid = parseGrid(["fast=5,10,20", "slow=30,60,120"])
  if (typeof grid === "string") throw new Error(grid)
  const variants = variantsOf(combinations(grid, { windows: { fast: 10, slow: 30 }, limits }).combos)
  const plan = { from: ticks[0].ts, to: ticks[ticks.length - 1].ts + 1, periodMs: 1000 }
  const [, seconds, c] = await timed(async () => {
    const rs = variants.map((v) => makeVariantReplayer(v, { fee: 0.001, slippageBps: 1 }, plan))
    for (const t of ticks) for (let i = 0; i < rs.length; i++) rs[i].step(t)
    return rs.map((r) => r.result())
  })
  return {
    ticks: n,
    combinations: variants.length,
    seconds,
    mainThreadCpuSeconds: c.thread,
    processCpuSeconds: c.process,
    ticksPerSec: n / seconds,
    comboTicksPerSec: (n * variants.length) / seconds
  }
}

if (import.meta.main) {
  const n = Number(process.argv[2] ?? 1_000_000)
  const dir = mkdtempSync(join(tmpdir(), "bench-backtest-"))
  try {
    await prepareStore(dir, n)
    const single = await singleScenario(dir)
    const grid = await gridScenario(dir)
    const gridCore = await gridCoreScenario(n)
    const report = await reportScenario(dir)
    process.stdout.write(`${JSON.stringify({ single, grid, gridCore, report }, null, 1)}\n`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
