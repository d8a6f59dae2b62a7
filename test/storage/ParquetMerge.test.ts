import { DuckDBResult } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { Tick } from "../../src/domain/Messages.ts"
import { readTicks } from "../../src/storage/ParquetSource.ts"
import { replay } from "../../src/backtest/Replay.ts"
import * as TickStore from "../../src/storage/TickStore.ts"
import { mkdir } from "node:fs/promises"
import { join } from "node:path"
import { vi } from "vitest"
import { columnsOf, mkTick, query, tempDir } from "./support.ts"

const T = Date.UTC(2024, 4, 1, 10)

const columns = columnsOf

/** (ts, trade_id, symbol) ascending, one row per (symbol, trade_id, ts): what the old global ORDER BY gave. */
const canonical = (ticks: ReadonlyArray<Tick>): Array<Tick> => {
  const seen = new Set<string>()
  return [...ticks]
    .sort((a, b) => a.ts - b.ts || a.tradeId - b.tradeId || (a.symbol < b.symbol ? -1 : a.symbol > b.symbol ? 1 : 0))
    .filter((t) => {
      const k = `${t.symbol}/${t.tradeId}/${t.ts}`
      return seen.has(k) ? false : (seen.add(k), true)
    })
}

const shuffle = <A>(xs: ReadonlyArray<A>, seed: number): Array<A> => {
  const out = [...xs]
  let s = seed
  for (let i = out.length - 1; i > 0; i--) {
    s = (s * 1_103_515_245 + 12_345) % 2_147_483_648
    const j = s % (i + 1)
    ;[out[i], out[j]] = [out[j], out[i]]
  }
  return out
}

describe("ParquetSource k-way merge", () => {
  it.effect("overlapping files, duplicates across files, out-of-order rows inside a file, same-ms ties across symbols", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      // BTC: trade ids 1..300, 2 per millisecond; ETH: ids 1000.., same milliseconds (ties on ts across symbols)
      const btc = Array.from({ length: 300 }, (_, i) => mkTick("BTCUSDT", i + 1, T + Math.floor(i / 2), 100 + (i % 17), i % 3 === 0 ? "SELL" : "BUY"))
      const eth = Array.from({ length: 300 }, (_, i) => mkTick("ETHUSDT", 1000 + i, T + Math.floor(i / 2), 50 + (i % 5)))
      // ETH trade ids below BTC's in one millisecond as well: 2 ETH ticks with id 5 and 6 at BTC's ts
      const ethLow = [mkTick("ETHUSDT", 5, T + 2, 51), mkTick("ETHUSDT", 6, T + 2, 52)]
      yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* TickStore.make({ dataDir: dir })
          const key = (s: string) => TickStore.partitionOf(s, T)
          // three BTC files: [0,120) in order, [100,220) shuffled, [200,300) reversed (ids 101..120 and 201..220 twice)
          yield* store.write(key("BTCUSDT"), columns("BTCUSDT", btc.slice(0, 120)))
          yield* store.write(key("BTCUSDT"), columns("BTCUSDT", shuffle(btc.slice(100, 220), 7)))
          yield* store.write(key("BTCUSDT"), columns("BTCUSDT", [...btc.slice(200, 300)].reverse()))
          // one whole file stored twice (a redelivery flushed with different content bounds)
          yield* store.write(key("BTCUSDT"), columns("BTCUSDT", btc.slice(40, 60)))
          yield* store.write(key("ETHUSDT"), columns("ETHUSDT", shuffle([...eth, ...ethLow], 3)))
          yield* store.write(key("ETHUSDT"), columns("ETHUSDT", eth.slice(150, 160)))
        })
      )
      const all = [...btc, ...btc.slice(100, 120), ...btc.slice(200, 220), ...btc.slice(40, 60), ...eth, ...ethLow, ...eth.slice(150, 160)]
      const expected = canonical(all)
      const stats = { rows: 0, duplicates: 0 }
      const got = yield* readTicks(dir, {}, stats).pipe(Stream.runCollect)
      assert.deepStrictEqual(got, expected)
      assert.strictEqual(stats.rows, all.length)
      assert.strictEqual(stats.duplicates, all.length - expected.length)

      // filters: symbols and [from, to)
      const from = T + 30
      const to = T + 110
      const window = yield* readTicks(dir, { symbols: ["BTCUSDT"], from, to }).pipe(Stream.runCollect)
      assert.deepStrictEqual(window, expected.filter((t) => t.symbol === "BTCUSDT" && t.ts >= from && t.ts < to))
      const eth2 = yield* readTicks(dir, { symbols: ["ETHUSDT"] }).pipe(Stream.runCollect)
      assert.deepStrictEqual(eth2, expected.filter((t) => t.symbol === "ETHUSDT"))

      // the replay sees the same stream (count and duplicates)
      const { summary } = yield* replay(dir, {}, { orderQty: 1, maxPosition: 10, maxTradesPerMinute: 100, maxTradesPerHour: 1000 }, {
        fee: 0,
        slippageBps: 0
      })
      assert.strictEqual(summary.ticks, expected.length)
      assert.strictEqual(summary.duplicates, all.length - expected.length)
      assert.strictEqual(summary.firstTs, expected[0].ts)
      assert.strictEqual(summary.lastTs, expected[expected.length - 1].ts)
    }))

  it.effect("files interleaving row by row across many 2048-row chunks, with an overlapping redelivered file", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      // two symbols alternating every millisecond (as a live market's hour files do), 7000 rows each: chunk ends
      // of the two files fall at different rows; a third file repeats 2500 BTC rows spanning a chunk boundary
      const btc = Array.from({ length: 7000 }, (_, i) => mkTick("BTCUSDT", 3_000_000_000 + 2 * i, T + 2 * i, 100 + (i % 13), i % 2 === 0 ? "BUY" : "SELL"))
      const eth = Array.from({ length: 7000 }, (_, i) => mkTick("ETHUSDT", 3_000_000_001 + 2 * i, T + 2 * i + 1, 50 + (i % 7)))
      const again = btc.slice(1500, 4000)
      yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* TickStore.make({ dataDir: dir })
          yield* store.write(TickStore.partitionOf("BTCUSDT", T), columns("BTCUSDT", btc))
          yield* store.write(TickStore.partitionOf("ETHUSDT", T), columns("ETHUSDT", eth))
          yield* store.write(TickStore.partitionOf("BTCUSDT", T), columns("BTCUSDT", again))
        })
      )
      const all = [...btc, ...eth, ...again]
      const expected = canonical(all)
      const stats = { rows: 0, duplicates: 0 }
      const got = yield* readTicks(dir, {}, stats).pipe(Stream.runCollect)
      assert.strictEqual(got.length, expected.length)
      assert.deepStrictEqual(got, expected)
      assert.strictEqual(stats.rows, all.length)
      assert.strictEqual(stats.duplicates, again.length)
      const window = yield* readTicks(dir, { from: T + 4000, to: T + 9000 }).pipe(Stream.runCollect)
      assert.deepStrictEqual(window, expected.filter((t) => t.ts >= T + 4000 && t.ts < T + 9000))
    }))

  it.effect("a file holding several symbols is read per row (symbol column) and merged with single-symbol files", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const a = Array.from({ length: 50 }, (_, i) => mkTick("AAAUSDT", i + 1, T + i, 10 + i))
      const b = Array.from({ length: 50 }, (_, i) => mkTick("BBBUSDT", i + 1, T + i, 20 + i))
      const c = Array.from({ length: 50 }, (_, i) => mkTick("CCCUSDT", i + 1, T + i, 30 + i))
      yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* TickStore.make({ dataDir: dir })
          yield* store.write(TickStore.partitionOf("CCCUSDT", T), columns("CCCUSDT", c))
        })
      )
      // a hand-made file with two symbols (not what the store writes, but a Parquet file replay accepts)
      const { query } = yield* Effect.promise(() => import("./support.ts"))
      const values = [...a, ...b].reverse()
        .map((t) => `(epoch_ms(${t.ts}::BIGINT)::TIMESTAMP_MS, '${t.symbol}', ${t.price}, ${t.size}, '${t.side}', ${t.tradeId}::BIGINT, epoch_ms(${t.receivedAt}::BIGINT)::TIMESTAMP_MS)`)
      yield* query(
        `COPY (SELECT * FROM (VALUES ${values.join(", ")}) v(ts, symbol, price, size, side, trade_id, received_at)) TO '${dir}/mixed.parquet' (FORMAT parquet)`
      )
      const got = yield* readTicks(dir).pipe(Stream.runCollect)
      assert.deepStrictEqual(got, canonical([...a, ...b, ...c]))
      const onlyB = yield* readTicks(dir, { symbols: ["BBBUSDT", "CCCUSDT"] }).pipe(Stream.runCollect)
      assert.deepStrictEqual(onlyB, canonical([...b, ...c]))
    }))

  it.effect("the store writes every file in (ts, trade_id) order and marks it; reads trust only the mark", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const { query } = yield* Effect.promise(() => import("./support.ts"))
      const btc = Array.from({ length: 200 }, (_, i) => mkTick("BTCUSDT", i + 1, T + Math.floor(i / 3), 100 + (i % 7)))
      yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* TickStore.make({ dataDir: dir })
          yield* store.write(TickStore.partitionOf("BTCUSDT", T), columns("BTCUSDT", shuffle(btc, 11)))
        })
      )
      // on disk: physically sorted, and marked in the footer
      const rows = yield* query(`SELECT trade_id FROM read_parquet('${dir}/raw/**/*.parquet')`)
      assert.deepStrictEqual(rows.map((r) => Number(r.trade_id)), btc.map((t) => t.tradeId))
      const marks = yield* query(
        `SELECT decode(value) AS v FROM parquet_kv_metadata('${dir}/raw/**/*.parquet') WHERE decode(key) = '${TickStore.SORTED_KEY}'`
      )
      assert.deepStrictEqual(marks.map((r) => r.v), [TickStore.SORTED_VALUE])
      // a shuffled single-symbol file from elsewhere carries no mark: it is still read in order
      const eth = Array.from({ length: 120 }, (_, i) => mkTick("ETHUSDT", i + 1, T + 1000 + i, 50 + i))
      const values = shuffle(eth, 5)
        .map((t) => `(epoch_ms(${t.ts}::BIGINT)::TIMESTAMP_MS, '${t.symbol}', ${t.price}, ${t.size}, '${t.side}', ${t.tradeId}::BIGINT, epoch_ms(${t.receivedAt}::BIGINT)::TIMESTAMP_MS)`)
      yield* query(
        `COPY (SELECT * FROM (VALUES ${values.join(", ")}) v(ts, symbol, price, size, side, trade_id, received_at)) TO '${dir}/eth-foreign.parquet' (FORMAT parquet)`
      )
      const got = yield* readTicks(dir).pipe(Stream.runCollect)
      assert.deepStrictEqual(got, canonical([...btc, ...eth]))
    }))

  it.effect("a file DuckDB must sort is taken whole in one job, never a pool-thread hand-off per chunk; the store's sorted files stay streamed", () =>
    Effect.gen(function*() {
      const foreign = yield* tempDir()
      const own = yield* tempDir()
      // 7000 rows (4 DuckDB chunks) in shuffled order, as another tool writes them (no sorted mark)
      const d = join(foreign, "raw", "symbol=BTCUSDT", "date=2024-05-01")
      yield* Effect.promise(() => mkdir(d, { recursive: true }))
      yield* query(
        `COPY (SELECT epoch_ms((${T} + i)::BIGINT)::TIMESTAMP_MS AS ts, 'BTCUSDT' AS symbol, 100.0 + i % 13 AS price, 0.5 AS size,` +
          ` CASE WHEN i % 3 = 0 THEN 'SELL' ELSE 'BUY' END AS side, (3000000000 + i)::BIGINT AS trade_id,` +
          ` epoch_ms((${T} + i + 2)::BIGINT)::TIMESTAMP_MS AS received_at FROM range(7000) r(i) ORDER BY hash(i))` +
          ` TO '${join(d, "export-0.parquet")}' (FORMAT parquet, ROW_GROUP_SIZE 2500)`
      )
      const ticks = Array.from({ length: 7000 }, (_, i) => ({ ...mkTick("BTCUSDT", 3_000_000_000 + i, T + i, 100 + (i % 13), i % 3 === 0 ? "SELL" : "BUY"), size: 0.5, receivedAt: T + i + 2 }))
      yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* TickStore.make({ dataDir: own })
          yield* store.write(TickStore.partitionOf("BTCUSDT", T), columns("BTCUSDT", ticks))
        })
      )
      // chunks of streamed results fetched (each a job for a pool thread; the footer queries read materialized ones)
      let fetches = 0
      const fetchChunk = DuckDBResult.prototype.fetchChunk
      const spy = vi.spyOn(DuckDBResult.prototype, "fetchChunk").mockImplementation(function(this: DuckDBResult) {
        if (this.isStreaming) fetches++
        return fetchChunk.call(this)
      })
      const read = (dir: string) =>
        Effect.gen(function*() {
          fetches = 0
          const got = yield* readTicks(dir).pipe(Stream.runCollect)
          return { got, fetches }
        })
      const [fromForeign, fromOwn] = yield* Effect.all([read(foreign), read(own)]).pipe(Effect.ensuring(Effect.sync(() => spy.mockRestore())))
      assert.deepStrictEqual(fromForeign.got, ticks)
      assert.deepStrictEqual(fromOwn.got, ticks)
      assert.strictEqual(fromForeign.fetches, 0)
      assert.isAtLeast(fromOwn.fetches, 4)
    }))
})
