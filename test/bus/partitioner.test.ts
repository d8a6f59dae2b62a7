import { assert, describe, it } from "@effect/vitest"
import { compatibilityPartitioner } from "@platformatic/kafka"
import { Partitioners } from "kafkajs"
import { partitionOf } from "../../src/bus/Partitioner.ts"

describe("partitionOf", () => {
  it("puts every key on the partition both Kafka clients' producers choose", () => {
    const kafkajs = Partitioners.DefaultPartitioner()
    const keys = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "", "a", "ab", "abc", "abcd", "abcde", "héllo€", "control", "orders"]
    for (let i = 0; i < 200; i++) keys.push(`SYM${i}USDT`)
    for (const partitions of [1, 2, 3, 4, 7, 16]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, p) => ({ partitionId: p, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }))
      for (const key of keys) {
        const expected = kafkajs({ topic: "t", partitionMetadata, message: { key, value: "" } })
        assert.strictEqual(partitionOf(key, partitions), expected, `kafkajs: ${key} over ${partitions}`)
        assert.strictEqual(partitionOf(key, partitions), compatibilityPartitioner({} as never, Buffer.from(key)) % partitions, `platformatic: ${key} over ${partitions}`)
      }
    }
  })
})
