/**
 * Store and replay. Store: the store stage's own code (makeStoreSink → TickStore) against a bare DuckDB appender +
 * COPY of the same rows. Replay: `autotrader replay` as a whole process (start-up included) on the store's own tree
 * and on a foreign tree (unsorted files, several row groups, a rewritten duplicate file), against a bare DuckDB
 * process that reads the same tree in (ts, trade_id) order and touches every row.
 */
import { DOUBLE, DuckDBDataChunk, DuckDBInstance } from "@duckdb/node-api"
import { Effect } from "effect"
import { spawnSync } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Delivery } from "../src/bus/Bus.ts"
import type { Tick } from "../src/domain/Messages.ts"
import { defaultStoreOptions, makeStoreSink } from "../src/storage/StoreService.ts"
import * as TickStore from "../src/storage/TickStore.ts"
import { cli } from "./lib.ts"
import { makeTicks } from "./stages.ts"

const BATCH = 512 // what a bus poll hands the stage at a time
const peakRssMb = () => process.resourceUsage().maxRSS / 1024

export interface Throughput {
  readonly perSec: number
  readonly seconds: number
  readonly peakRssMb: number
}

const feedStore = (dir: string, ticks: ReadonlyArray<Tick>) =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const sink = yield* makeStoreSink(defaultStoreOptions)
        for (let i = 0; i < ticks.length; i += BATCH) {
          const batch: Array<Delivery<Tick>> = []
          for (let j = i; j < Math.min(i + BATCH, ticks.length); j++) {
            batch.push({ topic: "market.raw", key: ticks[j].symbol, value: ticks[j], partition: 0, assignment: 1, assigned: Effect.succeed(true), offset: j, commit: Effect.void })
          }
          yield* sink.offer(batch)
        }
        yield* sink.flushAll("shutdown")
        return sink.stats.rows
      }).pipe(Effect.provide(TickStore.layer({ dataDir: dir })))
    )
  )

/** The store stage's code path, fed 512-tick batches as a bus poll delivers them. */
export const storeStage = async (n: number): Promise<Throughput> => {
  const ticks = makeTicks(n)
  const dir = mkdtempSync(join(tmpdir(), "bench-store-"))
  try {
    const started = performance.now()
    const rows = await feedStore(dir, ticks)
    const seconds = (performance.now() - started) / 1000
    return { perSec: rows / seconds, seconds, peakRssMb: peakRssMb() }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Floor: the same rows, one symbol's columns at a time, appended in 2048-row chunks and COPYed to zstd Parquet. */
export const storeFloor = async (n: number): Promise<Throughput> => {
  const ticks = makeTicks(n)
  const dir = mkdtempSync(join(tmpdir(), "bench-copy-"))
  try {
    const started = performance.now()
    const instance = await DuckDBInstance.create(":memory:")
    const c = await instance.connect()
    const columns = ["ts", "price", "size", "buy", "trade_id", "received_at"]
    for (const symbol of ["BTCUSDT", "ETHUSDT"]) {
      const rows = ticks.filter((t) => t.symbol === symbol)
      await c.run(`CREATE OR REPLACE TABLE t (${columns.map((x) => `${x} DOUBLE`).join(", ")})`)
      const appender = await c.createAppender("t")
      for (let i = 0; i < rows.length; i += 2048) {
        const m = Math.min(2048, rows.length - i)
        const chunk = DuckDBDataChunk.create(columns.map(() => DOUBLE), m)
        const cols = [new Array<number>(m), new Array<number>(m), new Array<number>(m), new Array<number>(m), new Array<number>(m), new Array<number>(m)]
        for (let j = 0; j < m; j++) {
          const t = rows[i + j]
          cols[0][j] = t.ts
          cols[1][j] = t.price
          cols[2][j] = t.size
          cols[3][j] = t.side === "BUY" ? 1 : 0
          cols[4][j] = t.tradeId
          cols[5][j] = t.receivedAt
        }
        chunk.setColumns(cols)
        appender.appendDataChunk(chunk)
      }
      appender.closeSync()
      await c.run(
        `COPY (SELECT epoch_ms(ts::BIGINT)::TIMESTAMP_MS AS ts, '${symbol}' AS symbol, price, size, CASE WHEN buy = 1 THEN 'BUY' ELSE 'SELL' END AS side,` +
          ` trade_id::BIGINT AS trade_id, epoch_ms(received_at::BIGINT)::TIMESTAMP_MS AS received_at FROM t)` +
          ` TO '${join(dir, `${symbol}.parquet`)}' (FORMAT parquet, COMPRESSION zstd)`
      )
    }
    c.closeSync()
    const seconds = (performance.now() - started) / 1000
    return { perSec: ticks.length / seconds, seconds, peakRssMb: peakRssMb() }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The store's own tree of `n` ticks (not timed). */
export const writeOwnTree = async (dir: string, n: number): Promise<void> => {
  await feedStore(dir, makeTicks(n))
}

/**
 * A tree another tool wrote: `n` ticks of two symbols in the same Hive layout, files in random row order (no
 * sorted mark), several row groups per file, one file of each symbol-day rewritten under a second name (duplicates).
 */
export const writeForeignTree = async (dir: string, n: number): Promise<void> => {
  const instance = await DuckDBInstance.create(":memory:")
  const c = await instance.connect()
  const t0 = Date.UTC(2024, 0, 1)
  await c.run(
    `CREATE TABLE ticks AS SELECT epoch_ms((${t0} + i * 3)::BIGINT)::TIMESTAMP_MS AS ts, CASE WHEN i % 2 = 0 THEN 'BTCUSDT' ELSE 'ETHUSDT' END AS symbol,` +
      ` (CASE WHEN i % 2 = 0 THEN 42000 ELSE 2250 END) * (1 + 0.01 * sin(i / 5000.0) + 0.002 * sin(i / 7.0) + 0.001 * (hash(i) % 1000) / 1000.0) AS price,` +
      ` (hash(i * 7) % 1000) / 1000.0 AS size, CASE WHEN hash(i * 13) % 2 = 0 THEN 'BUY' ELSE 'SELL' END AS side,` +
      ` (3000000000 + i)::BIGINT AS trade_id, epoch_ms((${t0} + i * 3 + 2)::BIGINT)::TIMESTAMP_MS AS received_at FROM range(${n}) r(i)`
  )
  // files of about 100k rows per symbol and UTC hour-ish, shuffled inside, 4 row groups each
  const parts = (await c.runAndReadAll(
    `SELECT DISTINCT symbol, strftime(ts, '%Y-%m-%d') AS date, (epoch_ms(ts) // 600000)::BIGINT AS slot FROM ticks ORDER BY ALL`
  )).getRowObjectsJS()
  for (const [i, p] of parts.entries()) {
    const d = join(dir, "raw", `symbol=${p.symbol}`, `date=${p.date}`)
    mkdirSync(d, { recursive: true })
    const select = `SELECT * FROM ticks WHERE symbol = '${p.symbol}' AND (epoch_ms(ts) // 600000)::BIGINT = ${p.slot} ORDER BY hash(trade_id)`
    await c.run(`COPY (${select}) TO '${join(d, `export-${i}.parquet`)}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 25000)`)
    if (i < 2) await c.run(`COPY (${select}) TO '${join(d, `export-${i}-rewritten.parquet`)}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 30000)`)
  }
  c.closeSync()
}

/**
 * `autotrader replay <dir>` as a whole process: wall time from spawn to exit, and its CPU seconds (user + system, all
 * threads, from /usr/bin/time when present): on a loaded machine wall time waits for a core, CPU time does not.
 */
export const replayProcess = (dir: string, expected: number, entry = cli): Throughput & { readonly cpuSeconds: number } => {
  const timeBin = existsSync("/usr/bin/time") ? "/usr/bin/time" : undefined
  const args = [entry, "replay", dir]
  const started = performance.now()
  const r = spawnSync(timeBin ?? process.execPath, timeBin === undefined ? args : ["-f", "cpu %U %S", process.execPath, ...args], {
    encoding: "utf8",
    maxBuffer: 64 << 20,
    env: { ...process.env, LOG_LEVEL: "Warn" }
  })
  const seconds = (performance.now() - started) / 1000
  if (r.status !== 0) throw new Error(`replay exited ${r.status}: ${r.stderr.slice(-500)}`)
  const cpu = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr)
  return { perSec: expected / seconds, seconds, peakRssMb: Number.NaN, cpuSeconds: cpu === null ? Number.NaN : Number(cpu[1]) + Number(cpu[2]) }
}

/** Floor: a bare process that reads the tree in (ts, trade_id) order with DuckDB and touches every row's price. */
export const replayFloor = async (dir: string): Promise<{ rows: number }> => {
  const instance = await DuckDBInstance.create(":memory:")
  const c = await instance.connect()
  const result = await c.stream(
    `SELECT DISTINCT ON (symbol, trade_id) price::DOUBLE AS price, ts, trade_id, symbol FROM read_parquet('${dir}/raw/**/*.parquet', hive_partitioning = true) ORDER BY ts, trade_id`
  )
  let rows = 0
  let sum = 0
  for (let chunk = await result.fetchChunk(); chunk !== null && chunk.rowCount > 0; chunk = await result.fetchChunk()) {
    const prices = chunk.getColumnVector(0)
    for (let i = 0; i < chunk.rowCount; i++) sum += Number(prices.getItem(i))
    rows += chunk.rowCount
  }
  if (!(sum > 0)) throw new Error("no rows")
  return { rows }
}
