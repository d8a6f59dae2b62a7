/**
 * KafkaBus against a real broker: the shared Bus contract, then what only Kafka has (topics at start-up, partitions
 * by key, back-pressure, readiness, start-up failure). Start the broker first: `scripts/kafka.sh start`
 * (KAFKA_BROKERS or KAFKA_PORT select it).
 */
import { Kafka, logLevel } from "kafkajs"
import { createConnection } from "node:net"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Logger, Schedule, Schema, Stream } from "effect"
import { beforeAll } from "vitest"
import * as KafkaBus from "../../layers/KafkaBus.ts"
import { busContract } from "./contract.ts"
import { kafkaSpecifics } from "./kafkaSpecifics.ts"

const brokers = (process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`).split(",")
const runId = `${Date.now().toString(36)}.${process.pid}`
const options: KafkaBus.KafkaBusOptions = { brokers, clientId: `kafka-test.${runId}`, partitions: 3 }

const reachable = (address: string) =>
  new Promise<boolean>((resolve) => {
    const [host, port] = address.split(":")
    const socket = createConnection({ host, port: Number(port) })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(2_000, () => done(false))
    socket.once("connect", () => done(true))
    socket.once("error", () => done(false))
  })

beforeAll(async () => {
  if (!(await reachable(brokers[0]))) {
    throw new Error(
      `Kafka is not reachable at ${brokers[0]}: start it with scripts/kafka.sh start (KAFKA_PORT / KAFKA_BROKERS select another one)`
    )
  }
})

busContract("kafka", KafkaBus.layerConfig(options))

kafkaSpecifics("KafkaBus", KafkaBus.layerConfig, options, async () => {
  const admin = new Kafka({ clientId: "kafka-test-admin", brokers, logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    return await admin.listTopics()
  } finally {
    await admin.disconnect()
  }
})

describe("KafkaBus subscribing to a topic the broker does not know yet", () => {
  const refusals: Array<Record<string, unknown>> = []
  const logger = Logger.layer([
    Logger.map(Logger.formatStructured, (entry) => {
      const [message, fields] = Array.isArray(entry.message) ? entry.message : [entry.message, {}]
      if (message === "Kafka refused a request for now; asking again") refusals.push(fields as Record<string, unknown>)
    })
  ])
  it.live("asks again while the topic's metadata is missing, then delivers", () =>
    Effect.gen(function*() {
      const admin = new Kafka({ clientId: "kafka-test-admin", brokers, logLevel: logLevel.NOTHING }).admin()
      yield* Effect.acquireRelease(Effect.promise(() => admin.connect()), () => Effect.promise(() => admin.disconnect()))
      const bus = yield* KafkaBus.make(options)
      const topic = { name: `kafka.late.${runId}`, schema: Schema.Struct({ n: Schema.Int }) }
      // the bus creates the topic (and remembers it exists); then it goes away behind the bus's back
      yield* bus.publish(topic, "K", { n: 0 })
      yield* Effect.promise(() => admin.deleteTopics({ topics: [topic.name] }))
      const gone = Effect.promise(() => admin.listTopics()).pipe(
        Effect.map((names) => !names.includes(topic.name)),
        Effect.repeat({ until: (isGone) => isGone, schedule: Schedule.spaced("100 millis"), times: 100 })
      )
      assert.isTrue(yield* gone)
      const received = yield* bus.subscribe(topic, { group: `g.late.${runId}`, ephemeral: true }).pipe(
        Stream.take(1),
        Stream.runCollect,
        Effect.forkScoped
      )
      // the subscription is refused (UNKNOWN_TOPIC_OR_PARTITION) and asks again; the topic comes back meanwhile
      yield* Effect.sync(() => refusals.length > 0).pipe(
        Effect.repeat({ until: (refused) => refused, schedule: Schedule.spaced("20 millis"), times: 250 })
      )
      assert.strictEqual(refusals[0]?.operation, "subscribe")
      yield* Effect.promise(() => admin.createTopics({ topics: [{ topic: topic.name, numPartitions: 3 }], waitForLeaders: true }))
      yield* bus.publish(topic, "K", { n: 1 })
      const got = yield* Fiber.join(received)
      assert.deepStrictEqual(got.map((d) => d.value.n), [1])
    }).pipe(Effect.scoped, Effect.provide(logger)), 60_000)
})
