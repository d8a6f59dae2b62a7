/**
 * Options shared by both Kafka buses (layers/KafkaBus.ts on kafkajs, layers/PlatformaticKafkaBus.ts on
 * @platformatic/kafka), in a module of their own so reading them loads neither client.
 */
import { Config } from "effect"
import type { Duration } from "effect"

export interface KafkaBusOptions {
  /** `host:port` of the bootstrap brokers. */
  readonly brokers: ReadonlyArray<string>
  readonly clientId: string
  /** Partitions of the topics this bus creates. */
  readonly partitions: number
  /** Deliveries a subscription buffers before its consumer stops fetching (default 4096; a stage takes what is buffered as one batch). */
  readonly bufferSize?: number
  /**
   * Most messages in one produce request (default 2000, kafkajs 1000: well under the broker's 1 MB per partition batch
   * for our messages; kafkajs groups a request's messages by partition in time quadratic in their number).
   */
  readonly maxBatchMessages?: number
  /** Consumer group session timeout (default 10 s; the dev broker allows down to 1 s). */
  readonly sessionTimeoutMs?: number
  /** Consumer heartbeat interval, also used while a full buffer holds the consumer back (default 1 s). */
  readonly heartbeatIntervalMs?: number
  /** Longest a fetch waits on the broker when there is nothing to read (default 50 ms; data returns at once). */
  readonly maxWaitTimeMs?: number
  /** Start-up attempts after the first (connect, create topics) before failing with BusError (default 6). */
  readonly connectRetries?: number
  /** First start-up retry delay; doubles, jittered, capped at 5 s (default 200 ms). */
  readonly connectBaseDelay?: Duration.Input
  /** The client's own retries per request (default 5, 100 ms doubling to at most 2 s). */
  readonly requestRetries?: number
  /** How often `ready` is re-checked against the broker (default 5 s). */
  readonly probeInterval?: Duration.Input
  /** kafkajs log lines (KafkaBus) at or above this level go to the Effect logger (default "WARN"). */
  readonly kafkaLogLevel?: "ERROR" | "WARN" | "INFO" | "DEBUG"
}

/** Options from the environment: KAFKA_BROKERS (comma-separated), KAFKA_CLIENT_ID, KAFKA_PARTITIONS. */
export const config: Config.Config<KafkaBusOptions> = Config.all({
  brokers: Config.String("KAFKA_BROKERS").pipe(
    Config.withDefault("127.0.0.1:19092"),
    Config.map((s) => s.split(",").map((b) => b.trim()).filter((b) => b.length > 0))
  ),
  clientId: Config.String("KAFKA_CLIENT_ID").pipe(Config.withDefault("autotrader")),
  partitions: Config.Int("KAFKA_PARTITIONS").pipe(Config.withDefault(3))
})

/**
 * Which client carries the Kafka bus: KAFKA_CLIENT. @platformatic/kafka by default: in the same bench run it was
 * faster (round trip and throughput, bare and through our Bus) and kept up better in tick → order over Kafka, and
 * it passes the same tests; kafkajs stays selectable (README, Kafka).
 */
export type KafkaClient = "kafkajs" | "platformatic"
export const kafkaClientConfig: Config.Config<KafkaClient> = Config.Literals(["kafkajs", "platformatic"], "KAFKA_CLIENT").pipe(
  Config.withDefault("platformatic" as const)
)
