/**
 * Backfill scenario for the benchmark runner (bench/run.ts can call `backfillScenario`; `node bench/backfill.ts`
 * runs it alone and prints JSON). Issue #10: backfill must not slow live data.
 *
 * Two symbols stream live from the simulator over loopback at `liveRate` trades/s each. BTCUSDT's socket frames are
 * held back while `gap` trades happen (a stall), so when they resume ingest finds a `gap`-trade hole and fills it
 * with historicalTrades (1000 per page) while ETHUSDT keeps streaming and BTCUSDT's live ticks wait in the buffer.
 * Measured from the gap's detection: how long until market.raw holds every id again ("whole"), the live ETHUSDT
 * ticks/s ingest published meanwhile (vs the offered rate), all ticks/s published meanwhile (backfilled + live),
 * and, with the store stage running, how long until the store has committed everything.
 *
 *   node bench/backfill.ts [gap=100000] [liveRate=1000]
 */
import { Duration, Effect, Fiber, Layer, Redacted, References, Stream } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as BinanceExchange from "../layers/BinanceExchange.ts"
import * as InMemoryBus from "../layers/InMemoryBus.ts"
import { Bus } from "../src/bus/Bus.ts"
import { MarketRaw } from "../src/domain/Topics.ts"
import { defaultIngestOptions, runIngest } from "../src/ingest/Ingest.ts"
import { Health } from "../src/observability/Health.ts"
import { SIM_API_KEY, SIM_API_SECRET } from "../src/sim/SimExchange.ts"
import { startSimExchange } from "../src/sim/SimExchange.ts"
import * as SimExchangeServer from "../src/sim/SimExchangeServer.ts"
import { defaultStoreOptions, runStore, STORE_GROUP } from "../src/storage/StoreService.ts"

export interface BackfillResult {
  readonly gapTrades: number
  readonly liveRatePerSymbol: number
  /** Gap detected → market.raw holds every BTCUSDT id up to the first live one after the gap. */
  readonly wholeOnBusSeconds: number
  /** Gap detected → the store has committed everything published so far. */
  readonly wholeInStoreSeconds: number
  /** Live ETHUSDT ticks/s published during the backfill… */
  readonly liveTicksPerSecondDuringBackfill: number
  /** …and the ETHUSDT trades/s the simulator actually emitted meanwhile (its timer slows down on a loaded machine). */
  readonly liveOfferedPerSecondDuringBackfill: number
  /** Backfilled BTCUSDT trades/s. */
  readonly backfillTradesPerSecond: number
  /** Every tick published to market.raw per second during the backfill. */
  readonly ingestTicksPerSecondDuringBackfill: number
}

const A = "BTCUSDT"
const B = "ETHUSDT"
const now = () => performance.now()
const wait = (ms: number) => Effect.promise(() => new Promise<void>((r) => setTimeout(r, ms)))

export const backfillScenario = (gap = 100_000, liveRate = 1000): Promise<BackfillResult> => {
  const dataDir = mkdtempSync(join(tmpdir(), "autotrader-backfill-"))
  const program = Effect.gen(function*() {
    const sim = yield* SimExchangeServer.make({ symbols: [A, B], ticksPerSecond: 0, historyLimit: gap + 50_000 })
    const services = Layer.mergeAll(
      BinanceExchange.layerOptions({
        wsBaseUrl: sim.wsBaseUrl,
        restBaseUrl: sim.restBaseUrl,
        apiKey: Redacted.make(SIM_API_KEY),
        apiSecret: Redacted.make(SIM_API_SECRET),
        recvWindowMs: 5000,
        httpTimeout: Duration.seconds(10),
        idleTimeout: Duration.seconds(60)
      }),
      Health.layer("bench")
    ).pipe(Layer.provideMerge(InMemoryBus.layerTest({ capacity: gap * 4 })))

    return yield* Effect.gen(function*() {
      const bus = yield* Bus
      // what market.raw receives, with the time it arrived
      const seen = { a: [] as Array<number>, b: [] as Array<number>, bAt: [] as Array<number>, all: [] as Array<number> }
      yield* bus.subscribe(MarketRaw, { group: "bench" }).pipe(
        Stream.runForEachArray((ds) =>
          Effect.sync(() => {
            const t = now()
            for (const d of ds) {
              seen.all.push(t)
              if (d.value.symbol === A) seen.a.push(d.value.tradeId)
              else {
                seen.b.push(d.value.tradeId)
                seen.bAt.push(t)
              }
            }
          }).pipe(Effect.andThen(ds[ds.length - 1].commit))
        ),
        Effect.forkScoped
      )
      const store = yield* Effect.forkScoped(runStore({ ...defaultStoreOptions, dataDir, idleFlush: Duration.millis(200) }))
      const ingest = yield* Effect.forkScoped(
        runIngest([A, B], { ...defaultIngestOptions, backfillTimeout: Duration.minutes(5), backfillBuffer: 1_000_000 })
      )

      // live trades at `liveRate` per symbol per second, in 10 ms steps
      let live = true
      const emitter = yield* Effect.forkScoped(Effect.gen(function*() {
        const perStep = Math.max(1, Math.round(liveRate / 100))
        while (live) {
          for (let i = 0; i < perStep; i++) {
            sim.emitTrade(A, 100 + (i % 7))
            sim.emitTrade(B, 50 + (i % 5))
          }
          yield* wait(10)
        }
      }))
      while (seen.a.length < 100) yield* wait(10)

      // the hole: `gap` BTCUSDT trades the socket never carries
      sim.stallMarketData(60_000)
      for (let i = 0; i < gap; i++) sim.emitTrade(A, 100 + (i % 11))
      const lastOfGap = sim.lastTradeId(A)
      sim.stallMarketData(0)
      const detected = now()
      const bOfferedBefore = sim.lastTradeId(B)
      const allBefore = seen.all.length
      const aBefore = seen.a.length

      // whole on the bus: every id from the first seen to the last of the gap (+1 live) present
      while (seen.a.length === 0 || seen.a[seen.a.length - 1] <= lastOfGap) yield* wait(5)
      const whole = now()
      const bOffered = sim.lastTradeId(B) - bOfferedBefore
      const seconds = (whole - detected) / 1000
      const ids = seen.a
      for (let i = 1; i < ids.length; i++) if (ids[i] !== ids[i - 1] + 1) throw new Error(`hole after ${ids[i - 1]}`)
      const liveB = seen.bAt.filter((t) => t >= detected && t <= whole).length
      const published = seen.all.length - allBefore
      const backfilled = seen.a.length - aBefore

      live = false
      yield* Fiber.join(emitter)
      while ((yield* bus.lag(MarketRaw, STORE_GROUP)) > 0) yield* wait(10)
      const inStore = now()
      yield* Fiber.interrupt(ingest)
      yield* Fiber.interrupt(store)
      return {
        gapTrades: gap,
        liveRatePerSymbol: liveRate,
        wholeOnBusSeconds: round(seconds),
        wholeInStoreSeconds: round((inStore - detected) / 1000),
        liveTicksPerSecondDuringBackfill: Math.round(liveB / seconds),
        liveOfferedPerSecondDuringBackfill: Math.round(bOffered / seconds),
        backfillTradesPerSecond: Math.round(backfilled / seconds),
        ingestTicksPerSecondDuringBackfill: Math.round(published / seconds)
      }
    }).pipe(Effect.provide(services))
  })
  return Effect.runPromise(
    Effect.scoped(program).pipe(
      Effect.provideService(References.MinimumLogLevel, "Error"),
      Effect.ensuring(Effect.sync(() => rmSync(dataDir, { recursive: true, force: true })))
    )
  )
}

const round = (x: number) => Math.round(x * 1000) / 1000

/**
 * Floor: the same `gap` trades paged out of the simulator by a bare loop (fetch + JSON.parse, 1000 per page, no
 * ingest, no bus): how fast historicalTrades can deliver at all on this machine.
 */
export const backfillFloor = async (gap = 100_000): Promise<number> => {
  const sim = await startSimExchange({ symbols: [A], ticksPerSecond: 0, historyLimit: gap + 1000 })
  try {
    for (let i = 0; i < gap; i++) sim.emitTrade(A, 100 + (i % 11))
    const started = now()
    let got = 0
    for (let fromId = 1; fromId <= gap; fromId += 1000) {
      const res = await fetch(`${sim.restBaseUrl}/api/v3/historicalTrades?symbol=${A}&fromId=${fromId}&limit=1000`, {
        headers: { "X-MBX-APIKEY": SIM_API_KEY }
      })
      got += (JSON.parse(await res.text()) as Array<unknown>).length
    }
    return got / ((now() - started) / 1000)
  } finally {
    await sim.close()
  }
}

const k = (x: number) => `${Math.round(x / 1000).toLocaleString("en-US")}k`
const median = (xs: ReadonlyArray<number>) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const spread = (xs: ReadonlyArray<number>, fmt: (x: number) => string) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length === 1 ? fmt(s[0]) : `**${fmt(median(s))}** (${fmt(s[0])}–${fmt(s[s.length - 1])})`
}

/** The Markdown section bench/run.ts adds (at most 3 interleaved floor/scenario pairs: each scenario takes ~20 s). */
export const benchSection = async (runs: number): Promise<string> => {
  const n = Math.max(1, Math.min(3, runs))
  const floors: Array<number> = []
  const results: Array<BackfillResult> = []
  for (let i = 0; i < n; i++) {
    floors.push(await backfillFloor())
    results.push(await backfillScenario())
  }
  const f = (pick: (r: BackfillResult) => number, fmt: (x: number) => string) => spread(results.map(pick), fmt)
  const secs = (x: number) => `${x.toFixed(1)} s`
  const whole = (x: number) => x.toLocaleString("en-US")
  return `## Backfill of a 100,000-trade gap (issue #10)

Two symbols stream live from the simulator over loopback at 1,000 trades/s each; BTCUSDT's frames are held back while
100,000 trades happen, so ingest finds a 100,000-id hole and fills it with historicalTrades (1,000 per page) while
ETHUSDT streams on and BTCUSDT's live trades wait behind the fill; the store stage runs. From the gap's detection:
time until market.raw holds every id again and until the store has committed everything; live ETHUSDT ticks/s
published during the fill against what the simulator emitted meanwhile (its timer slows on a loaded machine: a
ratio of 1 means the fill did not slow live data). **Floor**: a bare loop paging the same 100,000 trades out of the
simulator (fetch + JSON.parse, nothing else). ${n} interleaved floor/scenario pairs.

| figure | value |
|---|---|
| time until market.raw is whole | ${f((r) => r.wholeOnBusSeconds, secs)} |
| time until the store is whole | ${f((r) => r.wholeInStoreSeconds, secs)} |
| backfilled trades/s | ${f((r) => r.backfillTradesPerSecond, k)} |
| floor: bare paging trades/s | ${spread(floors, k)} |
| backfill / floor | ${(median(results.map((r) => r.backfillTradesPerSecond)) / median(floors)).toFixed(2)}× |
| all ticks/s published during the fill | ${f((r) => r.ingestTicksPerSecondDuringBackfill, whole)} |
| live ETHUSDT ticks/s published / emitted during the fill | ${f((r) => r.liveTicksPerSecondDuringBackfill, whole)} / ${f((r) => r.liveOfferedPerSecondDuringBackfill, whole)} |
`
}

if (import.meta.main) {
  const gap = Number(process.argv[2] ?? 100_000)
  const rate = Number(process.argv[3] ?? 1000)
  const floor = await backfillFloor(gap)
  const result = await backfillScenario(gap, rate)
  console.log(JSON.stringify({ ...result, floorPagingTradesPerSecond: Math.round(floor) }, null, 2))
}
