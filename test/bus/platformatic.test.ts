/**
 * PlatformaticKafkaBus (@platformatic/kafka) against a real broker: the shared Bus contract, then what only Kafka has,
 * as test/bus/kafka.test.ts checks for kafkajs. Start the broker first: `scripts/kafka.sh start`
 * (KAFKA_BROKERS or KAFKA_PORT select it).
 */
import { assert, describe, layer } from "@effect/vitest"
import { Admin } from "@platformatic/kafka"
import { Effect, Schema, Stream } from "effect"
import { Partitioners } from "kafkajs"
import { createConnection } from "node:net"
import { beforeAll } from "vitest"
import * as PlatformaticKafkaBus from "../../layers/PlatformaticKafkaBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import { busContract } from "./contract.ts"
import { kafkaSpecifics } from "./kafkaSpecifics.ts"

const brokers = (process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`).split(",")
const runId = `${Date.now().toString(36)}.${process.pid}`
const options: PlatformaticKafkaBus.KafkaBusOptions = { brokers, clientId: `plt-test.${runId}`, partitions: 3 }

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

busContract("kafka (platformatic)", PlatformaticKafkaBus.layerConfig(options))

kafkaSpecifics("PlatformaticKafkaBus", PlatformaticKafkaBus.layerConfig, options, async () => {
  const admin = new Admin({ clientId: "plt-test-admin", bootstrapBrokers: brokers })
  try {
    return await admin.listTopics()
  } finally {
    await admin.close()
  }
})

const Num = Schema.Struct({ n: Schema.Int })

describe("PlatformaticKafkaBus", () => {
  layer(PlatformaticKafkaBus.layerConfig(options), { timeout: 60_000, excludeTestServices: true })((it) => {
    it.effect("puts every key on the partition kafkajs (and Java) would choose, so switching KAFKA_CLIENT keeps per-symbol order", () =>
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = { name: `plt.partitioner.${runId}`, schema: Num }
        const keys = Array.from({ length: 24 }, (_, i) => `SYM${i}USDT`)
        yield* bus.publishAll(topic, keys.map((key, n) => ({ key, value: { n } })))
        const got = yield* bus.subscribe(topic, { group: `g.${runId}.partitioner`, ephemeral: true }).pipe(
          Stream.take(keys.length),
          Stream.runCollect
        )
        const kafkajs = Partitioners.DefaultPartitioner()
        const partitionMetadata = [0, 1, 2].map((partitionId) => ({ partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1] }))
        const differs = got.filter((d) => kafkajs({ topic: topic.name, partitionMetadata, message: { key: d.key, value: null } }) !== d.partition)
        assert.deepStrictEqual(differs.map((d) => d.key), [])
        assert.isAbove(new Set(got.map((d) => d.partition)).size, 1)
      }))
  })
})
