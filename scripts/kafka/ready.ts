/**
 * Exits 0 once the broker at KAFKA_BROKERS answers a kafkajs admin request (cluster metadata with a controller),
 * 1 if it does not within argv[2] milliseconds. Used by scripts/kafka.sh start: an open port alone is not "ready".
 */
import { Kafka, logLevel } from "kafkajs"

const brokers = (process.env.KAFKA_BROKERS ?? "127.0.0.1:19092").split(",")
const timeoutMs = Number(process.argv[2] ?? 60_000)
const deadline = Date.now() + timeoutMs
const kafka = new Kafka({
  clientId: "kafka-sh-ready",
  brokers,
  logLevel: logLevel.NOTHING,
  connectionTimeout: 1_000,
  requestTimeout: 2_000,
  retry: { retries: 0 }
})

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

let lastError: unknown = undefined
while (Date.now() < deadline) {
  const admin = kafka.admin()
  try {
    await admin.connect()
    const cluster = await admin.describeCluster()
    await admin.listTopics()
    await admin.disconnect()
    if (cluster.controller !== null && cluster.brokers.length > 0) process.exit(0)
    lastError = new Error("no controller elected yet")
  } catch (error) {
    lastError = error
    await admin.disconnect().catch(() => undefined)
  }
  await sleep(200)
}
console.error(`kafka ready check: ${brokers.join(",")} did not answer within ${timeoutMs} ms: ${String(lastError)}`)
process.exit(1)
