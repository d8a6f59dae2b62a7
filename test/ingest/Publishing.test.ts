/**
 * The ingest loop does not hold the exchange's frames for the broker's answer: ticks decoded while a publish is in
 * flight leave together in the next one, in order; a failed publish ends the stage and nothing after it is sent.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, References, Stream } from "effect"
import { makeInMemoryBus } from "../../layers/InMemoryBus.ts"
import { Bus, type BusShape } from "../../src/bus/Bus.ts"
import { BusError } from "../../src/domain/Errors.ts"
import type { Tick } from "../../src/domain/Messages.ts"
import { MarketRaw } from "../../src/domain/Topics.ts"
import type { FrameResult } from "../../src/exchange/BinanceCodec.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { defaultIngestOptions, ingestFrames } from "../../src/ingest/Ingest.ts"
import { Health } from "../../src/observability/Health.ts"

const S = "BTCUSDT"
const trade = (id: number): Tick => ({ symbol: S, price: 100, size: 1, side: "BUY", tradeId: id, ts: 1_800_000_000_000 + id, receivedAt: 0 })

/** One frame per chunk, each recorded when the ingest loop takes it; market.raw publishes recorded, the first one slow. */
const harness = (failFirst: boolean) => {
  const inner = makeInMemoryBus()
  const taken: Array<number> = []
  const publishes: Array<{ ids: Array<number>; takenWhileInFlight: number }> = []
  const settle = Effect.repeat(Effect.yieldNow, { times: 50 })
  const bus: BusShape = {
    ...inner,
    publishAll: (topic, messages) =>
      Effect.gen(function*() {
        if (topic.name !== MarketRaw.name) return yield* inner.publishAll(topic, messages)
        const call = { ids: messages.map((m) => (m.value as Tick).tradeId), takenWhileInFlight: taken.length }
        publishes.push(call)
        if (publishes.length === 1) {
          yield* settle // the answer takes a while: what does the loop do meanwhile?
          call.takenWhileInFlight = taken.length - call.takenWhileInFlight
          if (failFirst) return yield* Effect.fail(new BusError({ operation: "publish", topic: topic.name, message: "refused" }))
        }
        return yield* inner.publishAll(topic, messages)
      })
  }
  const frames = Stream.fromIterable([1, 2, 3, 4]).pipe(
    Stream.rechunk(1),
    Stream.tap((id) => Effect.sync(() => taken.push(id))),
    Stream.map((id): FrameResult => ({ _tag: "Tick", tick: trade(id) }))
  )
  const run = ingestFrames([S], frames, { ...defaultIngestOptions, resume: Effect.succeed(new Map()) }).pipe(
    Effect.provide(Layer.mergeAll(Health.layer("t"), Layer.succeed(Exchange, {} as never)).pipe(Layer.provideMerge(Layer.succeed(Bus, bus)))),
    Effect.provideService(References.MinimumLogLevel, "None")
  )
  const published = Effect.gen(function*() {
    const end = (yield* inner.endOffsets(MarketRaw)).get(0) ?? 0
    if (end === 0) return [] as Array<number>
    return (yield* inner.subscribe(MarketRaw, { group: "r", ephemeral: true }).pipe(Stream.take(end), Stream.runCollect)).map((d) => d.value.tradeId)
  })
  return { run, publishes, published }
}

describe("ingest publishing", () => {
  it.live("frames are taken while a publish is unanswered; they leave together in the next publish, in order", () =>
    Effect.gen(function*() {
      const h = harness(false)
      yield* h.run
      // before: the loop waited for each publish's answer before taking the next frame
      assert.strictEqual(h.publishes[0].takenWhileInFlight, 3)
      assert.deepStrictEqual(h.publishes.map((p) => p.ids), [[1], [2, 3, 4]])
      assert.deepStrictEqual(yield* h.published, [1, 2, 3, 4])
    }))

  it.live("a failed publish ends the stage, and nothing taken after it is ever sent", () =>
    Effect.gen(function*() {
      const h = harness(true)
      const exit = yield* Effect.exit(h.run)
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "refused")
      assert.deepStrictEqual(h.publishes.map((p) => p.ids), [[1]])
      assert.deepStrictEqual(yield* h.published, [])
    }))
})
