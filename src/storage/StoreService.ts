/**
 * The store stage: `market.raw` → Parquet files (TickStore), consumer group `store`.
 *
 * Ticks are buffered per partition (symbol × UTC hour) in typed arrays. A buffer is written as one file when it
 * reaches `flushRows`, when it is `flushInterval` old, when its hour is over (a newer hour arrived for the symbol),
 * when the input has been idle for `idleFlush` (so a drain sees lag 0 quickly) and on shutdown.
 * A delivery is committed only once every tick up to it on its bus partition is in a renamed file: the commit
 * point is the highest checkpoint below the oldest offset still buffered. A crash therefore loses nothing that
 * was committed; what was not committed is redelivered (and de-duplicated on replay).
 */
import { Clock, Config, Duration, Effect, Fiber, Metric, Scope, Semaphore, Stream } from "effect"
import { Bus, type Delivery } from "../bus/Bus.ts"
import type { BusError } from "../domain/Errors.ts"
import type { Tick } from "../domain/Messages.ts"
import { MarketRaw } from "../domain/Topics.ts"
import { LATENCY_BUCKETS_SECONDS } from "../observability/Metrics.ts"
import { makeExchangeInfoSaver } from "./ExchangeInfoFiles.ts"
import { runRetention } from "./Retention.ts"
import * as TickStoreLive from "./TickStore.ts"
import { type PartitionKey, partitionOf, type StoreError, type TickColumns, TickStore } from "./TickStore.ts"

export const STORE_GROUP = "store"

export interface StoreOptions {
  readonly enabled: boolean
  readonly dataDir: string
  /** A partition's buffer is written once it holds this many rows (also the memory bound per partition). */
  readonly flushRows: number
  /** …or once its oldest row has waited this long. */
  readonly flushInterval: Duration.Duration
  /** …or once no tick arrived for this long. */
  readonly idleFlush: Duration.Duration
  /** Delete `date=` partitions older than this many days; 0 = keep everything. */
  readonly retentionDays: number
  readonly retentionEvery: Duration.Duration
  readonly rowGroupSize: number
  readonly compression: "zstd" | "snappy" | "uncompressed"
}

export const defaultStoreOptions: StoreOptions = {
  enabled: true,
  dataDir: "./data",
  flushRows: 100_000,
  flushInterval: Duration.seconds(60),
  idleFlush: Duration.seconds(1),
  retentionDays: 0,
  retentionEvery: Duration.hours(1),
  rowGroupSize: 122_880,
  compression: "zstd"
}

export const storeOptionsConfig = Config.all({
  enabled: Config.Boolean("STORE_ENABLED").pipe(Config.withDefault(true)),
  dataDir: Config.String("DATA_DIR").pipe(Config.withDefault("./data")),
  flushRows: Config.Int("STORE_FLUSH_ROWS").pipe(Config.withDefault(100_000)),
  flushInterval: Config.Duration("STORE_FLUSH_INTERVAL").pipe(Config.withDefault(Duration.seconds(60))),
  idleFlush: Config.Duration("STORE_IDLE_FLUSH").pipe(Config.withDefault(Duration.seconds(1))),
  retentionDays: Config.Number("DATA_RETENTION_DAYS").pipe(Config.withDefault(0)),
  retentionEvery: Config.Duration("DATA_RETENTION_EVERY").pipe(Config.withDefault(Duration.hours(1))),
  rowGroupSize: Config.Int("STORE_ROW_GROUP_SIZE").pipe(Config.withDefault(122_880)),
  compression: Config.Literals(["zstd", "snappy", "uncompressed"], "STORE_COMPRESSION").pipe(Config.withDefault("zstd" as const))
})

export const rowsWritten = Metric.counter("store_rows_written_total", { description: "Ticks written to Parquet" })
export const filesWritten = Metric.counter("store_files_written_total", { description: "Parquet files written (renamed into place)" })
export const flushDurationSeconds = Metric.histogram("store_flush_duration_seconds", {
  description: "Time to write one buffer as a Parquet file",
  boundaries: LATENCY_BUCKETS_SECONDS
})

/**
 * Full buffers written in the background while the next ones fill (their DuckDB COPY overlaps the buffering), at
 * most this many at a time; their ticks stay uncommitted until their file is renamed.
 */
const WRITES_BEHIND = 2

/** Sets of buffer arrays kept for reuse once their file is written. */
const SPARE_SETS = 4

const hourOf = (key: PartitionKey): string => `${key.date}T${key.hour}`
const HOUR = 3_600_000

type ColumnArrays = Pick<TickColumns, "ts" | "price" | "size" | "buy" | "tradeId" | "receivedAt">

/** One partition's pending ticks, column by column; grows by doubling up to `flushRows`. */
export class PartitionBuffer {
  readonly key: PartitionKey
  readonly id: string
  readonly openedAt: number
  length = 0
  ts: Float64Array
  price: Float64Array
  size: Float64Array
  buy: Float64Array
  tradeId: Float64Array
  receivedAt: Float64Array
  /** bus partition → lowest offset held here */
  readonly firstOffset = new Map<number, number>()

  constructor(key: PartitionKey, openedAt: number, capacity = 1024, reuse?: ColumnArrays) {
    this.key = key
    this.id = `${key.symbol}/${hourOf(key)}`
    this.openedAt = openedAt
    this.ts = reuse?.ts ?? new Float64Array(capacity)
    this.price = reuse?.price ?? new Float64Array(capacity)
    this.size = reuse?.size ?? new Float64Array(capacity)
    this.buy = reuse?.buy ?? new Float64Array(capacity)
    this.tradeId = reuse?.tradeId ?? new Float64Array(capacity)
    this.receivedAt = reuse?.receivedAt ?? new Float64Array(capacity)
  }

  /** Its arrays, for a later buffer once this one is written (growing and zeroing them cost ~10 % of a store). */
  arrays(): ColumnArrays {
    return { ts: this.ts, price: this.price, size: this.size, buy: this.buy, tradeId: this.tradeId, receivedAt: this.receivedAt }
  }

  private grow(): void {
    const cap = this.ts.length * 2
    const g = (a: Float64Array) => {
      const b = new Float64Array(cap)
      b.set(a)
      return b
    }
    this.ts = g(this.ts)
    this.price = g(this.price)
    this.size = g(this.size)
    this.buy = g(this.buy)
    this.tradeId = g(this.tradeId)
    this.receivedAt = g(this.receivedAt)
  }

  push(tick: Tick, partition: number, offset: number): void {
    if (this.length === this.ts.length) this.grow()
    const i = this.length++
    this.ts[i] = tick.ts
    this.price[i] = tick.price
    this.size[i] = tick.size
    this.buy[i] = tick.side === "BUY" ? 1 : 0
    this.tradeId[i] = tick.tradeId
    this.receivedAt[i] = tick.receivedAt
    if (!this.firstOffset.has(partition)) this.firstOffset.set(partition, offset)
  }

  columns(): TickColumns {
    return {
      symbol: this.key.symbol,
      length: this.length,
      ts: this.ts,
      price: this.price,
      size: this.size,
      buy: this.buy,
      tradeId: this.tradeId,
      receivedAt: this.receivedAt
    }
  }
}

export type FlushReason = "size" | "time" | "rotation" | "idle" | "shutdown"

export interface StoreSinkStats {
  rows: number
  files: number
  bytes: number
}

/**
 * The store's buffering, flushing and commit bookkeeping, independent of where deliveries come from
 * (the stage feeds it from the bus; the benchmark feeds it directly).
 */
export const makeStoreSink = (
  options: Pick<StoreOptions, "flushRows" | "flushInterval" | "idleFlush">,
  /** Called after each file is renamed into place (the stage saves the day's exchangeInfo from here). */
  onFileWritten?: (key: PartitionKey) => Effect.Effect<void>
) =>
  Effect.gen(function*() {
    const store = yield* TickStore
    const buffers = new Map<string, PartitionBuffer>()
    const latestHour = new Map<string, string>()
    const lastBuffer = new Map<string, { readonly bucket: number; readonly buffer: PartitionBuffer }>()
    /** bus partition → last delivery of that partition in each batch, oldest first, not yet committed */
    const checkpoints = new Map<number, Array<Delivery<Tick>>>()
    const stats: StoreSinkStats = { rows: 0, files: 0, bytes: 0 }
    const flushIntervalMs = Duration.toMillis(options.flushInterval)
    const idleMs = Duration.toMillis(options.idleFlush)
    let lastInputAt = yield* Clock.currentTimeMillis
    const scope = yield* Scope.Scope
    /** Buffers being written in the background (size flushes); each holds back commits like a buffered one. */
    const behind = new Set<{ readonly buffer: PartitionBuffer; fiber: Fiber.Fiber<void, StoreError | BusError> | undefined }>()
    const commitLock = yield* Semaphore.make(1)

    const checkpointOf = (partition: number): Array<Delivery<Tick>> => {
      let queue = checkpoints.get(partition)
      if (queue === undefined) checkpoints.set(partition, (queue = []))
      return queue
    }

    /** The oldest offset of `partition` still buffered or being written: a checkpoint below it is safe to commit. */
    const floorOf = (partition: number): number => {
      let floor = Number.POSITIVE_INFINITY
      for (const b of buffers.values()) {
        const first = b.firstOffset.get(partition)
        if (first !== undefined && first < floor) floor = first
      }
      for (const { buffer } of behind) {
        const first = buffer.firstOffset.get(partition)
        if (first !== undefined && first < floor) floor = first
      }
      return floor
    }

    const commitSafe = Effect.gen(function*() {
      for (const [partition, queue] of checkpoints) {
        const floor = floorOf(partition)
        let safe: Delivery<Tick> | undefined
        let n = 0
        while (n < queue.length && queue[n].offset < floor) safe = queue[n++]
        if (safe !== undefined) {
          queue.splice(0, n)
          yield* safe.commit
        }
      }
    }).pipe(commitLock.withPermit)

    /** Arrays of written buffers, reused by new buffers (at most a few sets: memory stays bounded). */
    const spare: Array<ColumnArrays> = []
    const recycle = (buffer: PartitionBuffer): void => {
      if (spare.length < SPARE_SETS && buffer.ts.length >= 65_536) spare.push(buffer.arrays())
    }
    /**
     * Symbols whose last buffer filled up (flushRows): their next buffer starts at that size, not at 1,024 doubled
     * seven times (each doubling allocates, zeroes and copies six arrays: ~6 % of a store's main-thread time).
     */
    const busy = new Set<string>()
    const capacityFor = (symbol: string): number => (busy.has(symbol) ? options.flushRows : 1024)

    const writeOut = (buffer: PartitionBuffer, reason: FlushReason) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const file = yield* store.write(buffer.key, buffer.columns())
        recycle(buffer)
        const ended = yield* Clock.currentTimeMillis
        stats.rows += file.rows
        stats.files += 1
        stats.bytes += file.bytes
        yield* Metric.update(rowsWritten, file.rows)
        yield* Metric.update(filesWritten, 1)
        yield* Metric.update(flushDurationSeconds, (ended - started) / 1000)
        yield* Effect.logDebug("parquet file written", { path: file.path, rows: file.rows, bytes: file.bytes, reason, ms: ended - started })
        if (onFileWritten !== undefined) yield* onFileWritten(buffer.key)
      })

    const flush = (buffer: PartitionBuffer, reason: FlushReason) =>
      Effect.gen(function*() {
        buffers.delete(buffer.id)
        if (buffer.length === 0) return
        yield* writeOut(buffer, reason)
      })

    /** Waits until at most `max` background writes are under way; fails with the error of one that failed. */
    const awaitBehind = (max: number) =>
      Effect.gen(function*() {
        while (behind.size > max) {
          const oldest = behind.values().next().value
          if (oldest?.fiber === undefined) return
          // a write that succeeded removed itself; one that failed stays (its ticks uncommitted) and fails us here
          yield* Fiber.join(oldest.fiber)
          behind.delete(oldest)
        }
      })

    /** Raises the error of a background write that has failed, if any. */
    const checkBehind = Effect.gen(function*() {
      for (const w of behind) {
        if (w.fiber !== undefined && w.fiber.pollUnsafe() !== undefined) yield* Fiber.join(w.fiber)
      }
    })

    /** A full buffer: written in the background while buffering goes on; committed once its file is renamed. */
    const flushBehind = (buffer: PartitionBuffer) =>
      Effect.gen(function*() {
        buffers.delete(buffer.id)
        busy.add(buffer.key.symbol)
        if (buffer.length === 0) return
        yield* awaitBehind(WRITES_BEHIND - 1)
        const w: { readonly buffer: PartitionBuffer; fiber: Fiber.Fiber<void, StoreError | BusError> | undefined } = { buffer, fiber: undefined }
        behind.add(w)
        w.fiber = yield* writeOut(buffer, "size").pipe(
          Effect.andThen(Effect.suspend(() => {
            behind.delete(w)
            return commitSafe
          })),
          Effect.forkIn(scope)
        )
      })

    const flushWhere = (pred: (b: PartitionBuffer) => boolean, reason: FlushReason) =>
      Effect.gen(function*() {
        const due = [...buffers.values()].filter(pred)
        for (const b of due) yield* flush(b, reason)
        // every file written, background ones included, before this flush counts as done
        yield* awaitBehind(0)
        if (due.length > 0) yield* commitSafe
      })

    /** Is there a checkpoint below what is still buffered or being written (what `commitSafe` would commit)? */
    const commitDue = (): boolean => {
      for (const [partition, queue] of checkpoints) {
        if (queue.length > 0 && queue[0].offset < floorOf(partition)) return true
      }
      return false
    }

    /** Has a background write ended (a success removes itself, so: failed)? Then `checkBehind` raises its error. */
    const behindEnded = (): boolean => {
      for (const w of behind) if (w.fiber !== undefined && w.fiber.pollUnsafe() !== undefined) return true
      return false
    }

    /**
     * The end of a batch: checkpoints, the files of hours that are over, the commit of what is safe. Effects only
     * when there is something to do: most batches only buffer, and an `Effect.gen` per batch (a generator and a
     * handful of yields) cost more than the buffering itself.
     */
    const endBatch = (last: Map<number, Delivery<Tick>>, rotated: boolean): Effect.Effect<void, StoreError | BusError> => {
      for (const [partition, d] of last) {
        const queue = checkpointOf(partition)
        if (queue[queue.length - 1] !== d) queue.push(d)
      }
      // an hour is over for a symbol once a later hour arrived: its file is complete
      const rotation = rotated
        ? flushWhere((b) => hourOf(b.key) < (latestHour.get(b.key.symbol) ?? ""), "rotation")
        : undefined
      // let a background write move on (its DuckDB steps resume only when this fiber gives way)
      const yieldIfBehind = Effect.suspend(() => (behind.size > 0 ? Effect.yieldNow : Effect.void))
      if (rotation !== undefined) return rotation.pipe(Effect.andThen(commitSafe), Effect.andThen(yieldIfBehind))
      if (commitDue()) return commitSafe.pipe(Effect.andThen(yieldIfBehind))
      return behind.size > 0 ? Effect.yieldNow : Effect.void
    }

    /** Buffers `deliveries` from `from` on, until a buffer is full (written, then the rest) or the batch ends. */
    const offerFrom = (
      deliveries: ReadonlyArray<Delivery<Tick>>,
      from: number,
      now: number,
      last: Map<number, Delivery<Tick>>,
      rotatedBefore: boolean
    ): Effect.Effect<void, StoreError | BusError> => {
      let rotated = rotatedBefore
      for (let i = from; i < deliveries.length; i++) {
        const d = deliveries[i]
        const tick = d.value
        const bucket = Math.floor(tick.ts / HOUR)
        // fast path: same symbol and hour as this symbol's previous tick (formatting a date per tick costs a third of the time)
        const cached = lastBuffer.get(tick.symbol)
        let b = cached !== undefined && cached.bucket === bucket && buffers.get(cached.buffer.id) === cached.buffer ? cached.buffer : undefined
        if (b === undefined) {
          const key = partitionOf(tick.symbol, tick.ts)
          const hour = hourOf(key)
          const id = `${key.symbol}/${hour}`
          b = buffers.get(id)
          if (b === undefined) {
            b = new PartitionBuffer(key, now, capacityFor(key.symbol), spare.pop())
            buffers.set(id, b)
            const prev = latestHour.get(key.symbol)
            if (prev === undefined || hour > prev) {
              if (prev !== undefined) rotated = true
              latestHour.set(key.symbol, hour)
            }
          }
          lastBuffer.set(tick.symbol, { bucket, buffer: b })
        }
        b.push(tick, d.partition, d.offset)
        last.set(d.partition, d)
        if (b.length >= options.flushRows) {
          // a checkpoint here lets the commit follow a mid-batch flush instead of waiting for the batch's end
          checkpointOf(d.partition).push(d)
          const full = b
          return flushBehind(full).pipe(
            Effect.andThen(commitSafe),
            Effect.andThen(Effect.suspend(() => offerFrom(deliveries, i + 1, now, last, rotated)))
          )
        }
      }
      return endBatch(last, rotated)
    }

    /** Buffers a batch of deliveries; writes buffers that are full or whose hour is over; commits what is safe. */
    const offer = (deliveries: ReadonlyArray<Delivery<Tick>>): Effect.Effect<void, StoreError | BusError> =>
      Clock.clockWith((clock) => {
        const now = clock.currentTimeMillisUnsafe()
        const go = Effect.suspend(() => {
          lastInputAt = now
          return offerFrom(deliveries, 0, now, new Map(), false)
        })
        // a background write that failed fails this offer before anything more is buffered
        return behindEnded() ? Effect.andThen(checkBehind, go) : go
      })

    /** Called on a timer: writes buffers that waited `flushInterval`, or everything once the input went idle. */
    const onTimer = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (buffers.size === 0) return
      if (now - lastInputAt >= idleMs) return yield* flushWhere(() => true, "idle")
      yield* flushWhere((b) => now - b.openedAt >= flushIntervalMs, "time")
    })

    const flushAll = (reason: FlushReason) => flushWhere(() => true, reason)

    const buffered = Effect.sync(() => {
      let n = 0
      for (const b of buffers.values()) n += b.length
      return n
    })

    return { offer, onTimer, flushAll, buffered, stats }
  })

type Input = { readonly _tag: "Batch"; readonly deliveries: ReadonlyArray<Delivery<Tick>> } | { readonly _tag: "Timer" }

/** The stage over an already provided TickStore. */
export const runStoreWith = (options: StoreOptions) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bus = yield* Bus
      const store = yield* TickStore
      const removed = yield* store.cleanTemp
      if (removed.length > 0) yield* Effect.logWarning("removed temporary files left by an interrupted write", { files: removed })
      if (options.retentionDays > 0) {
        yield* runRetention({ dataDir: options.dataDir, retentionDays: options.retentionDays, every: options.retentionEvery }).pipe(
          Effect.forkScoped
        )
      }
      // the day's exchange filters beside its ticks, for backtests (in the background: the store never waits on the exchange)
      const saveExchangeInfo = yield* makeExchangeInfoSaver(options.dataDir)
      const scope = yield* Scope.Scope
      const saving = new Set<Fiber.Fiber<void>>()
      const sink = yield* makeStoreSink(options, (key) =>
        saveExchangeInfo(key.symbol, key.date).pipe(
          Effect.forkIn(scope),
          Effect.tap((fiber) => Effect.sync(() => {
            saving.add(fiber)
            fiber.addObserver(() => saving.delete(fiber))
          })),
          Effect.asVoid
        ))
      const check = Duration.min(options.flushInterval, options.idleFlush)
      const inputs = Stream.merge(
        bus.subscribe(MarketRaw, { group: STORE_GROUP }).pipe(
          Stream.chunks,
          Stream.map((deliveries): Input => ({ _tag: "Batch", deliveries }))
        ),
        Stream.tick(check).pipe(Stream.map((): Input => ({ _tag: "Timer" })))
      )
      yield* Effect.logInfo("tick store started", {
        dataDir: options.dataDir,
        flushRows: options.flushRows,
        flushInterval: Duration.format(options.flushInterval),
        retentionDays: options.retentionDays
      })
      yield* inputs.pipe(
        Stream.runForEach((input) => (input._tag === "Batch" ? sink.offer(input.deliveries) : sink.onTimer)),
        Effect.ensuring(
          Effect.gen(function*() {
            const pending = yield* sink.buffered
            yield* sink.flushAll("shutdown")
            // a day's exchangeInfo being saved gets a bounded moment to finish
            yield* Fiber.joinAll([...saving]).pipe(Effect.timeout("5 seconds"), Effect.ignore)
            yield* Effect.logInfo("tick store stopped", { flushedOnShutdown: pending, rows: sink.stats.rows, files: sink.stats.files })
          }).pipe(Effect.catch((e) => Effect.logError("flush on shutdown failed; uncommitted ticks will be redelivered", { error: e })))
        )
      )
    })
  ).pipe(Effect.annotateLogs({ stage: "store" }))

/** The stage with its own DuckDB-backed TickStore (what `autotrader run` starts). */
export const runStore = (options: StoreOptions) =>
  runStoreWith(options).pipe(
    Effect.provide(
      TickStoreLive.layer({ dataDir: options.dataDir, rowGroupSize: options.rowGroupSize, compression: options.compression })
    )
  )
