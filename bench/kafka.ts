/**
 * Kafka on the local broker: a bare produce → consume round trip with each client (kafkajs, @platformatic/kafka) as
 * the floor, and the same through our Bus on either client (layers/KafkaBus.ts, layers/PlatformaticKafkaBus.ts): one
 * message at a time (latency) and `n` tick
 * messages in 1,000-message publishes consumed and committed batch by batch (throughput, as ingest → signals does).
 */
import { Consumer, Producer, stringDeserializers, stringSerializers } from "@platformatic/kafka"
import { Effect, Stream } from "effect"
import { Kafka, logLevel } from "kafkajs"
import * as KafkaBus from "../layers/KafkaBus.ts"
import type { KafkaClient } from "../layers/KafkaOptions.ts"
import * as PlatformaticKafkaBus from "../layers/PlatformaticKafkaBus.ts"
import { Bus, commitBatch } from "../src/bus/Bus.ts"
import { MarketRaw } from "../src/domain/Topics.ts"
import { pct, sleep, sorted } from "./lib.ts"
import { makeTicks } from "./stages.ts"

export const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:19092").split(",")

export interface KafkaFigures {
  /** One message at a time: publish → consumer has it (ms). */
  readonly p50: number
  readonly p99: number
  /** Messages/s produced (acks all) and consumed end to end. */
  readonly perSec: number
}

const LATENCY_MESSAGES = 300
const fresh = (label: string) => `bench.${label}.${process.pid}.${Date.now().toString(36)}`
const payloads = (n: number) => makeTicks(n).map((t) => ({ key: t.symbol, value: JSON.stringify(t) }))

/** Sends one message every 3 ms, times each until the consumer sees it. */
const roundTrips = async (send: (value: string) => Promise<unknown>, received: Map<string, (at: number) => void>): Promise<Array<number>> => {
  const out: Array<number> = []
  for (let i = 0; i < LATENCY_MESSAGES; i++) {
    const id = `m${i}`
    const start = performance.now()
    const got = new Promise<number>((resolve) => received.set(id, resolve))
    await send(id)
    out.push((await got) - start)
    await sleep(3)
  }
  return sorted(out)
}

export const kafkajsFloor = async (n: number): Promise<KafkaFigures> => {
  const kafka = new Kafka({ clientId: "bench", brokers, logLevel: logLevel.NOTHING })
  const topic = fresh("kafkajs")
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: 3 }] })
  await admin.disconnect()
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  const consumer = kafka.consumer({ groupId: fresh("g"), maxWaitTimeInMs: 50, minBytes: 1 })
  await consumer.connect()
  await consumer.subscribe({ topic, fromBeginning: true })
  const received = new Map<string, (at: number) => void>()
  let count = 0
  let allDone: () => void = () => undefined
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
      const at = performance.now()
      for (const m of batch.messages) {
        const v = m.value?.toString() ?? ""
        received.get(v)?.(at)
        if (++count === LATENCY_MESSAGES + n) allDone()
        resolveOffset(m.offset)
      }
      await consumer.commitOffsets([{ topic, partition: batch.partition, offset: String(Number(batch.messages[batch.messages.length - 1].offset) + 1) }])
      void commitOffsetsIfNecessary
    }
  })
  const latencies = await roundTrips((value) => producer.send({ topic, acks: -1, messages: [{ key: "BTCUSDT", value }] }), received)
  const messages = payloads(n)
  const done = new Promise<void>((resolve) => (allDone = resolve))
  const started = performance.now()
  for (let i = 0; i < messages.length; i += 1000) await producer.send({ topic, acks: -1, messages: messages.slice(i, i + 1000) })
  await done
  const perSec = n / ((performance.now() - started) / 1000)
  await consumer.disconnect()
  await producer.disconnect()
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), perSec }
}

export const platformaticFloor = async (n: number): Promise<KafkaFigures> => {
  const topic = fresh("platformatic")
  const base = { clientId: "bench", bootstrapBrokers: brokers }
  const producer = new Producer({ ...base, serializers: stringSerializers, idempotent: true, acks: -1 })
  const consumer = new Consumer({ ...base, groupId: fresh("g"), deserializers: stringDeserializers, maxWaitTime: 50, minBytes: 1 })
  const { Admin } = await import("@platformatic/kafka")
  const admin = new Admin(base)
  await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 })
  await admin.close()
  const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false })
  const received = new Map<string, (at: number) => void>()
  let count = 0
  let allDone: () => void = () => undefined
  let last: { commit: () => unknown } | undefined
  stream.on("data", (m) => {
    received.get(m.value)?.(performance.now())
    last = m
    if (++count === LATENCY_MESSAGES + n) allDone()
  })
  // commits batch-wise, as our stages do: the latest message of each tick of the event loop
  const committer = setInterval(() => {
    const m = last
    last = undefined
    if (m !== undefined) void Promise.resolve(m.commit()).catch(() => undefined)
  }, 5)
  const latencies = await roundTrips((value) => producer.send({ messages: [{ topic, key: "BTCUSDT", value }] }), received)
  const messages = payloads(n)
  const done = new Promise<void>((resolve) => (allDone = resolve))
  const started = performance.now()
  for (let i = 0; i < messages.length; i += 1000) await producer.send({ messages: messages.slice(i, i + 1000).map((m) => ({ topic, ...m })) })
  await done
  const perSec = n / ((performance.now() - started) / 1000)
  clearInterval(committer)
  await stream.close()
  await consumer.close(true)
  await producer.close()
  return { p50: pct(latencies, 50), p99: pct(latencies, 99), perSec }
}

/** Our Bus over Kafka with `client` behind it: decode + commit per batch included, as in the stages. */
export const kafkaBusFigures = (n: number, client: KafkaClient = "kafkajs"): Promise<KafkaFigures> =>
  Effect.runPromise(
    Effect.scoped(
      Effect.gen(function*() {
        const bus = yield* Bus
        const topic = { ...MarketRaw, name: fresh("bus") }
        const ticks = makeTicks(n + LATENCY_MESSAGES)
        const received = new Map<string, (at: number) => void>()
        let count = 0
        let allDone: () => void = () => undefined
        yield* bus.subscribe(topic, { group: fresh("g") }).pipe(
          Stream.runForEachArray((ds) =>
            Effect.suspend(() => {
              const at = performance.now()
              for (const d of ds) received.get(`m${d.value.tradeId - ticks[0].tradeId}`)?.(at)
              count += ds.length
              if (count === n + LATENCY_MESSAGES) allDone()
              return commitBatch(ds)
            })
          ),
          Effect.forkScoped
        )
        const latencies = yield* Effect.promise(() =>
          roundTrips((id) => {
            const t = ticks[Number(id.slice(1))]
            return Effect.runPromise(bus.publish(topic, t.symbol, t))
          }, received)
        )
        const done = new Promise<void>((resolve) => (allDone = resolve))
        const started = performance.now()
        for (let i = LATENCY_MESSAGES; i < ticks.length; i += 1000) {
          yield* bus.publishAll(topic, ticks.slice(i, i + 1000).map((t) => ({ key: t.symbol, value: t })))
        }
        yield* Effect.promise(() => done)
        const perSec = n / ((performance.now() - started) / 1000)
        return { p50: pct(latencies, 50), p99: pct(latencies, 99), perSec }
      }).pipe(Effect.provide((client === "platformatic" ? PlatformaticKafkaBus : KafkaBus).layerConfig({ brokers, clientId: "bench", partitions: 3 })))
    )
  )
