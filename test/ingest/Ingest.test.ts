/** Ingest publishes what arrived together as one batch, in order, and dead-letters invalid frames on the way. */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Stream } from "effect"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus, type BusShape } from "../../src/bus/Bus.ts"
import type { Tick } from "../../src/domain/Messages.ts"
import { DeadLetters, MarketRaw } from "../../src/domain/Topics.ts"
import type { FrameResult } from "../../src/exchange/BinanceCodec.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { defaultIngestOptions, runIngest } from "../../src/ingest/Ingest.ts"
import { Health } from "../../src/observability/Health.ts"

const tick = (i: number): Tick => ({
  symbol: "BTCUSDT",
  price: 100 + i,
  size: 1,
  side: "BUY",
  tradeId: i,
  ts: 1_000 + i,
  receivedAt: 1_001 + i
})

/** One connection that delivers `frames` as a single chunk, then stays open until it is closed. */
const exchangeOf = (frames: ReadonlyArray<FrameResult>) =>
  Layer.succeed(Exchange, {
    trades: (_symbols: ReadonlyArray<string>, options?: { readonly close?: Effect.Effect<void> }) =>
      Stream.concat(Stream.fromArray(frames), options?.close === undefined ? Stream.never : Stream.drain(Stream.fromEffect(options.close))),
    placeOrder: () => Effect.die("unused"),
    queryOrder: () => Effect.die("unused"),
    orderTrades: () => Effect.die("unused"),
    historicalTrades: () => Effect.die("unused"),
    exchangeInfo: () => Effect.die("unused"),
    syncTime: Effect.die("unused"),
    usage: Effect.succeed({})
  } as never)

describe("Ingest", () => {
  it.effect("publishes a burst of frames as one batch, in order, dead-lettering invalid frames", () =>
    Effect.gen(function*() {
      const inner = InMemoryBus.makeInMemoryBus()
      const sizes: Array<number> = []
      const bus: BusShape = {
        ...inner,
        publishAll: (topic, messages) => {
          if (topic.name === MarketRaw.name) sizes.push(messages.length)
          return inner.publishAll(topic, messages)
        }
      }
      const frames: Array<FrameResult> = []
      for (let i = 1; i <= 200; i++) {
        frames.push({ _tag: "Tick", tick: tick(i) })
        if (i === 50) frames.push({ _tag: "Invalid", reason: "not_json", error: "not JSON", raw: "{oops" })
        if (i === 60) frames.push({ _tag: "Ignored" })
      }
      const fiber = yield* runIngest(["BTCUSDT"], defaultIngestOptions).pipe(
        Effect.provide(Layer.mergeAll(Health.layer("test"), exchangeOf(frames)).pipe(Layer.provideMerge(Layer.succeed(Bus, bus)))),
        Effect.forkChild
      )
      const got = yield* inner.subscribe(MarketRaw, { group: "t" }).pipe(Stream.take(200), Stream.runCollect)
      yield* Fiber.interrupt(fiber)
      assert.deepStrictEqual(got.map((d) => d.value.tradeId), Array.from({ length: 200 }, (_, i) => i + 1))
      assert.deepStrictEqual(sizes, [200])
      const letters = yield* inner.subscribe(DeadLetters, { group: "d", ephemeral: true }).pipe(Stream.take(1), Stream.runCollect)
      assert.strictEqual(letters[0].value.raw, "{oops")
    }))
})
