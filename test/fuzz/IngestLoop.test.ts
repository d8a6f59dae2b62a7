/**
 * The ingest loop under arbitrary frames: garbage, duplicates, out-of-order and jumping trade ids, unsubscribed
 * symbols. It never crashes; per symbol market.raw is strictly increasing; every frame is a published tick, a
 * dropped duplicate, a backfilled id or a dead letter; with a complete historicalTrades, there is no hole.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Layer, References, Stream } from "effect"
import fc from "fast-check"
import { makeInMemoryBus } from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Tick } from "../../src/domain/Messages.ts"
import { DeadLetters, MarketGaps, MarketRaw, type Topic } from "../../src/domain/Topics.ts"
import { decodeTradeFrame, type FrameResult } from "../../src/exchange/BinanceCodec.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { defaultIngestOptions, ingestFrames } from "../../src/ingest/Ingest.ts"
import { Health } from "../../src/observability/Health.ts"

const SYMBOLS = ["BTCUSDT", "ETHUSDT"]

const trade = (symbol: string, id: number): Tick => ({
  symbol,
  price: 100 + (id % 13),
  size: 1,
  side: id % 2 === 0 ? "BUY" : "SELL",
  tradeId: id,
  ts: 1_000 + id,
  receivedAt: 2_000 + id
})

const frameOf = (symbol: string, id: number) =>
  JSON.stringify({ stream: `${symbol.toLowerCase()}@trade`, data: { e: "trade", E: 1, s: symbol, t: id, p: "100.5", q: "1", T: 1_000 + id, m: id % 2 === 1 } })

/** One frame: mostly trades of the two symbols with ids near each other, some garbage and unsubscribed symbols. */
const frame = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...SYMBOLS), fc.integer({ min: 1, max: 60 })).map(([s, id]) => frameOf(s, id)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 60 }).map((id) => frameOf("XYZUSDT", id)) },
  { weight: 1, arbitrary: fc.oneof(fc.string(), fc.json({ maxDepth: 2 })) }
)

/** historicalTrades that has every id (complete) or none (every gap unfillable). */
const exchangeWith = (complete: boolean) =>
  Layer.succeed(Exchange, {
    trades: () => Stream.empty,
    historicalTrades: (symbol: string, fromId: number, limit: number) =>
      Effect.succeed(complete ? Array.from({ length: limit }, (_, i) => trade(symbol, fromId + i)) : []),
    placeOrder: () => Effect.die("unused"),
    queryOrder: () => Effect.die("unused"),
    orderTrades: () => Effect.die("unused"),
    exchangeInfo: () => Effect.die("unused"),
    syncTime: Effect.die("unused"),
    usage: Effect.succeed({})
  } as never)

const runLoop = (frames: ReadonlyArray<string>, complete: boolean) =>
  Effect.gen(function*() {
    const bus = makeInMemoryBus()
    const results: Array<FrameResult> = frames.map((f) => decodeTradeFrame(f, 5_000))
    // frames arrive in small chunks, as from a socket
    const stream = Stream.fromIterable(results).pipe(Stream.rechunk(3))
    yield* ingestFrames(SYMBOLS, stream, defaultIngestOptions).pipe(
      Effect.provide(Layer.mergeAll(Health.layer("fuzz"), exchangeWith(complete)).pipe(Layer.provideMerge(Layer.succeed(Bus, bus))))
    )
    const all = <A>(topic: Topic<A>) =>
      Effect.gen(function*() {
        const end = (yield* bus.endOffsets(topic)).get(0) ?? 0
        if (end === 0) return [] as Array<A>
        const got = yield* bus.subscribe(topic, { group: "read", ephemeral: true }).pipe(Stream.take(end), Stream.runCollect)
        return got.map((d) => d.value)
      })
    return {
      results,
      ticks: yield* all(MarketRaw),
      letters: yield* all(DeadLetters),
      gaps: yield* all(MarketGaps)
    }
  }).pipe(Effect.provideService(References.MinimumLogLevel, "None"))

describe("fuzzing the ingest loop", () => {
  for (const complete of [true, false]) {
    it(`arbitrary frames (historicalTrades ${complete ? "complete" : "empty"}): no crash, ids increasing, every frame accounted for${complete ? ", no hole" : ""}`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(frame, { minLength: 1, maxLength: 60 }), async (frames) => {
          const out = await Effect.runPromise(runLoop(frames, complete))
          const invalid = out.results.filter((r) => r._tag === "Invalid").length
          const unsubscribed = out.results.filter((r) => r._tag === "Tick" && !SYMBOLS.includes(r.tick.symbol)).length
          expect(out.letters.length).toBe(invalid + unsubscribed)
          for (const symbol of SYMBOLS) {
            const ids = out.ticks.filter((t) => t.symbol === symbol).map((t) => t.tradeId)
            for (let i = 1; i < ids.length; i++) expect(ids[i]).toBeGreaterThan(ids[i - 1])
            const live = out.results.flatMap((r) => (r._tag === "Tick" && r.tick.symbol === symbol ? [r.tick.tradeId] : []))
            if (live.length === 0) continue
            // the highest id seen is published; the first one too
            expect(ids[ids.length - 1]).toBe(Math.max(...live))
            expect(ids[0]).toBe(live[0])
            const gaps = out.gaps.filter((g) => g.symbol === symbol)
            if (complete) {
              expect(gaps).toEqual([])
              expect(ids).toEqual(Array.from({ length: ids.length }, (_, i) => ids[0] + i))
            } else {
              // every id between first and last is published or inside a reported gap, exactly once
              const covered = new Set(ids)
              for (const g of gaps) for (let id = g.firstMissing; id <= g.lastMissing; id++) {
                expect(covered.has(id)).toBe(false)
                covered.add(id)
              }
              for (let id = ids[0]; id <= ids[ids.length - 1]; id++) expect(covered.has(id)).toBe(true)
            }
          }
        }),
        { numRuns: 200 }
      )
    }, 120_000)
  }
})
