/**
 * KafkaBus against a real broker: the shared Bus contract, then what only Kafka has (topics at start-up, partitions
 * by key, back-pressure, readiness, start-up failure). Start the broker first: `scripts/kafka.sh start`
 * (KAFKA_BROKERS or KAFKA_PORT select it).
 */
import { Kafka, logLevel } from "kafkajs"
import { createConnection } from "node:net"
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
