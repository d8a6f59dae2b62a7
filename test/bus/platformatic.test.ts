/**
 * PlatformaticKafkaBus (@platformatic/kafka) against a real broker: the shared Bus contract, then what only Kafka has,
 * as test/bus/kafka.test.ts checks for kafkajs. Start the broker first: `scripts/kafka.sh start`
 * (KAFKA_BROKERS or KAFKA_PORT select it).
 */
import { assert, describe, it, layer } from "@effect/vitest"
import { Deferred, Effect, Layer, Schema, Stream } from "effect"
import { createConnection, createServer } from "node:net"
import { beforeAll } from "vitest"
import * as PlatformaticKafkaBus from "../../layers/PlatformaticKafkaBus.ts"
import { Bus, commitBatch } from "../../src/bus/Bus.ts"
import { AllTopics, DeadLetters, type Topic } from "../../src/domain/Topics.ts"
import { busContract } from "./contract.ts"

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
