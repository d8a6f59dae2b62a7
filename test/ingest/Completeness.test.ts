/**
 * Market data with no holes, against the simulator over real sockets: cut sockets, a clean stop in the middle of a
 * burst, a restart after an outage, an unavailable backfill, a stalled socket and malformed frames.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Fiber } from "effect"
import { lastStoredTrades } from "../../src/ingest/LastStored.ts"
import { Health } from "../../src/observability/Health.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { tempDir } from "../storage/support.ts"
import {
  drainStore,
  eventually,
  idsOf,
  ingestServices,
  range,
  realWait,
  record,
  startIngest,
  startStore,
  storedIds,
  testIngestOptions
} from "./support.ts"

const A = "BTCUSDT"
const B = "ETHUSDT"

describe("market data completeness", () => {
  it.live(
    "sockets cut every few hundred ms for 4 s at 400 trades/s per symbol (≈ 60 s at Binance-like rates, cut every ~3 s): every id first..last stored once, in order",
    () =>
      Effect.gen(function*() {
        const dir = yield* tempDir("autotrader-ingest-")
        const sim = yield* SimExchangeServer.make({
          symbols: [A, B],
          ticksPerSecond: 400,
          marketFaults: { cutEveryMs: { min: 150, max: 450 } }
        })
        yield* Effect.gen(function*() {
          const rec = yield* record
          const store = yield* startStore(dir)
          const ingest = yield* startIngest([A, B], testIngestOptions())
          yield* realWait(4000)
          sim.setMarketFaults({})
          yield* realWait(300)
          yield* Fiber.interrupt(ingest)
          for (const symbol of [A, B]) {
            const ids = idsOf(rec.ticks, symbol)
            assert.isAbove(ids.length, 500, `${symbol}: enough trades went through`)
            assert.deepStrictEqual(ids, range(ids[0], ids[ids.length - 1]), `${symbol}: market.raw holds every id once, in order`)
          }
          assert.deepStrictEqual(rec.gaps, [], "every gap was filled")
          yield* drainStore(store)
          for (const symbol of [A, B]) {
            const ids = idsOf(rec.ticks, symbol)
            assert.deepStrictEqual(yield* storedIds(dir, symbol), ids, `${symbol}: the store holds every id once`)
          }
        }).pipe(Effect.provide(ingestServices(sim)))
      }),
    30_000
  )

  it.live(
    "duplicates, out-of-order ids, forced disconnects and historicalTrades answering fewer rows than asked: market.raw still holds every id once, in order",
    () =>
      Effect.gen(function*() {
        const sim = yield* SimExchangeServer.make({
          symbols: [A],
          ticksPerSecond: 300,
          marketFaults: { duplicateRate: 0.05, reorderRate: 0.05, maxConnectionMs: 400, historicalMaxRows: 7, historicalFailures: 2 }
        })
        yield* Effect.gen(function*() {
          const rec = yield* record
          const ingest = yield* startIngest([A], testIngestOptions())
          yield* realWait(2000)
          sim.setMarketFaults({})
          yield* realWait(200)
          yield* Fiber.interrupt(ingest)
          const ids = idsOf(rec.ticks, A)
          assert.isAbove(ids.length, 300)
          assert.deepStrictEqual(ids, range(ids[0], ids[ids.length - 1]))
          assert.deepStrictEqual(rec.gaps, [])
        }).pipe(Effect.provide(ingestServices(sim)))
      }),
    20_000
  )

  it.live("a stop in the middle of a burst: every trade the simulator sent before it received the close frame is published", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [A], ticksPerSecond: 0 })
      yield* Effect.gen(function*() {
        const rec = yield* record
        const ingest = yield* startIngest([A], testIngestOptions())
        yield* eventually(() => {
          sim.emitTrade(A, 100)
          return rec.ticks.length > 0
        }, "ingest to connect")
        sim.recordSentTrades(true)
        // a burst that is still going when the close frame leaves
        let bursting = true
        const burst = Effect.gen(function*() {
          while (bursting) {
            for (let i = 0; i < 50; i++) sim.emitTrade(A, 100 + (i % 5))
            yield* Effect.yieldNow
            yield* realWait(1)
          }
        })
        const burster = yield* Effect.forkChild(burst)
        yield* realWait(150)
        yield* Fiber.interrupt(ingest)
        // the burst goes on a little past the close handshake, so trades are emitted after the exchange saw the close
        yield* realWait(30)
        bursting = false
        yield* Fiber.join(burster)
        const sent = sim.recordSentTrades(false).map((t) => t.tradeId)
        assert.isAbove(sent.length, 50)
        const missing = () => {
          const published = new Set(idsOf(rec.ticks, A))
          return sent.filter((id) => !published.has(id))
        }
        // ingest has published them all once it stopped; the recorder reads the bus on a fiber of its own
        yield* Effect.exit(eventually(() => missing().length === 0, "the recorder to see every trade sent before the close", 5_000))
        assert.deepStrictEqual(missing(), [], "nothing the exchange sent before our close is lost")
        assert.isBelow(sent[sent.length - 1], sim.lastTradeId(A), "the burst went on after the close (the test stopped mid-burst)")
      }).pipe(Effect.provide(ingestServices(sim)))
    }), 20_000)

  it.live("a restart after a 20 s outage (20 trades/s → 400 trades) leaves no hole in the store", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("autotrader-ingest-")
      const sim = yield* SimExchangeServer.make({ symbols: [A], ticksPerSecond: 0 })
      const firstRun = Effect.gen(function*() {
        const rec = yield* record
        const store = yield* startStore(dir)
        const ingest = yield* startIngest([A], testIngestOptions())
        yield* eventually(() => {
          sim.emitTrade(A, 100)
          return rec.ticks.length >= 50
        }, "50 trades")
        yield* Fiber.interrupt(ingest)
        yield* drainStore(store)
      })
      yield* Effect.scoped(firstRun).pipe(Effect.provide(ingestServices(sim)))
      const stored = yield* lastStoredTrades(dir, [A])
      const lastBefore = stored.get(A)!.tradeId
      // the outage: 20 s of trades at 20/s that no client sees
      for (let i = 0; i < 400; i++) sim.emitTrade(A, 100 + (i % 7))
      const secondRun = Effect.gen(function*() {
        const rec = yield* record
        const store = yield* startStore(dir)
        const ingest = yield* startIngest([A], testIngestOptions({ resume: Effect.succeed(stored) }))
        const target = lastBefore + 400 + 20
        yield* eventually(() => {
          sim.emitTrade(A, 101)
          return rec.ticks.some((t) => t.tradeId >= target)
        }, "live trades after the restart")
        yield* Fiber.interrupt(ingest)
        assert.strictEqual(idsOf(rec.ticks, A)[0], lastBefore + 1, "the restart starts right after the last stored trade")
        yield* drainStore(store)
      })
      yield* Effect.scoped(secondRun).pipe(Effect.provide(ingestServices(sim)))
      const ids = yield* storedIds(dir, A)
      assert.deepStrictEqual(ids, range(ids[0], ids[ids.length - 1]), "first..last, each once, across the outage")
      assert.isAbove(ids[ids.length - 1], lastBefore + 400)
      assert.isBelow(ids[0], lastBefore - 40, "the first run's trades are there too")
    }), 30_000)

  it.live("backfill unavailable: a MarketGap is published and live data resumes within the bound", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [A], ticksPerSecond: 0, marketFaults: { historicalDown: true } })
      yield* Effect.gen(function*() {
        const rec = yield* record
        yield* startIngest([A], testIngestOptions({ backfillTimeout: Duration.millis(600) }))
        yield* eventually(() => {
          sim.emitTrade(A, 100)
          return rec.ticks.length > 0
        }, "ingest to connect")
        const before = sim.lastTradeId(A)
        sim.stallMarketData(200) // trades during the stall never reach the socket
        for (let i = 0; i < 30; i++) sim.emitTrade(A, 100)
        yield* realWait(250)
        const gapDetected = Date.now()
        yield* eventually(() => {
          sim.emitTrade(A, 102)
          return rec.gaps.length > 0
        }, "a MarketGap")
        yield* eventually(() => {
          sim.emitTrade(A, 102)
          return rec.ticks.some((t) => t.tradeId > before + 40)
        }, "live data after the gap")
        // the bound is 600 ms (+ the page in flight); the margin is for loaded CI machines
        assert.isBelow(Date.now() - gapDetected, 8000, "live data resumed within the bound")
        const gap = rec.gaps[0]
        const health = yield* (yield* Health).report
        assert.deepStrictEqual(health.marketGaps?.recent[0], gap, "/health shows the gap")
        assert.strictEqual(gap.symbol, A)
        assert.strictEqual(gap.firstMissing, before + 1)
        assert.strictEqual(gap.lastMissing, before + 30)
        const ids = idsOf(rec.ticks, A)
        assert.deepStrictEqual(ids, [...range(ids[0], before), ...range(before + 31, ids[ids.length - 1])], "in order, only the gap missing")
      }).pipe(Effect.provide(ingestServices(sim)))
    }), 20_000)

  it.live("historicalTrades answering garbage: the answer is dead-lettered (stage exchange.rest) and the gap becomes a MarketGap", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [A], ticksPerSecond: 0, marketFaults: { historicalMalformed: true } })
      yield* Effect.gen(function*() {
        const rec = yield* record
        yield* startIngest([A], testIngestOptions({ backfillTimeout: Duration.millis(500) }))
        yield* eventually(() => {
          sim.emitTrade(A, 100)
          return rec.ticks.length > 0
        }, "ingest to connect")
        sim.stallMarketData(100)
        for (let i = 0; i < 10; i++) sim.emitTrade(A, 100)
        yield* realWait(150)
        yield* eventually(() => {
          sim.emitTrade(A, 101)
          return rec.gaps.length > 0
        }, "a MarketGap")
        const letter = rec.letters.find((l) => l.stage === "exchange.rest")
        assert.isDefined(letter)
        assert.strictEqual(letter!.topic, "exchange.rest:historicalTrades")
        assert.strictEqual(letter!.reason, "schema")
        assert.include(letter!.raw, '"id":"one"')
      }).pipe(Effect.provide(ingestServices(sim)))
    }), 20_000)

  it.live("a stalled socket (no frames, no pings) is replaced by the watchdog and the stall's trades are backfilled", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [A], ticksPerSecond: 0 })
      yield* Effect.gen(function*() {
        const rec = yield* record
        yield* startIngest([A], testIngestOptions())
        yield* eventually(() => {
          sim.emitTrade(A, 100)
          return rec.ticks.length > 0
        }, "ingest to connect")
        sim.stallMarketData(1500)
        for (let i = 0; i < 20; i++) sim.emitTrade(A, 100)
        const stalledAt = sim.lastTradeId(A)
        yield* eventually(() => {
          sim.emitTrade(A, 101)
          return rec.ticks.some((t) => t.tradeId > stalledAt)
        }, "data after the stall", 10_000)
        const ids = idsOf(rec.ticks, A)
        assert.deepStrictEqual(ids, range(ids[0], ids[ids.length - 1]))
      }).pipe(Effect.provide(ingestServices(sim, { idleTimeout: Duration.millis(400) })))
    }), 20_000)

  it.live("malformed, partial, oversized and unsubscribed frames go to the dlq with a reason; the stream goes on", () =>
    Effect.gen(function*() {
      const sim = yield* SimExchangeServer.make({ symbols: [A], ticksPerSecond: 0 })
      yield* Effect.gen(function*() {
        const rec = yield* record
        yield* startIngest([A], testIngestOptions())
        yield* eventually(() => {
          sim.emitTrade(A, 100)
          return rec.ticks.length > 0
        }, "ingest to connect")
        sim.sendRawFrame("not json at all")
        sim.sendRawFrame('{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT"')
        sim.sendRawFrame(JSON.stringify({ stream: "btcusdt@trade", data: { e: "trade", pad: "x".repeat(70_000) } }))
        sim.sendRawFrame(JSON.stringify({ stream: "btcusdt@trade", data: { e: "trade", E: 1, s: "BTCUSDT", t: 5, p: "-3", q: "1", T: 1, m: true } }))
        sim.setMarketFaults({ unsubscribedRate: 1 })
        sim.emitTrade(A, 100)
        sim.setMarketFaults({})
        const last = sim.lastTradeId(A)
        for (let i = 0; i < 5; i++) sim.emitTrade(A, 101)
        yield* eventually(() => rec.ticks.some((t) => t.tradeId === last + 5) && rec.letters.length >= 5, "the stream to go on")
        assert.deepStrictEqual(
          rec.letters.map((l) => [l.stage, l.reason]),
          [["ingest", "not_json"], ["ingest", "not_json"], ["ingest", "oversized"], ["ingest", "bad_value"], ["ingest", "unsubscribed_symbol"]]
        )
        assert.strictEqual(rec.letters[0].raw, "not json at all")
        assert.isAbove(rec.letters[2].rawLength ?? 0, 70_000, "the whole length is kept")
        assert.strictEqual(rec.letters[2].raw.length, 65_536, "the raw payload is cut")
        const ids = idsOf(rec.ticks, A)
        assert.deepStrictEqual(ids, range(ids[0], last + 5))
      }).pipe(Effect.provide(ingestServices(sim)))
    }), 20_000)
})
