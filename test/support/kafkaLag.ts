/** Reads a consumer group's lag straight from the broker (not through the code under test). */
import { Kafka, logLevel } from "kafkajs"

export const BROKERS = process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`

/** Σ over partitions of end offset − the group's committed offset (log start where none): 0 when all is committed. */
export const groupLag = async (topic: string, group: string, brokers = BROKERS): Promise<number> => {
  const admin = new Kafka({ brokers: [brokers], logLevel: logLevel.NOTHING, retry: { retries: 2 } }).admin()
  await admin.connect()
  try {
    const ends = await admin.fetchTopicOffsets(topic)
    const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] })
    const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
    return ends.reduce((sum, { partition, high, low }) => {
      const c = at.get(partition) ?? -1
      return sum + Number(high) - Math.max(c < 0 ? Number(low) : c, Number(low))
    }, 0)
  } finally {
    await admin.disconnect()
  }
}

/** A JSON log line of a process, by message. */
export const logLine = (output: string, message: string): Record<string, unknown> | undefined =>
  output
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .find((l) => l.message === message)
