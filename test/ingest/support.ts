/** Ingest against the simulator over loopback: recorders for market.raw, market.gaps and dlq, the store, checks. */
import { Duration, Effect, Fiber, Layer, Redacted, Stream } from "effect"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { DeadLetter, MarketGap, Tick } from "../../src/domain/Messages.ts"
import { DeadLetters, MarketGaps, MarketRaw } from "../../src/domain/Topics.ts"
import { defaultIngestOptions, type IngestOptions, runIngest } from "../../src/ingest/Ingest.ts"
import { Health } from "../../src/observability/Health.ts"
import { SIM_API_KEY, SIM_API_SECRET, type SimExchange } from "../../src/sim/SimExchange.ts"
import { defaultStoreOptions, runStore, STORE_GROUP } from "../../src/storage/StoreService.ts"
import { query } from "../storage/support.ts"

export const exchangeOptions = (sim: SimExchange, overrides: Partial<BinanceExchange.BinanceExchangeOptions> = {}) => ({
  wsBaseUrl: sim.wsBaseUrl,
  restBaseUrl: sim.restBaseUrl,
  apiKey: Redacted.make(SIM_API_KEY),
  apiSecret: Redacted.make(SIM_API_SECRET),
  recvWindowMs: 5000,
  httpTimeout: Duration.seconds(5),
  idleTimeout: Duration.seconds(30),
  closeTimeout: Duration.seconds(3),
  ...overrides
})

/** Exchange + Health over one in-memory bus (the bus is exposed too, so tests can subscribe). */
export const ingestServices = (sim: SimExchange, overrides: Partial<BinanceExchange.BinanceExchangeOptions> = {}) =>
  Layer.mergeAll(BinanceExchange.layerOptions(exchangeOptions(sim, overrides)), Health.layer("test")).pipe(
    Layer.provideMerge(InMemoryBus.layerTest())
  )

export const testIngestOptions = (overrides: Partial<IngestOptions> = {}): IngestOptions => ({
  ...defaultIngestOptions,
  backfillTimeout: Duration.seconds(10),
  stopTimeout: Duration.seconds(5),
  ...overrides
})

/** Records market.raw, market.gaps and dlq from the start (subscribed before anything is published). */
export const record = Effect.gen(function*() {
  const bus = yield* Bus
  const ticks: Array<Tick> = []
  const gaps: Array<MarketGap> = []
  const letters: Array<DeadLetter> = []
  yield* bus.subscribe(MarketRaw, { group: "rec-ticks" }).pipe(Stream.runForEach((d) => Effect.sync(() => ticks.push(d.value))), Effect.forkScoped)
  yield* bus.subscribe(MarketGaps, { group: "rec-gaps" }).pipe(Stream.runForEach((d) => Effect.sync(() => gaps.push(d.value))), Effect.forkScoped)
  yield* bus.subscribe(DeadLetters, { group: "rec-dlq" }).pipe(Stream.runForEach((d) => Effect.sync(() => letters.push(d.value))), Effect.forkScoped)
  return { ticks, gaps, letters }
})

/** Starts ingest in the background; interrupting the returned fiber is the clean stop. */
export const startIngest = (symbols: ReadonlyArray<string>, options: IngestOptions) =>
  Effect.forkScoped(runIngest(symbols, options))

/** The store stage on `dataDir`, flushing within 200 ms of idle. */
export const startStore = (dataDir: string) =>
  Effect.forkScoped(runStore({ ...defaultStoreOptions, dataDir, idleFlush: Duration.millis(200), flushInterval: Duration.seconds(1) }))

/** Waits until the store has committed everything on market.raw, then stops it (its last buffers are flushed). */
export const drainStore = (store: Fiber.Fiber<unknown, unknown>) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    yield* eventuallyEffect(Effect.map(bus.lag(MarketRaw, STORE_GROUP), (lag) => lag === 0), "the store to catch up", 20_000)
    yield* Fiber.interrupt(store)
  })

/** Real-time wait (the simulator and sockets run on real time). */
export const realWait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Polls `check` every 10 ms of real time, failing after `timeoutMs`. */
export const eventuallyEffect = <E, R>(check: Effect.Effect<boolean, E, R>, what: string, timeoutMs = 15_000) =>
  Effect.gen(function*() {
    const start = Date.now()
    while (!(yield* check)) {
      if (Date.now() - start > timeoutMs) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* realWait(10)
    }
  })

export const eventually = (check: () => boolean, what: string, timeoutMs = 15_000) =>
  eventuallyEffect(Effect.sync(check), what, timeoutMs)

export const idsOf = (ticks: ReadonlyArray<Tick>, symbol: string) => ticks.filter((t) => t.symbol === symbol).map((t) => t.tradeId)

/** first..last, every id once, ascending. */
export const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i)

/** Trade ids of `symbol` stored under `dataDir`, in id order (duplicates kept, so a test sees them). */
export const storedIds = (dataDir: string, symbol: string) =>
  Effect.map(
    query(
      `SELECT trade_id FROM read_parquet('${dataDir}/raw/symbol=${symbol}/**/*.parquet', hive_partitioning = true) ORDER BY trade_id`
    ),
    (rows) => rows.map((r) => Number(r.trade_id))
  )
