/**
 * What only a Kafka backend has, beyond the shared contract: publishing under load, partitions by key, back-pressure,
 * commits over several partitions, readiness, dead letters and commits after a subscription ended, start-up failure.
 * Run for each Kafka client (test/bus/kafka.test.ts, test/bus/platformatic.test.ts) on the shared broker.
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Layer, Schema, Stream } from "effect"
import { createServer } from "node:net"
import type * as KafkaBus from "../../layers/KafkaBus.ts"
import { Bus, commitBatch, type Delivery } from "../../src/bus/Bus.ts"
import type { BusError } from "../../src/domain/Errors.ts"
import { AllTopics, DeadLetters, type Topic } from "../../src/domain/Topics.ts"

export const kafkaSpecifics = (
  name: string,
  layerConfig: (options: KafkaBus.KafkaBusOptions) => Layer.Layer<Bus, BusError>,
  options: KafkaBus.KafkaBusOptions,
  /** Topic names on the broker, read with an admin client of the same library. */
  listTopics: () => Promise<ReadonlyArray<string>>
) => {
const runId = `${name.replace(/\W+/g, "-")}.${Date.now().toString(36)}.${process.pid}`
const Num = Schema.Struct({ n: Schema.Int })
let counter = 0
const freshTopic = (label: string): Topic<typeof Num.Type> => ({
  name: `kafka.${label}.${runId}.${(counter++).toString(36)}`,
  schema: Num
})

describe(name, () => {
  layer(layerConfig({ ...options, bufferSize: 4, maxBatchMessages: 7 }), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("publishes from many fibers at once, and batches above the request limit, keep per-key order and lose nothing", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const a = freshTopic("burst-a")
        const b = freshTopic("burst-b")
        const keys = Array.from({ length: 6 }, (_, i) => `K${i}`)
        // every key's messages published one by one from its own fiber, to two topics, all concurrently
        yield* Effect.forEach(
          keys,
          (key) => Effect.forEach(Array.from({ length: 15 }, (_, n) => n), (n) => bus.publish(n % 2 === 0 ? a : b, key, { n }), { discard: true }),
          { concurrency: "unbounded", discard: true }
        )
        // one publish of 40 messages: six requests of at most 7
        yield* bus.publishAll(a, Array.from({ length: 40 }, (_, n) => ({ key: "BIG", value: { n: 100 + n } })))
        const fromA = yield* bus.subscribe(a, { group: `g.${runId}.burst-a`, ephemeral: true }).pipe(Stream.take(6 * 8 + 40), Stream.runCollect)
        const fromB = yield* bus.subscribe(b, { group: `g.${runId}.burst-b`, ephemeral: true }).pipe(Stream.take(6 * 7), Stream.runCollect)
        for (const key of keys) {
          assert.deepStrictEqual(fromA.filter((d) => d.key === key).map((d) => d.value.n), [0, 2, 4, 6, 8, 10, 12, 14])
          assert.deepStrictEqual(fromB.filter((d) => d.key === key).map((d) => d.value.n), [1, 3, 5, 7, 9, 11, 13])
        }
        assert.deepStrictEqual(fromA.filter((d) => d.key === "BIG").map((d) => d.value.n), Array.from({ length: 40 }, (_, n) => 100 + n))
      }))

    it.effect("commits of several partitions issued together all land", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("commits")
        const group = `g.${runId}.commits`
        const keys = Array.from({ length: 12 }, (_, i) => `SYM${i}`)
        yield* bus.publishAll(topic, keys.flatMap((key) => [0, 1].map((n) => ({ key, value: { n } }))))
        const got = yield* bus.subscribe(topic, { group }).pipe(Stream.take(24), Stream.runCollect)
        assert.isAbove(new Set(got.map((d) => d.partition)).size, 1)
        yield* commitBatch(got)
        assert.strictEqual(yield* bus.lag(topic, group), 0)
      }))

    it.effect("creates every domain topic at start-up and reports ready", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        assert.isTrue(yield* bus.ready)
        const topics = yield* Effect.promise(listTopics)
        for (const t of AllTopics) assert.include(topics, t.name)
      }))

    it.effect("a key always lands on one partition, and keys spread over the partitions", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("keys")
        const keys = Array.from({ length: 12 }, (_, i) => `SYM${i}`)
        yield* bus.publishAll(topic, keys.flatMap((key) => [0, 1, 2].map((n) => ({ key, value: { n } }))))
        const got = yield* bus.subscribe(topic, { group: `g.${runId}.keys`, ephemeral: true }).pipe(
          Stream.take(36),
          Stream.runCollect
        )
        const partitionOf = new Map<string, Set<number>>()
        for (const d of got) partitionOf.set(d.key, (partitionOf.get(d.key) ?? new Set()).add(d.partition))
        for (const key of keys) assert.strictEqual(partitionOf.get(key)?.size, 1, `key ${key} spans partitions`)
        const used = new Set(got.map((d) => d.partition))
        assert.isAbove(used.size, 1)
      }))

    it.effect("a slow stage with a small buffer gets every message once, in order, and commits as it goes", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("slow")
        const group = `g.${runId}.slow`
        yield* bus.publishAll(topic, Array.from({ length: 40 }, (_, n) => ({ key: "K", value: { n } })))
        const seen = yield* bus.subscribe(topic, { group }).pipe(
          Stream.mapEffect((d) => Effect.sleep("5 millis").pipe(Effect.andThen(d.commit), Effect.as(d.value.n))),
          Stream.take(40),
          Stream.runCollect
        )
        assert.deepStrictEqual(seen, Array.from({ length: 40 }, (_, n) => n))
        assert.strictEqual(yield* bus.lag(topic, group), 0)
      }))

    it.effect("closing a subscription held back by its full buffer neither hangs nor loses the rest", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("full")
        const group = `g.${runId}.full`
        yield* bus.publishAll(topic, Array.from({ length: 20 }, (_, n) => ({ key: "K", value: { n } })))
        // Buffer of 4: the consumer is blocked in eachBatch when the stream ends after 2.
        const first = yield* bus.subscribe(topic, { group }).pipe(Stream.take(2), Stream.runCollect)
        yield* first[1].commit
        const rest = yield* bus.subscribe(topic, { group }).pipe(Stream.take(18), Stream.runCollect)
        assert.deepStrictEqual(rest.map((d) => d.value.n), Array.from({ length: 18 }, (_, i) => i + 2))
      }))

    it.effect("a dead letter waits for the earlier deliveries of its partition before it is committed", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("dlq-order")
        const group = `g.${runId}.dlq-order`
        yield* bus.publish(topic, "K", { n: 0 })
        yield* bus.publishRaw(topic.name, "K", "{broken")
        yield* bus.publish(topic, "K", { n: 2 })
        // Pull 0 and 2 without committing 0: the dead letter at offset 1 must not commit past 0.
        const got = yield* bus.subscribe(topic, { group }).pipe(Stream.take(2), Stream.runCollect)
        assert.deepStrictEqual(got.map((d) => d.value.n), [0, 2])
        assert.strictEqual(yield* bus.lag(topic, group), 3)
        yield* got[0].commit // covers 0 and the dead letter after it
        assert.strictEqual(yield* bus.lag(topic, group), 1)
      }))

    it.effect("an ephemeral reader skips undecodable messages without writing dead letters", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("ephemeral-dlq")
        yield* bus.publishRaw(topic.name, "K", "nope")
        yield* bus.publish(topic, "K", { n: 1 })
        const before = yield* bus.endOffsets(DeadLetters)
        const got = yield* bus.subscribe(topic, { group: `g.${runId}.eph`, ephemeral: true }).pipe(
          Stream.take(1),
          Stream.runCollect
        )
        assert.deepStrictEqual(got.map((d) => d.value.n), [1])
        assert.deepStrictEqual(yield* bus.endOffsets(DeadLetters), before)
      }))

    it.effect("a partition kept across a rebalance comes again from the group's commit under a new assignment; the old one has ended", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("kept")
        const group = `g.${runId}.kept`
        const keys = Array.from({ length: 12 }, (_, i) => `K${i}`)
        yield* bus.publishAll(topic, keys.flatMap((key) => [0, 1, 2].map((n) => ({ key, value: { n } }))))
        const total = keys.length * 3
        // member A takes everything and commits only the first delivery of each partition
        const seenA: Array<Delivery<typeof Num.Type>> = []
        const firstRound = yield* Deferred.make<void>()
        const redelivered = yield* Deferred.make<{ readonly before: Delivery<typeof Num.Type>; readonly again: Delivery<typeof Num.Type> }>()
        yield* bus.subscribe(topic, { group }).pipe(
          Stream.runForEach((d) =>
            Effect.gen(function*() {
              const before = seenA.find((e) => e.partition === d.partition && e.offset === d.offset)
              seenA.push(d)
              if (before !== undefined) yield* Deferred.succeed(redelivered, { before, again: d })
              else if (d.offset === 0) yield* d.commit
              if (seenA.length === total) yield* Deferred.succeed(firstRound, undefined)
            })
          ),
          Effect.forkScoped
        )
        yield* Deferred.await(firstRound)
        // member B joins: A keeps some partitions, and gets them again from the commit (offset 1)
        yield* bus.subscribe(topic, { group }).pipe(Stream.runDrain, Effect.forkScoped)
        const { again, before } = yield* Deferred.await(redelivered)
        assert.strictEqual(again.offset, 1, "from the group's commit")
        assert.notStrictEqual(again.assignment, before.assignment, "a new assignment for a kept partition")
        assert.isFalse(yield* before.assigned, "what was delivered under the old assignment is not ours to act on any more")
        assert.isTrue(yield* again.assigned)
      }))

    it.effect("a commit after the subscription ended fails while another member holds the group", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = freshTopic("busy")
        const group = `g.${runId}.busy`
        yield* bus.publishAll(topic, [0, 1].map((n) => ({ key: "K", value: { n } })))
        const [first] = yield* bus.subscribe(topic, { group }).pipe(Stream.take(1), Stream.runCollect)
        // A second consumer joins the group and stays (until the test's scope closes).
        const joined = yield* Deferred.make<void>()
        yield* bus.subscribe(topic, { group }).pipe(
          Stream.tap(() => Deferred.succeed(joined, undefined)),
          Stream.runDrain,
          Effect.forkScoped
        )
        yield* Deferred.await(joined)
        const error = yield* Effect.flip(first.commit)
        assert.strictEqual(error._tag, "BusError")
        assert.strictEqual(error.operation, "commit")
      }))
  })

  it.live("fails start-up with a BusError when no broker answers, after the retries", () =>
    Effect.gen(function*() {
      // A port that was free a moment ago: nothing listens there.
      const port = yield* Effect.promise(() =>
        new Promise<number>((resolve) => {
          const server = createServer().listen(0, "127.0.0.1", () => {
            const address = server.address()
            server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0))
          })
        })
      )
      const error = yield* Layer.build(
        layerConfig({
          brokers: [`127.0.0.1:${port}`],
          clientId: "kafka-test-unreachable",
          partitions: 1,
          connectRetries: 2,
          connectBaseDelay: "20 millis",
          requestRetries: 0,
          kafkaLogLevel: "ERROR"
        })
      ).pipe(Effect.scoped, Effect.flip)
      assert.strictEqual(error._tag, "BusError")
      assert.strictEqual(error.operation, "connect")
    }), 30_000)
})
}
