/**
 * The partition Kafka producers put a key on: the Java client's murmur2 (what kafkajs' DefaultPartitioner and
 * @platformatic/kafka's compatibilityPartitioner, both used by our buses, compute), positive, modulo the partition
 * count. A stage uses it to know which keys (symbols) a partition it was just assigned carries, before any message
 * arrives on it. test/bus/partitioner.test.ts checks it against both clients.
 */
const SEED = 0x9747b28c
const M = 0x5bd1e995

/** Java's `Utils.murmur2` on the key's UTF-8 bytes, as a signed 32-bit integer. */
export const murmur2 = (key: string): number => {
  const data = Buffer.from(key, "utf8")
  const length = data.length
  let h = (SEED ^ length) | 0
  const length4 = length >>> 2
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4
    let k = (data[i4] & 0xff) | ((data[i4 + 1] & 0xff) << 8) | ((data[i4 + 2] & 0xff) << 16) | ((data[i4 + 3] & 0xff) << 24)
    k = Math.imul(k, M)
    k ^= k >>> 24
    k = Math.imul(k, M)
    h = Math.imul(h, M)
    h ^= k
  }
  const tail = length & ~3
  switch (length % 4) {
    case 3:
      h ^= (data[tail + 2] & 0xff) << 16
    // falls through
    case 2:
      h ^= (data[tail + 1] & 0xff) << 8
    // falls through
    case 1:
      h ^= data[tail] & 0xff
      h = Math.imul(h, M)
  }
  h ^= h >>> 13
  h = Math.imul(h, M)
  h ^= h >>> 15
  return h | 0
}

/** The partition of `key` among `partitions` (≥ 1). */
export const partitionOf = (key: string, partitions: number): number => (murmur2(key) & 0x7fffffff) % Math.max(1, partitions)
