/**
 * End-to-end check of the broker at KAFKA_BROKERS with kafkajs: create a fresh topic, produce keyed messages with an
 * idempotent producer, consume them in a new group, and print the timings. `scripts/kafka.sh smoke` runs it.
 */
import { Kafka, logLevel, Partitioners } from "kafkajs"

const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:19092").split(",")
const kafka = new Kafka({ clientId: "kafka-sh-smoke", brokers, logLevel: logLevel.WARN })
const topic = `smoke.${Date.now()}.${process.pid}`
const count = 100
const t0 = performance.now()
const ms = () => `${Math.round(performance.now() - t0)} ms`

const admin = kafka.admin()
await admin.connect()
const cluster = await admin.describeCluster()
await admin.createTopics({ topics: [{ topic, numPartitions: 3 }], waitForLeaders: true })
console.log(`created ${topic} (cluster ${cluster.clusterId}, controller ${cluster.controller}) at ${ms()}`)

const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: Partitioners.DefaultPartitioner })
await producer.connect()
await producer.send({
  topic,
  messages: Array.from({ length: count }, (_, i) => ({ key: `K${i % 5}`, value: JSON.stringify({ i }) }))
})
console.log(`produced ${count} at ${ms()}`)

const consumer = kafka.consumer({ groupId: `${topic}.group`, maxWaitTimeInMs: 50, sessionTimeout: 6_000, heartbeatInterval: 500 })
await consumer.connect()
await consumer.subscribe({ topic, fromBeginning: true })
const seen = new Map<string, Array<number>>()
let received = 0
const done = new Promise<void>((resolve, reject) => {
  const timer = setTimeout(() => reject(new Error(`consumed only ${received}/${count} in 30 s`)), 30_000)
  consumer.run({
    eachMessage: async ({ message }) => {
      const key = message.key?.toString() ?? ""
      const { i } = JSON.parse(message.value?.toString() ?? "{}") as { i: number }
      seen.set(key, [...(seen.get(key) ?? []), i])
      if (++received === count) {
        clearTimeout(timer)
        resolve()
      }
    }
  }).catch(reject)
})
await done
console.log(`consumed ${count} at ${ms()}`)
for (const [key, values] of seen) {
  if (values.some((v, j) => j > 0 && v < values[j - 1])) throw new Error(`key ${key} out of order: ${values}`)
}
await consumer.disconnect()
await producer.disconnect()
await admin.deleteTopics({ topics: [topic] })
await admin.disconnect()
console.log(`ok: per-key order held; topic deleted; total ${ms()}`)
