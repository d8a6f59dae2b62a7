import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Layer, Ref } from "effect"
import { TestClock } from "effect/testing"
import { spawn } from "node:child_process"
import { mkdir, readdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Tick } from "../../src/domain/Messages.ts"
import { MarketRaw } from "../../src/domain/Topics.ts"
import type { Delivery } from "../../src/bus/Bus.ts"
import { defaultStoreOptions, makeStoreSink, runStore, runStoreWith, STORE_GROUP, type StoreOptions } from "../../src/storage/StoreService.ts"
import * as TickStore from "../../src/storage/TickStore.ts"
import { eventually, mkTick, query, tempDir } from "./support.ts"

const T0 = Date.UTC(2024, 0, 1, 23, 59, 58) // 2024-01-01T23:59:58Z
const BIG = 3_000_000_000 // trade ids past 2^31

const listParquet = (root: string) =>
  Effect.promise(async () => {
    const all = await readdir(root, { recursive: true }).catch(() => [] as Array<string>)
    return all.filter((p) => p.endsWith(".parquet") || p.endsWith(".tmp")).sort()
  })

const options = (dataDir: string, over: Partial<StoreOptions> = {}): StoreOptions => ({ ...defaultStoreOptions, dataDir, ...over })

/** A TickStore whose writes are scripted per call (n = 1, 2, …), for the sink's background-write tests. */
const scriptedStore = (write: (n: number, key: TickStore.PartitionKey, columns: TickStore.TickColumns) => Effect.Effect<TickStore.WrittenFile, TickStore.StoreError>) =>
  Effect.map(Ref.make(0), (calls) =>
    Layer.succeed(
      TickStore.TickStore,
      TickStore.TickStore.of({
        dataDir: "memory",
        cleanTemp: Effect.succeed([]),
        write: (key, columns) => Effect.flatMap(Ref.updateAndGet(calls, (k) => k + 1), (n) => write(n, key, columns))
      })
    ))

/** A BTCUSDT delivery at `offset` (trade id offset + 1) whose commit records its offset in `committed`. */
const deliveryTo = (committed: Array<number>) => (offset: number): Delivery<Tick> => ({
  topic: MarketRaw.name,
  key: "BTCUSDT",
  value: mkTick("BTCUSDT", offset + 1, T0 + offset, 100),
  partition: 0,
  assignment: 1,
  assigned: Effect.succeed(true),
  offset,
  commit: Effect.sync(() => void committed.push(offset))
})

describe("tick store", () => {
  it.effect("writes a Hive tree by symbol and UTC date, hourly files, read back by DuckDB with exact types and values", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const bus = yield* Bus
      const ticks: Array<Tick> = []
      // BTC: 23:59:58, 23:59:59 (Jan 1), then 00:00:00.., and one at 01:30 (Jan 2); ETH interleaved
      for (let i = 0; i < 6; i++) ticks.push(mkTick("BTCUSDT", BIG + i, T0 + i * 1000, 42_000.5 + i / 4, i % 2 === 0 ? "BUY" : "SELL"))
      ticks.push(mkTick("BTCUSDT", BIG + 6, Date.UTC(2024, 0, 2, 1, 30), 41_999.25))
      for (let i = 0; i < 3; i++) ticks.push(mkTick("ETHUSDT", 77 + i, T0 + i * 1500, 2_250.125 + i))
      const store = yield* runStore(options(dir)).pipe(Effect.forkChild)
      yield* Effect.yieldNow
      yield* bus.publishAll(MarketRaw, ticks.map((t) => ({ key: t.symbol, value: t })))
      // the DuckDB layer opens on real time: keep moving the test clock until the idle flush has committed everything
      yield* eventually(TestClock.adjust("1 second").pipe(Effect.andThen(bus.lag(MarketRaw, STORE_GROUP)), Effect.map((n) => n === 0)))
      yield* Fiber.interrupt(store)

      const files = yield* listParquet(join(dir, "raw"))
      assert.deepStrictEqual(
        files.map((f) => f.replace(/part-(\d\d)-(\d+)-(\d+)\.parquet$/, "part-$1-$2-$3")),
        [
          `symbol=BTCUSDT/date=2024-01-01/part-23-${BIG}-${BIG + 1}`,
          `symbol=BTCUSDT/date=2024-01-02/part-00-${BIG + 2}-${BIG + 5}`,
          `symbol=BTCUSDT/date=2024-01-02/part-01-${BIG + 6}-${BIG + 6}`,
          "symbol=ETHUSDT/date=2024-01-01/part-23-77-78",
          "symbol=ETHUSDT/date=2024-01-02/part-00-79-79"
        ]
      )
      const glob = `read_parquet('${dir}/raw/**/*.parquet', hive_partitioning = true)`
      const types = yield* query(`SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM ${glob})`)
      assert.deepStrictEqual(
        Object.fromEntries(types.map((r) => [r.column_name, r.column_type])),
        {
          ts: "TIMESTAMP",
          symbol: "VARCHAR",
          price: "DOUBLE",
          size: "DOUBLE",
          side: "VARCHAR",
          trade_id: "BIGINT",
          received_at: "TIMESTAMP",
          date: "DATE"
        }
      )
      const schema = yield* query(`SELECT name, converted_type FROM parquet_schema('${dir}/raw/symbol=ETHUSDT/date=2024-01-01/*.parquet')`)
      assert.strictEqual(schema.find((r) => r.name === "ts")?.converted_type, "TIMESTAMP_MILLIS")
      const rows = yield* query(
        `SELECT epoch_ms(ts) AS ts, symbol, price, size, side, trade_id, epoch_ms(received_at) AS received_at, strftime(date, '%Y-%m-%d') AS date
         FROM ${glob} ORDER BY symbol, trade_id`
      )
      const expected = [...ticks].sort((a, b) => a.symbol.localeCompare(b.symbol) || a.tradeId - b.tradeId)
      assert.strictEqual(rows.length, ticks.length)
      assert.deepStrictEqual(
        rows.map((r) => ({ ...r, ts: Number(r.ts), trade_id: Number(r.trade_id), received_at: Number(r.received_at) })),
        expected.map((t) => ({
          ts: t.ts,
          symbol: t.symbol,
          price: t.price,
          size: t.size,
          side: t.side,
          trade_id: t.tradeId,
          received_at: t.receivedAt,
          date: new Date(t.ts).toISOString().slice(0, 10)
        }))
      )
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("flushes on size, on time (Clock) and on shutdown, committing only what is in a closed file", () =>
    Effect.gen(function*() {
      const written = yield* Ref.make<ReadonlyArray<{ key: TickStore.PartitionKey; rows: number; tradeIds: ReadonlyArray<number> }>>([])
      const bus = yield* Bus
      const lag = bus.lag(MarketRaw, STORE_GROUP)
      const publish = (ids: ReadonlyArray<number>) =>
        bus.publishAll(MarketRaw, ids.map((i) => ({ key: "BTCUSDT", value: mkTick("BTCUSDT", i, T0 + 5000 + i, 100) })))
      const settle = Effect.gen(function*() {
        for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      })
      const store = yield* runStoreWith(
        options("unused", { flushRows: 5, flushInterval: Duration.seconds(60), idleFlush: Duration.hours(1) })
      ).pipe(Effect.provide(TickStore.layerTest(written)), Effect.forkChild)
      yield* settle
      yield* publish([1, 2, 3, 4, 5, 6, 7])
      yield* settle
      // size: the first 5 are in a file and committed; 6 and 7 wait in the buffer, uncommitted
      assert.deepStrictEqual((yield* Ref.get(written)).map((w) => w.tradeIds), [[1, 2, 3, 4, 5]])
      assert.strictEqual(yield* lag, 2)
      yield* TestClock.adjust("59 seconds")
      yield* settle
      assert.strictEqual((yield* Ref.get(written)).length, 1, "not yet 60 s old")
      yield* TestClock.adjust("1 second")
      yield* settle
      assert.deepStrictEqual((yield* Ref.get(written)).map((w) => w.tradeIds), [[1, 2, 3, 4, 5], [6, 7]])
      assert.strictEqual(yield* lag, 0)
      // shutdown: what is buffered is written before the stage stops
      yield* publish([8, 9])
      yield* settle
      assert.strictEqual(yield* lag, 2)
      yield* Fiber.interrupt(store)
      assert.deepStrictEqual((yield* Ref.get(written)).map((w) => w.tradeIds).at(-1), [8, 9])
      assert.strictEqual(yield* lag, 0)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("full buffers are written in the background: commits wait for their files, a failed write fails the sink and commits nothing of it", () =>
    Effect.gen(function*() {
      const committed: Array<number> = []
      const release = yield* Deferred.make<void>()
      // write 1 waits for `release`; write 2 fails; the rest succeed
      const store = yield* scriptedStore((n, key, columns) =>
        Effect.gen(function*() {
          if (n === 1) yield* Deferred.await(release)
          if (n === 2) return yield* new TickStore.StoreError({ operation: "copy", path: "x", message: "disk full" })
          return { path: `${key.symbol}-${n}`, rows: columns.length, bytes: 0 }
        })
      )
      const delivery = deliveryTo(committed)
      yield* Effect.scoped(
        Effect.gen(function*() {
          const sink = yield* makeStoreSink({ flushRows: 3, flushInterval: Duration.hours(1), idleFlush: Duration.hours(1) })
          // 0..2 fill a buffer: written in the background (held by `release`), the sink goes on buffering 3, 4
          yield* sink.offer([0, 1, 2, 3, 4].map(delivery))
          assert.deepStrictEqual(committed, [], "nothing is committed before its file is renamed")
          assert.strictEqual(yield* sink.buffered, 2)
          yield* Deferred.succeed(release, undefined)
          for (let i = 0; i < 20 && committed.length === 0; i++) yield* Effect.yieldNow
          assert.deepStrictEqual(committed, [2], "the background write commits its last delivery once its file is in place")
          // 3..5 fill the next buffer; its write fails: the error comes out of the sink, 3..5 stay uncommitted
          yield* sink.offer([5].map(delivery))
          const failed = yield* sink.flushAll("shutdown").pipe(Effect.exit)
          assert.isTrue(Exit.isFailure(failed))
          assert.deepStrictEqual(committed, [2])
        }).pipe(Effect.provide(store))
      )
    }))

  it.effect("a background write that failed fails the next offer before it buffers anything; a batch's mid-batch flush still writes, commits and buffers the rest", () =>
    Effect.gen(function*() {
      const committed: Array<number> = []
      const files: Array<ReadonlyArray<number>> = []
      const release = yield* Deferred.make<void>()
      // write 1 succeeds, write 2 waits for `release` and then fails
      const store = yield* scriptedStore((n, key, columns) =>
        Effect.gen(function*() {
          if (n === 2) {
            yield* Deferred.await(release)
            return yield* new TickStore.StoreError({ operation: "copy", path: "x", message: "disk full" })
          }
          files.push(Array.from(columns.tradeId.subarray(0, columns.length)))
          return { path: `${key.symbol}-${n}`, rows: columns.length, bytes: 0 }
        })
      )
      const delivery = deliveryTo(committed)
      yield* Effect.scoped(
        Effect.gen(function*() {
          const sink = yield* makeStoreSink({ flushRows: 2, flushInterval: Duration.hours(1), idleFlush: Duration.hours(1) })
          // one batch, two full buffers: 0..1 written (file 1), 2..3 written behind (held, then fails), 4 buffered
          yield* sink.offer([0, 1, 2, 3, 4].map(delivery))
          for (let i = 0; i < 20 && committed.length === 0; i++) yield* Effect.yieldNow
          assert.deepStrictEqual(files, [[1, 2]])
          assert.deepStrictEqual(committed, [1], "only the file in place is committed")
          assert.strictEqual(yield* sink.buffered, 1)
          yield* Deferred.succeed(release, undefined)
          for (let i = 0; i < 20; i++) yield* Effect.yieldNow
          const next = yield* sink.offer([5].map(delivery)).pipe(Effect.exit)
          assert.isTrue(Exit.isFailure(next), "the failed write comes out of the next offer")
          assert.strictEqual(yield* sink.buffered, 1, "the failing offer buffered nothing")
          assert.deepStrictEqual(committed, [1], "nothing of the failed file, nor after it, is committed")
        }).pipe(Effect.provide(store))
      )
    }))

  it.effect("rotates per partition per hour: an hour's file is written once the next hour arrives", () =>
    Effect.gen(function*() {
      const written = yield* Ref.make<ReadonlyArray<{ key: TickStore.PartitionKey; rows: number; tradeIds: ReadonlyArray<number> }>>([])
      const bus = yield* Bus
      const h10 = Date.UTC(2024, 4, 5, 10, 59, 59)
      const store = yield* runStoreWith(options("unused", { idleFlush: Duration.hours(1) })).pipe(
        Effect.provide(TickStore.layerTest(written)),
        Effect.forkChild
      )
      yield* Effect.yieldNow
      yield* bus.publishAll(MarketRaw, [
        { key: "BTCUSDT", value: mkTick("BTCUSDT", 1, h10, 100) },
        { key: "ETHUSDT", value: mkTick("ETHUSDT", 1, h10, 100) },
        { key: "BTCUSDT", value: mkTick("BTCUSDT", 2, h10 + 2000, 100) }
      ])
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      const w = yield* Ref.get(written)
      assert.deepStrictEqual(w.map((x) => [x.key.symbol, x.key.date, x.key.hour, x.tradeIds]), [["BTCUSDT", "2024-05-05", "10", [1]]])
      yield* Fiber.interrupt(store)
      assert.strictEqual((yield* Ref.get(written)).length, 3)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.live("a crash mid-write leaves no unreadable *.parquet file; the stale temporary file is cleaned on start", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      const child = spawn(process.execPath, [join(import.meta.dirname, "crash-writer.ts"), dir], { stdio: ["ignore", "pipe", "inherit"] })
      const killed = yield* Effect.promise(
        () =>
          new Promise<string>((resolve) => {
            let out = ""
            child.stdout.on("data", (b: Buffer) => {
              out += b.toString()
              // killed while the second, large file is being written
              if (out.includes("writing 2")) setTimeout(() => child.kill("SIGKILL"), 150)
            })
            child.on("exit", () => resolve(out))
          })
      )
      assert.include(killed, "written 1")
      assert.notInclude(killed, "written 2", "the child must die mid-write for this test to mean anything")
      const files = yield* listParquet(join(dir, "raw"))
      const complete = files.filter((f) => f.endsWith(".parquet"))
      assert.deepStrictEqual(complete.length, 1)
      const rows = yield* query(`SELECT count(*)::INT AS n FROM read_parquet('${dir}/raw/**/*.parquet', hive_partitioning = true)`)
      assert.strictEqual(rows[0].n, 1000)
      const removed = yield* Effect.scoped(
        Effect.gen(function*() {
          const store = yield* TickStore.make({ dataDir: dir })
          return yield* store.cleanTemp
        })
      )
      assert.deepStrictEqual(yield* listParquet(join(dir, "raw")), complete)
      assert.isAtMost(removed.length, 1)
    }))
})

describe("retention", () => {
  it.effect("removes only date partitions older than the cutoff, and logs each", () =>
    Effect.gen(function*() {
      const { sweep, retentionCutoff } = yield* Effect.promise(() => import("../../src/storage/Retention.ts"))
      const dir = yield* tempDir()
      const days = ["2024-01-01", "2024-01-06", "2024-01-07", "2024-01-10"]
      for (const s of ["BTCUSDT", "ETHUSDT"]) {
        for (const d of days) {
          const p = join(dir, "raw", `symbol=${s}`, `date=${d}`)
          yield* Effect.promise(() => mkdir(p, { recursive: true }).then(() => writeFile(join(p, "part-00-1-1.parquet"), "x")))
        }
      }
      yield* Effect.promise(() => mkdir(join(dir, "raw", "notes", "date=2020-01-01"), { recursive: true }))
      yield* TestClock.setTime(Date.UTC(2024, 0, 10, 12))
      assert.strictEqual(retentionCutoff(Date.UTC(2024, 0, 10, 12), 3), "2024-01-07")
      const removed = yield* sweep(dir, 3)
      assert.deepStrictEqual(
        removed.map((p) => p.slice(dir.length + 1)).sort(),
        [
          "raw/symbol=BTCUSDT/date=2024-01-01",
          "raw/symbol=BTCUSDT/date=2024-01-06",
          "raw/symbol=ETHUSDT/date=2024-01-01",
          "raw/symbol=ETHUSDT/date=2024-01-06"
        ]
      )
      const left = yield* Effect.promise(() => readdir(join(dir, "raw"), { recursive: true }))
      assert.deepStrictEqual(
        left.filter((p) => p.includes("date=") && !p.endsWith(".parquet")).sort(),
        [
          "notes/date=2020-01-01",
          "symbol=BTCUSDT/date=2024-01-07",
          "symbol=BTCUSDT/date=2024-01-10",
          "symbol=ETHUSDT/date=2024-01-07",
          "symbol=ETHUSDT/date=2024-01-10"
        ]
      )
    }))
})
