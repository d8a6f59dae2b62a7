import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schema, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Bus, nextAssignment } from "../../src/bus/Bus.ts"
import { DeadLetters } from "../../src/domain/Topics.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { busContract } from "./contract.ts"

busContract("in-memory", InMemoryBus.layerTest())

const Num = { name: "bounded", schema: Schema.Struct({ n: Schema.Int }) }

describe("InMemoryBus bounds", () => {
  it.effect("publish waits while a durable group still needs the oldest message, then proceeds on commit", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const pulled: Array<{ commit: Effect.Effect<void, unknown> }> = []
      // a durable group that reads but does not commit yet
      const reader = yield* bus.subscribe(Num, { group: "slow" }).pipe(
        Stream.tap((d) => Effect.sync(() => pulled.push(d))),
        Stream.runDrain,
        Effect.forkChild
      )
      yield* Effect.yieldNow
      for (let n = 0; n < 3; n++) yield* bus.publish(Num, "k", { n })
      const blocked = yield* bus.publish(Num, "k", { n: 3 }).pipe(Effect.forkChild)
      yield* TestClock.adjust("1 second")
      assert.isUndefined(blocked.pollUnsafe(), "4th publish must wait: capacity 3 and nothing committed")
      yield* pulled[0].commit
      yield* Fiber.join(blocked)
      const ends = yield* bus.endOffsets(Num)
      assert.strictEqual(ends.get(0), 4)
      yield* Fiber.interrupt(reader)
    }).pipe(Effect.provide(InMemoryBus.layerTest({ capacity: 3 }))))

  it.effect("without durable groups the oldest messages are dropped, never blocking publishers", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      for (let n = 0; n < 10; n++) yield* bus.publish(Num, "k", { n })
      const got = yield* bus.subscribe(Num, { group: "late", ephemeral: true }).pipe(Stream.take(3), Stream.runCollect)
      assert.deepStrictEqual(got.map((d) => d.value.n), [7, 8, 9])
    }).pipe(Effect.provide(InMemoryBus.layerTest({ capacity: 3 }))))

  it.effect("a full topic keeps the right messages at the right offsets while it drops its oldest, across its compactions", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      // a durable group that commits as it reads: the topic stays full and drops one message per publish
      const reader = yield* bus.subscribe(Num, { group: "live" }).pipe(
        Stream.take(5_000),
        Stream.tap((d) => {
          assert.strictEqual(d.offset, d.value.n, "offset and value agree for the live reader")
          return d.commit
        }),
        Stream.runDrain,
        Effect.forkChild
      )
      yield* Effect.yieldNow // the group has joined before the first publish
      // published one at a time: many drops between reads, several compactions of the log's array (past 1,024 dropped)
      for (let n = 0; n < 5_000; n++) yield* bus.publish(Num, "k", { n })
      yield* Fiber.join(reader)
      assert.strictEqual(yield* bus.lag(Num, "live"), 0)
      const got = yield* bus.subscribe(Num, { group: "late", ephemeral: true }).pipe(Stream.take(100), Stream.runCollect)
      assert.deepStrictEqual(got.map((d) => [d.offset, d.value.n]), Array.from({ length: 100 }, (_, i) => [4_900 + i, 4_900 + i]))
      const history = yield* bus.readPartition(Num, 0, 4_890, 4_905)
      assert.deepStrictEqual(history.map((r) => [r.offset, r.value]), Array.from({ length: 5 }, (_, i) => [4_900 + i, { n: 4_900 + i }]))
    }).pipe(Effect.provide(InMemoryBus.layerTest({ capacity: 100 }))))
})

describe("InMemoryBus values", () => {
  it.effect("a reader with the publisher's schema gets the published value; a reader with another schema decodes the encoded form", () =>
    Effect.gen(function*() {
      const bus = InMemoryBus.makeInMemoryBus()
      const wide = { name: "values", schema: Schema.Struct({ n: Schema.Int, note: Schema.String }) }
      const narrow = { name: "values", schema: Schema.Struct({ n: Schema.Int }) }
      const sent = { n: 1, note: "x" }
      yield* bus.publish(wide, "k", sent)
      const [same] = yield* bus.subscribe(wide, { group: "a" }).pipe(Stream.take(1), Stream.runCollect)
      const [other] = yield* bus.subscribe(narrow, { group: "b" }).pipe(Stream.take(1), Stream.runCollect)
      assert.strictEqual(same.value, sent)
      assert.deepStrictEqual(other.value, { n: 1 })
      // in process a typed value is trusted (decoded where it entered): a value its schema cannot encode reaches a
      // reader with the same schema as is, and is dead-lettered for a reader that needs the encoded form
      const bad = { n: 1.5, note: "x" }
      yield* bus.publish(wide, "k", bad)
      const trusted = (yield* bus.subscribe(wide, { group: "a2" }).pipe(Stream.take(2), Stream.runCollect))[1]
      assert.strictEqual(trusted.value, bad)
      const dlq = yield* bus.subscribe(DeadLetters, { group: "dlq" }).pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
      const narrowReader = yield* bus.subscribe(narrow, { group: "c" }).pipe(Stream.map((d) => d.value), Stream.runCollect, Effect.forkChild)
      const [letter] = yield* Fiber.join(dlq)
      yield* Fiber.interrupt(narrowReader)
      assert.strictEqual(letter.value.stage, "c")
      assert.include(letter.value.error, "does not encode")
      assert.strictEqual(letter.value.raw, JSON.stringify(bad))
    }))
})

describe("InMemoryBus wake order", () => {
  it.effect("a publish runs the path's reader at once; an observer reads once the publisher has gone on to its next wait", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const seen: Array<string> = []
      // the observer subscribes first: before, every reader was woken inline, in subscription order
      const observer = yield* bus.subscribe(Num, { group: "view", start: "latest", observer: true }).pipe(
        Stream.runForEach((d) => Effect.sync(() => seen.push(`observer ${d.value.n}`))),
        Effect.forkChild
      )
      const stage = yield* bus.subscribe(Num, { group: "stage", start: "latest" }).pipe(
        Stream.runForEach((d) => Effect.sync(() => seen.push(`stage ${d.value.n}`))),
        Effect.forkChild
      )
      yield* Effect.yieldNow
      yield* bus.publish(Num, "k", { n: 1 })
      seen.push("publisher goes on")
      yield* Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))
      assert.deepStrictEqual(seen, ["stage 1", "publisher goes on", "observer 1"])
      yield* Fiber.interrupt(observer)
      yield* Fiber.interrupt(stage)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))
})

describe("InMemoryBus assignments read at once", () => {
  it.effect("isAssigned: a delivery's assignment is current while its subscription runs, never after, never for a number the bus did not give out", () =>
    Effect.gen(function*() {
      const bus = InMemoryBus.makeInMemoryBus()
      yield* bus.publish(Num, "k", { n: 1 })
      const seen: Array<number> = []
      const reader = yield* bus.subscribe(Num, { group: "g" }).pipe(Stream.runForEach((d) => Effect.sync(() => seen.push(d.assignment))), Effect.forkChild)
      yield* Effect.yieldNow
      assert.strictEqual(seen.length, 1)
      assert.isTrue(bus.isAssigned!(seen[0]))
      assert.isFalse(bus.isAssigned!(nextAssignment()))
      yield* Fiber.interrupt(reader)
      assert.isFalse(bus.isAssigned!(seen[0]), "ended with its subscription")
    }))
})
