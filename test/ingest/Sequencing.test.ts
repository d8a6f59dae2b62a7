/**
 * The ingest loop's rules with a scripted exchange: resume points (fresh, too old, ids gone backwards), the bound on
 * live trades waiting behind a slow backfill, and exchanges that no longer have the ids.
 */
import { assert, describe, it } from "@effect/vitest"
import { Duration, Effect, Layer, References, Stream } from "effect"
import { makeInMemoryBus } from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { MarketGap, Tick } from "../../src/domain/Messages.ts"
import { MarketGaps, MarketRaw, type Topic } from "../../src/domain/Topics.ts"
import type { FrameResult } from "../../src/exchange/BinanceCodec.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { defaultIngestOptions, type IngestOptions, ingestFrames } from "../../src/ingest/Ingest.ts"
import { Health } from "../../src/observability/Health.ts"

const S = "BTCUSDT"
const NOW = 1_800_000_000_000

const trade = (id: number, receivedAt = NOW): Tick => ({ symbol: S, price: 100, size: 1, side: "BUY", tradeId: id, ts: NOW - 1000 + id, receivedAt })
const frames = (ids: ReadonlyArray<number>): Array<FrameResult> => ids.map((id) => ({ _tag: "Tick", tick: trade(id) }))
const range = (a: number, b: number) => Array.from({ length: b - a + 1 }, (_, i) => a + i)

/** historicalTrades that has ids from `oldest` on, answering after `delayMs` (real time). */
const exchange = (oldest: number, delayMs = 0, calls: Array<number> = []) =>
  Layer.succeed(Exchange, {
    trades: () => Stream.empty,
    historicalTrades: (_symbol: string, fromId: number, limit: number) =>
      Effect.promise(() => new Promise<void>((r) => setTimeout(r, delayMs))).pipe(
        Effect.andThen(Effect.sync(() => {
          calls.push(fromId)
          const from = Math.max(fromId, oldest)
          return range(from, from + limit - 1).map((id) => trade(id, 0))
        }))
      ),
    placeOrder: () => Effect.die("unused"),
    queryOrder: () => Effect.die("unused"),
    orderTrades: () => Effect.die("unused"),
    exchangeInfo: () => Effect.die("unused"),
    syncTime: Effect.die("unused"),
    usage: Effect.succeed({})
  } as never)

const run = (input: Stream.Stream<FrameResult>, options: Partial<IngestOptions>, ex: Layer.Layer<Exchange>) =>
  Effect.gen(function*() {
    const bus = makeInMemoryBus()
    yield* ingestFrames([S], input, { ...defaultIngestOptions, ...options }).pipe(
      Effect.provide(Layer.mergeAll(Health.layer("t"), ex).pipe(Layer.provideMerge(Layer.succeed(Bus, bus))))
    )
    const all = <A>(topic: Topic<A>) =>
      Effect.gen(function*() {
        const end = (yield* bus.endOffsets(topic)).get(0) ?? 0
        if (end === 0) return [] as Array<A>
        return (yield* bus.subscribe(topic, { group: "r", ephemeral: true }).pipe(Stream.take(end), Stream.runCollect)).map((d) => d.value)
      })
    const ticks = yield* all(MarketRaw)
    const gaps: ReadonlyArray<MarketGap> = yield* all(MarketGaps)
    return { ids: ticks.map((t) => t.tradeId), gaps }
  }).pipe(Effect.provideService(References.MinimumLogLevel, "None"))

describe("ingest sequencing", () => {
  it.live("resumes right after the stored trade: the hole before the first live trade is backfilled", () =>
    Effect.gen(function*() {
      const out = yield* run(Stream.fromIterable(frames([50, 51, 52])), { resume: Effect.succeed(new Map([[S, { tradeId: 10, ts: Date.now() - 60_000 }]])) }, exchange(1))
      assert.deepStrictEqual(out.ids, range(11, 52))
      assert.deepStrictEqual(out.gaps, [])
    }))

  it.live("a stored trade older than INGEST_BACKFILL_MAX: the hole is reported as a MarketGap, not fetched", () =>
    Effect.gen(function*() {
      const calls: Array<number> = []
      const out = yield* run(
        Stream.fromIterable(frames([50, 51])),
        { resume: Effect.succeed(new Map([[S, { tradeId: 10, ts: Date.now() - 2 * 3_600_000 }]])), backfillMax: Duration.hours(1) },
        exchange(1, 0, calls)
      )
      assert.deepStrictEqual(out.ids, [50, 51])
      assert.deepStrictEqual(out.gaps.map((g) => [g.firstMissing, g.lastMissing]), [[11, 49]])
      assert.match(out.gaps[0].reason, /older than 1h/)
      assert.deepStrictEqual(calls, [])
    }))

  it.live("ids gone backwards since the stored trade (another exchange, a reset simulator): live data is taken, not dropped", () =>
    Effect.gen(function*() {
      const out = yield* run(Stream.fromIterable(frames([5, 6, 7])), { resume: Effect.succeed(new Map([[S, { tradeId: 1000, ts: Date.now() }]])) }, exchange(1))
      assert.deepStrictEqual(out.ids, [5, 6, 7])
    }))

  it.live("ids the exchange no longer has become a MarketGap; the rest of the hole is filled", () =>
    Effect.gen(function*() {
      const out = yield* run(Stream.fromIterable(frames([1, 2, 40, 41])), {}, exchange(30))
      assert.deepStrictEqual(out.ids, [1, 2, ...range(30, 41)])
      assert.deepStrictEqual(out.gaps.map((g) => [g.firstMissing, g.lastMissing, g.reason]), [[3, 29, "the exchange no longer has these trades"]])
    }))

  it.live("more live trades waiting than INGEST_BACKFILL_BUFFER: the backfill stops, the rest is a MarketGap, live data goes on", () =>
    Effect.gen(function*() {
      // a gap of 5,000 ids (5 pages of 50 ms each) while 20 live trades arrive: the buffer holds 10
      const live = Stream.fromIterable(frames([1, 5002])).pipe(
        Stream.concat(Stream.fromIterable(range(5003, 5022)).pipe(Stream.mapEffect((id) => Effect.as(Effect.sleep("5 millis"), { _tag: "Tick", tick: trade(id) } as FrameResult))))
      )
      const out = yield* run(live, { backfillBuffer: 10, backfillTimeout: Duration.seconds(30) }, exchange(1, 50))
      assert.strictEqual(out.gaps.length, 1)
      assert.match(out.gaps[0].reason, /more than 10 live trades waited/)
      assert.strictEqual(out.gaps[0].lastMissing, 5001)
      assert.isBelow(out.gaps[0].firstMissing, 5001, "part of the hole was filled before the bound hit")
      assert.deepStrictEqual(out.ids, [1, ...range(2, out.gaps[0].firstMissing - 1), ...range(5002, 5022)])
    }))
})
