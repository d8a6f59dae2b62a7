/**
 * `npm run bench`: tick store and replay throughput, median of several fresh processes each, written to
 * BENCHMARKS.md with the machine it ran on. Targets (issue #5): store ≥ 500k ticks/s into Parquet with bounded
 * memory; replay ≥ 1M ticks/s through signal + risk + paper execution.
 *
 *   node bench/run.ts                 all benchmarks, writes BENCHMARKS.md
 *   node bench/run.ts --child <name>  one measurement, prints JSON (used by the parent)
 */
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import type { Delivery } from "../src/bus/Bus.ts"
import type { Tick } from "../src/domain/Messages.ts"
import { makeReplayer, replay } from "../src/backtest/Replay.ts"
import { defaultStoreOptions, makeStoreSink } from "../src/storage/StoreService.ts"
import * as TickStore from "../src/storage/TickStore.ts"

const N = 1_000_000
const RUNS = 5
const BATCH = 512 // what a bus poll hands the stage at a time
const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 2, maxTradesPerHour: 20 }
const paper = { fee: 0.001, slippageBps: 1 }
/** The store's codec: its default unless STORE_COMPRESSION says otherwise (to compare codecs). */
const codec = ((c) => (c === "zstd" || c === "snappy" || c === "uncompressed" ? c : defaultStoreOptions.compression))(process.env.STORE_COMPRESSION)

/** 1M ticks over two symbols, a seeded random walk, one tick every 3 ms (about 50 minutes of a busy market). */
const makeTicks = (n: number): Array<Tick> => {
  let seed = 42
  const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648)
  const price = { BTCUSDT: 42_000, ETHUSDT: 2_250 }
  const out: Array<Tick> = []
  const t0 = Date.UTC(2024, 0, 1, 0, 0, 0)
  for (let i = 0; i < n; i++) {
    const symbol = i % 2 === 0 ? "BTCUSDT" : "ETHUSDT"
    price[symbol] *= 1 + (rand() - 0.5) * 0.001
    const ts = t0 + i * 3
    out.push({
      symbol,
      price: Math.round(price[symbol] * 100) / 100,
      size: Math.round(rand() * 1000) / 1000,
      side: rand() < 0.5 ? "BUY" : "SELL",
      tradeId: 3_000_000_000 + i,
      ts,
      receivedAt: ts + 2
    })
  }
  return out
}

const rssMb = () => process.memoryUsage().rss / 1_048_576
const peakRssMb = () => process.resourceUsage().maxRSS / 1024

interface Result {
  readonly ticksPerSec: number
  readonly seconds: number
  readonly peakRssMb?: number
  readonly rssGrowthMb?: number
  readonly files?: number
  readonly mb?: number
}

/** The store stage's own code (buffers, flush policy, commit bookkeeping, DuckDB writer) fed without a bus. */
const benchStore = async (): Promise<Result> => {
  const ticks = makeTicks(N)
  const deliveries: Array<Delivery<Tick>> = ticks.map((t, offset) => ({
    topic: "market.raw",
    key: t.symbol,
    value: t,
    partition: 0,
    offset,
    commit: Effect.void
  }))
  const dir = mkdtempSync(join(tmpdir(), "bench-store-"))
  const before = rssMb()
  try {
    const started = performance.now()
    const stats = await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const sink = yield* makeStoreSink(defaultStoreOptions)
          for (let i = 0; i < deliveries.length; i += BATCH) yield* sink.offer(deliveries.slice(i, i + BATCH))
          yield* sink.flushAll("shutdown")
          return sink.stats
        }).pipe(Effect.provide(TickStore.layer({ dataDir: dir, compression: codec })))
      )
    )
    const seconds = (performance.now() - started) / 1000
    return {
      ticksPerSec: stats.rows / seconds,
      seconds,
      peakRssMb: peakRssMb(),
      rssGrowthMb: peakRssMb() - before,
      files: stats.files,
      mb: stats.bytes / 1_048_576
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Replay end to end: per-file DuckDB reads merged in (ts, trade_id) order in JS, then signal + risk + paper fills per tick. */
const benchReplay = async (dir: string): Promise<Result> => {
  const started = performance.now()
  const { summary } = await Effect.runPromise(replay(dir, {}, limits, paper))
  const seconds = (performance.now() - started) / 1000
  return { ticksPerSec: summary.ticks / seconds, seconds, peakRssMb: peakRssMb() }
}

/** The replay core alone (ticks already in memory): what the pure stages cost. */
const benchReplayCore = async (): Promise<Result> => {
  const ticks = makeTicks(N)
  const started = performance.now()
  const r = makeReplayer(limits, paper)
  for (const t of ticks) r.step(t)
  const seconds = (performance.now() - started) / 1000
  return { ticksPerSec: r.summary().ticks / seconds, seconds }
}

/** Writes the replay input once (not timed). */
const prepareReplayInput = async (dir: string): Promise<void> => {
  const ticks = makeTicks(N)
  await Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const sink = yield* makeStoreSink(defaultStoreOptions)
        for (let i = 0; i < ticks.length; i += BATCH) {
          yield* sink.offer(
            ticks.slice(i, i + BATCH).map((value, k) => ({ topic: "market.raw", key: value.symbol, value, partition: 0, offset: i + k, commit: Effect.void }))
          )
        }
        yield* sink.flushAll("shutdown")
      }).pipe(Effect.provide(TickStore.layer({ dataDir: dir, compression: codec })))
    )
  )
}

const child = async (name: string, arg: string | undefined): Promise<void> => {
  const result = name === "store"
    ? await benchStore()
    : name === "replay"
    ? await benchReplay(arg ?? "")
    : name === "replay-core"
    ? await benchReplayCore()
    : name === "prepare"
    ? (await prepareReplayInput(arg ?? ""), { ticksPerSec: 0, seconds: 0 })
    : undefined
  if (result === undefined) throw new Error(`unknown benchmark ${name}`)
  process.stdout.write(JSON.stringify(result))
}

const runChild = (name: string, arg?: string): Result =>
  JSON.parse(execFileSync(process.execPath, [import.meta.filename, "--child", name, ...(arg === undefined ? [] : [arg])], { encoding: "utf8", maxBuffer: 1 << 20 }))

const median = (xs: ReadonlyArray<number>): number => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

const k = (x: number) => `${Math.round(x / 1000).toLocaleString("en-US")}k`

const main = async (): Promise<void> => {
  const runs = (name: string, arg?: string): Array<Result> =>
    Array.from({ length: RUNS }, (_, i) => {
      const r = runChild(name, arg)
      console.error(`${name} run ${i + 1}/${RUNS}: ${k(r.ticksPerSec)} ticks/s${r.peakRssMb === undefined ? "" : `, peak RSS ${r.peakRssMb.toFixed(0)} MB`}`)
      return r
    })
  const loadBefore = loadavg()[0]
  const store = runs("store")
  const input = mkdtempSync(join(tmpdir(), "bench-replay-"))
  try {
    runChild("prepare", input)
    const replayRuns = runs("replay", input)
    const core = runs("replay-core")
    const cpu = cpus()
    const rows = [
      ["store: ticks → Parquet (buffers + DuckDB appender + COPY zstd + fsync + rename, 2 files written in the background)", store, 500_000],
      ["replay: Parquet → per-file DuckDB reads + k-way merge in JS → signal + risk + paper fills", replayRuns, 1_000_000],
      ["replay core only (ticks in memory → signal + risk + paper fills)", core, 1_000_000]
    ] as const
    const table = rows.map(([label, rs, target]) => {
      const m = median(rs.map((r) => r.ticksPerSec))
      const all = rs.map((r) => k(r.ticksPerSec)).join(", ")
      const rss = rs[0].peakRssMb === undefined ? "–" : `${median(rs.map((r) => r.peakRssMb ?? 0)).toFixed(0)}`
      return `| ${label} | **${k(m)}** | ${all} | ${k(target)} | ${(m / target).toFixed(2)}× ${m >= target ? "✅" : "❌"} | ${rss} |`
    })
    const storeGrowth = median(store.map((r) => r.rssGrowthMb ?? 0))
    const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.ts) on ${new Date().toISOString().slice(0, 10)}. Each figure is the median of ${RUNS} runs, each in a fresh Node process, over ${N.toLocaleString("en-US")} ticks (two symbols, seeded random walk, trade ids above 2^31).

**Machine:** ${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} cores, ${(totalmem() / 1_073_741_824).toFixed(0)} GB RAM, Node ${process.version}, ${process.platform}/${process.arch}. Load average (1 min) before / after: ${loadBefore.toFixed(2)} / ${loadavg()[0].toFixed(2)} — other work on the machine lowers every figure; compare runs taken at low load.

| benchmark | median ticks/s | runs | target | ratio | peak RSS MB |
|---|---|---|---|---|---|
${table.join("\n")}

- **Store**: the store stage's own code path (\`makeStoreSink\`: per-partition typed-array buffers, flush at ${defaultStoreOptions.flushRows.toLocaleString("en-US")} rows, commit bookkeeping) into the DuckDB writer (\`TickStore\`), fed ${BATCH}-tick batches as a bus poll would deliver them, without the bus's JSON decoding. A full buffer is written in the background (at most 2 at a time, each on its own DuckDB connection) while the next ones fill, and committed only once its file is renamed; buffer arrays of written files are reused. It wrote ${store[0].files} files, ${(store[0].mb ?? 0).toFixed(1)} MB (zstd; snappy measured no faster here and 2.8× larger: 16.5 MB). Memory: peak RSS includes the 1M generated input ticks held by the benchmark; growth during the write was ${storeGrowth.toFixed(0)} MB (bounded by flush rows × (open partitions + 2 being written + 4 spare array sets)).
- **Replay**: \`replay()\` end to end, as \`autotrader replay\` runs it: the Parquet footers give each file's time range and symbol; each file is read on its own and streamed in 2048-row chunks (files our store wrote are already in (ts, trade_id) order and marked so in their footer; DuckDB sorts any other file), the next chunk and the next files fetched while JS merges, DuckDB on the cores the merge leaves (1 thread here); a k-way merge in JS takes the smallest (ts, trade_id, symbol) head row by row in one synchronous loop and drops duplicates of (symbol, trade_id); then \`stepSignal\`, \`decide\`, paper \`OrderFilled\` through \`applyOrder\` and mark-to-market equity per tick, through one reused tick object (no allocation per row). Before this design (one DuckDB \`ORDER BY ts, trade_id\` over the whole tree, a \`Tick\` object per row) the same row measured 531k ticks/s.
- Where replay time goes (CPU profile of the end-to-end run, 1M ticks): signal + risk + paper core about 0.35 s (3rd row), the merge loop about 0.24 s, garbage collection about 0.19 s, DuckDB's JS hand-over (\`fetchChunk\` and a typed-array view per column per 2048-row chunk, taken from the native chunk) about 0.17 s, and about 0.14 s of the main thread waiting, half of it start-up (DuckDB instance ~40 ms, footers ~25 ms, first files) and the rest for chunks DuckDB decodes on the other core (on ${cpu.length} cores a loaded machine shows up here first). Tried and dropped: reading a whole file per query (\`run\` + \`getChunk\`: the chunk copy lands on the main thread, 670–740k ticks/s) and fetching up to 8 chunks ahead per file (no measurable change).
- Writer choice: parquetjs-lite (the design card's) is not a dependency; measured on this machine at 78k rows/s (6× under the 500k target) against DuckDB's 868k (see ../shared/parquet-writers.md).
`
    writeFileSync(join(import.meta.dirname, "..", "BENCHMARKS.md"), md)
    console.log(md)
  } finally {
    rmSync(input, { recursive: true, force: true })
  }
}

const argv = process.argv.slice(2)
if (argv[0] === "--child") await child(argv[1], argv[2])
else await main()
