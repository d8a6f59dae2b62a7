/**
 * The Bus contract: every backend (in-memory, Kafka) must pass the same suite.
 * Each test uses fresh topic and group names so the suite can run against a long-lived broker.
 */
import { assert, describe, layer } from "@effect/vitest"
import { Effect, Fiber, Layer, Schema, Stream } from "effect"
import { Bus, follow, lastOfKey, replayThenLive } from "../../src/bus/Bus.ts"
import { partitionOf } from "../../src/bus/Partitioner.ts"
import { DeadLetters, type Topic } from "../../src/domain/Topics.ts"

const Msg = Schema.Struct({ key: Schema.String, n: Schema.Int })
type Msg = typeof Msg.Type

let counter = 0
const unique = (label: string) => `contract.${label}.${Date.now().toString(36)}.${(counter++).toString(36)}`
const freshTopic = (label: string): Topic<Msg> => ({ name: unique(label), schema: Msg })

const publishN = (topic: Topic<Msg>, keys: ReadonlyArray<string>, n: number) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const messages = Array.from({ length: n }, (_, i) => {
      const key = keys[i % keys.length]
      return { key, value: { key, n: i } }
    })
    yield* bus.publishAll(topic, messages)
    return messages.map((m) => m.value)
  })

const take = (topic: Topic<Msg>, group: string, n: number, options: { start?: "earliest" | "latest"; ephemeral?: boolean } = {}) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    return yield* bus.subscribe(topic, { group, ...options }).pipe(Stream.take(n), Stream.runCollect)
  })

export const busContract = (name: string, busLayer: Layer.Layer<Bus, unknown>) =>
  describe(`Bus contract: ${name}`, () => {
    layer(busLayer, { timeout: 120_000, excludeTestServices: true })((it) => {
      it.effect("delivers published messages with their key, decoded, in order", () =>
        Effect.gen(function*() {
          const topic = freshTopic("order")
          const sent = yield* publishN(topic, ["BTCUSDT"], 20)
          const got = yield* take(topic, unique("g"), 20)
          assert.deepStrictEqual(got.map((d) => d.value), sent)
          assert.deepStrictEqual(got.map((d) => d.key), sent.map((m) => m.key))
          assert.strictEqual(got[0].topic, topic.name)
        }))

      it.effect("preserves per-key order across interleaved keys", () =>
        Effect.gen(function*() {
          const topic = freshTopic("perkey")
          const keys = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
          yield* publishN(topic, keys, 200)
          const got = yield* take(topic, unique("g"), 200)
          for (const key of keys) {
            const ns = got.filter((d) => d.key === key).map((d) => d.value.n)
            assert.strictEqual(ns.length, 50)
            assert.deepStrictEqual(ns, [...ns].sort((a, b) => a - b))
          }
        }))

      it.effect("redelivers what a group did not commit after a consumer restart", () =>
        Effect.gen(function*() {
          const topic = freshTopic("commit")
          yield* publishN(topic, ["K"], 10)
          const group = unique("g")
          const first = yield* take(topic, group, 6)
          yield* first[3].commit // handled 0..3; 4 and 5 were in flight, not committed
          const second = yield* take(topic, group, 6)
          assert.deepStrictEqual(second.map((d) => d.value.n), [4, 5, 6, 7, 8, 9])
          yield* second[5].commit
          // everything committed: a third consumer of the group sees only new messages
          const bus = yield* Bus
          const fiber = yield* take(topic, group, 1).pipe(Effect.forkChild)
          yield* Effect.sleep("300 millis")
          yield* bus.publish(topic, "K", { key: "K", n: 10 })
          const third = yield* Fiber.join(fiber)
          assert.deepStrictEqual(third.map((d) => d.value.n), [10])
        }))

      it.effect("a new group with start=latest sees only messages published after it joined", () =>
        Effect.gen(function*() {
          const topic = freshTopic("latest")
          const bus = yield* Bus
          yield* publishN(topic, ["K"], 5)
          const fiber = yield* take(topic, unique("g"), 1, { start: "latest" }).pipe(Effect.forkChild)
          yield* Effect.sleep("1500 millis") // group join
          yield* bus.publish(topic, "K", { key: "K", n: 99 })
          const got = yield* Fiber.join(fiber)
          assert.deepStrictEqual(got.map((d) => d.value.n), [99])
        }))

      it.effect("ephemeral readers start at the earliest offset and never move a group's position", () =>
        Effect.gen(function*() {
          const topic = freshTopic("ephemeral")
          yield* publishN(topic, ["K"], 4)
          const group = unique("g")
          const a = yield* take(topic, group, 4, { ephemeral: true })
          yield* a[3].commit // must be a no-op
          const b = yield* take(topic, group, 4, { ephemeral: true })
          assert.deepStrictEqual(b.map((d) => d.value.n), [0, 1, 2, 3])
          const c = yield* take(topic, group, 4)
          assert.deepStrictEqual(c.map((d) => d.value.n), [0, 1, 2, 3])
        }))

      it.effect("lag counts what a group has not committed yet", () =>
        Effect.gen(function*() {
          const topic = freshTopic("lag")
          const bus = yield* Bus
          yield* publishN(topic, ["K"], 5)
          const group = unique("g")
          assert.strictEqual(yield* bus.lag(topic, group), 5)
          const got = yield* take(topic, group, 3)
          yield* got[2].commit
          assert.strictEqual(yield* bus.lag(topic, group), 2)
        }))

      it.effect("endOffsets counts what was published", () =>
        Effect.gen(function*() {
          const topic = freshTopic("ends")
          const bus = yield* Bus
          yield* publishN(topic, ["A", "B", "C"], 30)
          const ends = yield* bus.endOffsets(topic)
          let total = 0
          for (const end of ends.values()) total += end
          assert.strictEqual(total, 30)
        }))

      it.effect("an undecodable message is dead-lettered with its raw payload, the consuming stage and a reason; the stream goes on", () =>
        Effect.gen(function*() {
          const topic = freshTopic("dlq")
          const bus = yield* Bus
          const dlqBefore = yield* bus.endOffsets(DeadLetters)
          yield* bus.publishRaw(topic.name, "K", "{not json")
          yield* bus.publish(topic, "K", { key: "K", n: 1 })
          const group = unique("g")
          const got = yield* take(topic, group, 1)
          assert.deepStrictEqual(got.map((d) => d.value), [{ key: "K", n: 1 }])
          const letters = yield* bus.subscribe(DeadLetters, { group: unique("dlq"), ephemeral: true }).pipe(
            Stream.filter((d) => d.value.topic === topic.name),
            Stream.take(1),
            Stream.runCollect
          )
          assert.strictEqual(letters[0].value.raw, "{not json")
          assert.strictEqual(letters[0].value.key, "K")
          assert.strictEqual(letters[0].value.reason, "not_json")
          assert.isTrue(letters[0].value.stage.endsWith(group), `stage ${letters[0].value.stage} is the consuming group`)
          const dlqAfter = yield* bus.endOffsets(DeadLetters)
          let grew = 0
          for (const [p, end] of dlqAfter) grew += end - (dlqBefore.get(p) ?? 0)
          assert.isAtLeast(grew, 1)
        }))

      it.effect("replayThenLive rebuilds from history, then follows live messages", () =>
        Effect.gen(function*() {
          const topic = freshTopic("replay")
          const bus = yield* Bus
          yield* publishN(topic, ["A", "B"], 6)
          const { history, live } = yield* replayThenLive(topic, unique("state"))
          assert.deepStrictEqual(history.map((m) => m.n).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5])
          yield* bus.publish(topic, "A", { key: "A", n: 6 })
          const next = yield* live.pipe(Stream.take(1), Stream.runCollect)
          assert.deepStrictEqual(next.map((m) => m.n), [6])
        }))

      it.effect("replayThenLive on an empty topic returns no history and follows live messages", () =>
        Effect.gen(function*() {
          const topic = freshTopic("replay-empty")
          const bus = yield* Bus
          const { history, live } = yield* replayThenLive(topic, unique("state"))
          assert.deepStrictEqual(history, [])
          const fiber = yield* live.pipe(Stream.take(1), Stream.runCollect, Effect.forkChild)
          yield* Effect.sleep("1500 millis") // group join on Kafka
          yield* bus.publish(topic, "A", { key: "A", n: 1 })
          assert.deepStrictEqual((yield* Fiber.join(fiber)).map((m) => m.n), [1])
        }))

      it.effect("readPartition reads exactly a range of one partition's history, oldest first, clamped to the log", () =>
        Effect.gen(function*() {
          const topic = freshTopic("read")
          const bus = yield* Bus
          yield* publishN(topic, ["A", "B", "C", "D"], 40)
          const all = yield* take(topic, unique("g"), 40, { ephemeral: true })
          const p = all.find((d) => d.key === "A")!.partition
          const mine = all.filter((d) => d.partition === p)
          assert.isAtLeast(mine.length, 10)
          const from = mine[2].offset
          const to = mine[7].offset
          const got = yield* bus.readPartition(topic, p, from, to)
          assert.deepStrictEqual(
            got.map((r) => [r.offset, r.key, r.value.n]),
            mine.filter((d) => d.offset >= from && d.offset < to).map((d) => [d.offset, d.key, d.value.n])
          )
          const whole = yield* bus.readPartition(topic, p, -5, 1_000_000)
          assert.deepStrictEqual(whole.map((r) => r.value.n), mine.map((d) => d.value.n))
          assert.deepStrictEqual(yield* bus.readPartition(topic, p, to, to), [])
          assert.deepStrictEqual(yield* bus.readPartition(topic, p, 1_000_000, 1_000_010), [])
          // the last n of a key before an offset: what a new owner of the key rebuilds from
          const before = mine[mine.length - 1].offset
          const lastA = yield* lastOfKey(topic, p, before, "A", 3)
          assert.deepStrictEqual(
            lastA.map((r) => r.value.n),
            mine.filter((d) => d.key === "A" && d.offset < before).slice(-3).map((d) => d.value.n)
          )
          assert.deepStrictEqual(yield* lastOfKey(topic, p, before, "nobody", 3), [])
        }))

      it.effect("deliveries carry their partition's assignment: one per subscription and partition, a new one for the next subscription", () =>
        Effect.gen(function*() {
          const topic = freshTopic("assignment")
          yield* publishN(topic, ["A", "B", "C"], 30)
          const group = unique("g")
          const first = yield* take(topic, group, 30)
          const byPartition = new Map<number, Set<number>>()
          for (const d of first) byPartition.set(d.partition, (byPartition.get(d.partition) ?? new Set()).add(d.assignment))
          for (const set of byPartition.values()) assert.strictEqual(set.size, 1)
          const used = new Set(first.map((d) => d.assignment))
          // across partitions the numbers differ too: a partition's assignment is its own
          assert.strictEqual(used.size, byPartition.size)
          const second = yield* take(topic, group, 30)
          for (const d of second) assert.isFalse(used.has(d.assignment), "a new subscription is a new assignment")
          // current while the subscription runs, not after it ended
          assert.isFalse(yield* first[0].assigned)
          const bus = yield* Bus
          const whileRunning = yield* bus.subscribe(topic, { group: unique("g") }).pipe(
            Stream.mapEffect((d) => d.assigned),
            Stream.take(3),
            Stream.runCollect
          )
          assert.deepStrictEqual(whileRunning, [true, true, true])
        }))

      it.effect("a key is on the partition partitionOf gives; assignments lists each partition with its deliveries' number", () =>
        Effect.gen(function*() {
          const bus = yield* Bus
          // every bus of this project implements it (the order manager's assignment-time reconciliation needs it)
          const assignments = bus.assignments
          assert.isDefined(assignments, "Bus.assignments")
          if (assignments === undefined) return
          const topic = freshTopic("assignments")
          const keys = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT"]
          yield* publishN(topic, keys, 30)
          const partitions = (yield* bus.endOffsets(topic)).size
          const group = unique("g")
          const seen = yield* bus.subscribe(topic, { group }).pipe(
            Stream.mapEffect((d) => Effect.map(assignments(topic, group), (now) => ({ d, now }))),
            Stream.take(30),
            Stream.runCollect
          )
          for (const { d, now } of seen) {
            assert.strictEqual(d.partition, partitionOf(d.key, partitions), `${d.key} over ${partitions} partitions`)
            assert.strictEqual(now.get(d.partition), d.assignment, "the current assignment of the delivery's partition")
          }
          assert.strictEqual((yield* assignments(topic, group)).size, 0, "none once the subscription ended")
        }))

      it.effect("follow applies the history, then live messages; caughtUp waits for everything published before it", () =>
        Effect.gen(function*() {
          const topic = freshTopic("follow")
          const bus = yield* Bus
          yield* publishN(topic, ["A", "B", "C"], 9)
          const seen: Array<number> = []
          const follower = yield* follow(topic, unique("state"), (m) => void seen.push(m.n))
          assert.deepStrictEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8])
          yield* bus.publishAll(topic, [9, 10, 11].map((n) => ({ key: ["A", "B", "C"][n % 3], value: { key: "x", n } })))
          yield* follower.caughtUp
          assert.deepStrictEqual([...seen].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
          assert.strictEqual(follower.applied(), 12)
        }))
    })
  })
