/**
 * The Bus over Kafka (kafkajs 2.2.4): the same semantics as layers/InMemoryBus, checked by test/bus/contract.ts.
 *
 * - Publishing: one idempotent producer (acks=all, one request in flight), keyed by the given key so per-key order
 *   holds (a key always maps to the same partition), values JSON-encoded with the topic's Schema. Publishes that
 *   arrive while a request is in flight wait in an outbox and leave together in the next request (all topics, up to
 *   `maxBatchMessages`), in arrival order: no linger when idle, one round trip for many publishers when busy.
 * - Subscribing: one kafkajs consumer per `subscribe`, `autoCommit: false`. kafkajs hands batches to `eachBatch`,
 *   which offers each message to a bounded Queue and does not return while the queue is full, so the consumer never
 *   fetches far ahead of the stage (back-pressure). `resolveOffset` only moves kafkajs' fetch position; the group's
 *   offset moves only when the stage calls `Delivery.commit`. Commits of one subscription are coalesced the same
 *   way as publishes: one OffsetCommit for every partition that asked while the previous one was in flight; each
 *   `commit` completes when the request carrying its offset (or a later one) succeeded.
 * - A `Delivery.commit` after its subscription has ended (the stream completed, the consumer left the group) is
 *   still honoured, as in memory: it is written as an admin commit (no generation), which Kafka accepts while the
 *   group has no members. With a member present it fails with BusError, as it would in any Kafka client.
 * - Undecodable messages are dead-lettered when they reach the head of the stream, i.e. after the stage has pulled
 *   everything before them; their offset is committed only once every earlier delivery of the partition is
 *   committed, so a dead letter never commits past an unhandled message.
 * - Assignments: each GROUP_JOIN (kafkajs event, with the member's assignment) gives every partition assigned a new
 *   assignment number; REBALANCING, STOP and CRASH end them. Deliveries carry the number they were fetched under, and
 *   a delivery whose assignment has ended when it reaches the head of the stream is dropped (its partition moved, or
 *   kafkajs refetches it from the committed offset under the new number), so a stage never acts on a partition it no
 *   longer owns from its buffer.
 * - `readPartition` uses a throw-away group whose offsets are first set (admin commit) to the range's start on that
 *   partition and to the end on the others, so it fetches exactly the range; the group is deleted afterwards.
 * - Ephemeral readers use a throw-away group id, read from the earliest offset and never commit; they log and count
 *   undecodable messages but do not publish dead letters (a replay on every restart would duplicate them).
 */
import { Cause, Clock, Config, Duration, Effect, Exit, Layer, Metric, Queue, Schedule, Stream } from "effect"
import type { Scope } from "effect"
import { Kafka, logLevel, Partitioners } from "kafkajs"
import type { Admin, Consumer, EachBatchPayload, KafkaMessage, LogEntry, Producer } from "kafkajs"
import { randomUUID } from "node:crypto"
import {
  Bus,
  type BusShape,
  decodeReason,
  type Delivery,
  type EndOffsets,
  nextAssignment,
  type PartitionRecord,
  recordDeadLetter,
  type SubscribeOptions,
  topicCodec
} from "../src/bus/Bus.ts"
import { BusError } from "../src/domain/Errors.ts"
import { AllTopics, DeadLetters, type Topic } from "../src/domain/Topics.ts"
import { latencyTraceOn } from "../src/observability/LatencyTrace.ts"
import { type BufferedItem, deliveriesOf, traceFetched, traceName, traceOutgoing, tracePublished } from "./KafkaDeliveries.ts"
import { config, type KafkaBusOptions } from "./KafkaOptions.ts"

export { config }
export type { KafkaBusOptions }

/** Fetch wait of ephemeral readers (see where it is used). */
const EPHEMERAL_MAX_WAIT_MS = 500

/** Longest a consumer's disconnect (leave group, close sockets) may hold a subscription's end or the bus's release. */
const consumerDisconnectTimeout = Duration.seconds(10)

const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error))
/** kafkajs marks errors a client may retry (leadership moving, a broker starting) with `retriable: true`. */
const isRetriable = (error: unknown): boolean =>
  typeof error === "object" && error !== null && (error as { readonly retriable?: unknown }).retriable === true

/**
 * Commit refusals that mean "your generation is over": a rebalance is under way or has happened. kafkajs rarely
 * hands these over bare: `consumer.commitOffsets` runs in its retrier, which rejects a non-retriable protocol error
 * (all three are) as a `KafkaJSNonRetriableError` whose `cause` is the `KafkaJSProtocolError` carrying the `type`
 * (kafkajs 2.x never sets `originalError`; that is checked too, for other wrappers). So the chain is followed through
 * both, a few links deep.
 */
export const rebalanced = (error: unknown, depth = 0): boolean => {
  if (typeof error !== "object" || error === null || depth > 8) return false
  const { type, cause, originalError } = error as { readonly type?: unknown; readonly cause?: unknown; readonly originalError?: unknown }
  if (type === "ILLEGAL_GENERATION" || type === "REBALANCE_IN_PROGRESS" || type === "UNKNOWN_MEMBER_ID") return true
  return rebalanced(cause, depth + 1) || rebalanced(originalError, depth + 1)
}

const kafkaLogLevels = { ERROR: logLevel.ERROR, WARN: logLevel.WARN, INFO: logLevel.INFO, DEBUG: logLevel.DEBUG }

/**
 * kafkajs lines go to the Effect logger. Its `Connection` and `BrokerPool` namespaces log every error response and
 * refused connection at ERROR even when the caller retries it (e.g. "coordinator is loading" on a fresh broker):
 * those are Debug; a failure that survives the retries reaches us as a BusError (and `ready` goes false) anyway.
 */
const retriedNamespaces = new Set(["Connection", "BrokerPool"])

/** Logged on every start because our idempotent producer's retries are bounded on purpose (see `make`). */
const boundedRetriesWarning = "Limiting retries for the idempotent producer"

const logCreator = (run: (effect: Effect.Effect<void>) => void) => () => (entry: LogEntry) => {
  const { message, timestamp: _timestamp, logger: _logger, ...fields } = entry.log
  const severity = entry.level === logLevel.ERROR
    ? retriedNamespaces.has(entry.namespace) ? "Debug" : "Error"
    : entry.level === logLevel.WARN && !message.startsWith(boundedRetriesWarning)
    ? "Warn"
    : "Debug"
  run(Effect.logWithLevel(severity)(`kafkajs ${entry.namespace}: ${message}`).pipe(Effect.annotateLogs(fields)))
}

/** What kafkajs keeps private: its cluster, which can send an OffsetCommit without a group generation. */
interface GroupCoordinator {
  readonly offsetCommit: (request: {
    readonly groupId: string
    readonly groupGenerationId: number
    readonly memberId: string
    readonly topics: ReadonlyArray<{
      readonly topic: string
      readonly partitions: ReadonlyArray<{ readonly partition: number; readonly offset: string }>
    }>
  }) => Promise<unknown>
}
interface InternalCluster {
  readonly connect: () => Promise<void>
  readonly disconnect: () => Promise<void>
  readonly findGroupCoordinator: (request: { readonly groupId: string }) => Promise<GroupCoordinator>
}

/**
 * kafkajs has no counterpart of Java's `Admin.alterConsumerGroupOffsets` (its `admin.setOffsets` joins the group
 * and waits a whole fetch, seconds). Its client builds clusters with a private factory; kafkajs is frozen at 2.2.4,
 * so this stays put. Undefined if it ever moves.
 */
const makeInternalCluster = (kafka: Kafka): InternalCluster | undefined => {
  const key = Object.getOwnPropertySymbols(kafka).find((s) => s.description === "private:Kafka:createCluster")
  const factory: unknown = key === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[key]
  return typeof factory === "function" ? (factory as (options: object) => InternalCluster)({}) : undefined
}

interface Undecodable {
  readonly _tag: "Undecodable"
  readonly partition: number
  readonly offset: number
  readonly key: string
  readonly raw: string
  readonly error: string
}

/** A buffered message: a delivery, or one that did not decode (dead-lettered when it reaches the head: deliveriesOf). */
type Item<A> = BufferedItem<A, Undecodable>

/** Per partition: the offset the group has committed up to (as far as this subscription knows) and dead letters above it. */
interface PartitionCommits {
  floor: number
  readonly deadLettered: Set<number>
}

export const make = (options: KafkaBusOptions): Effect.Effect<BusShape, BusError, Scope.Scope> =>
  Effect.gen(function*() {
    const bufferSize = options.bufferSize ?? 4096
    // kafkajs groups a request's messages per partition by copying the partition's array for every message
    // (groupMessagesPerPartition), quadratic in the request's size: with one symbol (one partition) sendBatch cost
    // ~8 µs/message at 1,000 and ~11 at 2,000 (CPU, 40k ticks, same run)
    const maxBatchMessages = Math.max(1, options.maxBatchMessages ?? 1000)
    const sessionTimeout = options.sessionTimeoutMs ?? 10_000
    const heartbeatInterval = options.heartbeatIntervalMs ?? 1_000
    const maxWaitTimeInMs = options.maxWaitTimeMs ?? 50
    const context = yield* Effect.context<never>()
    const runLog = (effect: Effect.Effect<void>) => {
      Effect.runForkWith(context)(effect)
    }

    const kafka = new Kafka({
      clientId: options.clientId,
      brokers: [...options.brokers],
      connectionTimeout: 1_000,
      requestTimeout: 10_000,
      retry: { retries: options.requestRetries ?? 5, initialRetryTime: 100, maxRetryTime: 2_000 },
      logLevel: kafkaLogLevels[options.kafkaLogLevel ?? "WARN"],
      logCreator: logCreator(runLog)
    })
    const admin: Admin = kafka.admin()
    // `ready`: both clients connected (kafkajs events) and the last broker round trip succeeded.
    const status = { admin: false, producer: false, healthy: false }
    admin.on(admin.events.CONNECT, () => (status.admin = true))
    admin.on(admin.events.DISCONNECT, () => (status.admin = false))
    const makeProducer = (): Producer => {
      const p = kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        createPartitioner: Partitioners.DefaultPartitioner,
        // kafkajs refuses an idempotent producer without retries. They stay bounded (kafkajs' default for idempotent
        // producers is forever): the stage gets a BusError and decides; delivery is at-least-once either way.
        retry: { retries: Math.max(1, options.requestRetries ?? 5) }
      })
      p.on(p.events.CONNECT, () => (status.producer = true))
      p.on(p.events.DISCONNECT, () => (status.producer = false))
      return p
    }
    let producer: Producer = makeProducer()
    /**
     * After a failed send the idempotent producer's sequence numbers can no longer be trusted: across a broker
     * restart kafkajs kept failing every later send with OUT_OF_ORDER_SEQUENCE_NUMBER, so ingest never published
     * again. A failed send therefore retires the producer; the next send goes through a new one (new producer id).
     * Redelivery stays at-least-once, which every consumer handles.
     */
    const replaceProducer = async (): Promise<void> => {
      const old = producer
      producer = makeProducer()
      await old.disconnect().catch(() => undefined)
      await producer.connect().catch(() => undefined)
    }

    const attempt = <A>(operation: string, topic: string, f: () => Promise<A>): Effect.Effect<A, BusError> =>
      Effect.tryPromise({
        try: f,
        catch: (error) => new BusError({ operation, topic, message: messageOf(error) })
      }).pipe(
        Effect.tap(() => Effect.sync(() => (status.healthy = true))),
        Effect.tapError(() => Effect.sync(() => (status.healthy = false)))
      )

    /**
     * A read the broker may briefly refuse with an error kafkajs marks retriable (NOT_LEADER_FOR_PARTITION or
     * LEADER_NOT_AVAILABLE right after a topic is created or a broker starts): retried on `topicBackoff` (8 times,
     * about 5 s) before it becomes a BusError, each refusal logged. Seen on a fresh broker: the first offsets read after
     * createTopics; and subscribing to a topic whose metadata the broker did not have yet (CI, a loaded machine).
     */
    const read = <A>(operation: string, topic: string, f: () => Promise<A>): Effect.Effect<A, BusError> =>
      Effect.tryPromise({ try: f, catch: (error) => error }).pipe(
        Effect.tapError((error) =>
          isRetriable(error) ? Effect.logWarning("Kafka refused a request for now; asking again", { operation, topic, error: messageOf(error) }) : Effect.void
        ),
        Effect.retry({ schedule: topicBackoff, while: isRetriable }),
        Effect.mapError((error) => new BusError({ operation, topic, message: messageOf(error) })),
        Effect.tap(() => Effect.sync(() => (status.healthy = true))),
        Effect.tapError(() => Effect.sync(() => (status.healthy = false)))
      )

    const created = new Map<string, Promise<void>>()
    const createTopics = (names: ReadonlyArray<string>): Promise<void> =>
      admin
        .createTopics({
          topics: names.map((topic) => ({ topic, numPartitions: options.partitions })),
          waitForLeaders: true
        })
        .then(() => undefined)
    /**
     * Creates a topic once per process (idempotent on the broker too), before anyone reads or writes it. Retried:
     * a broker that has just started or just created many topics can take seconds until the leaders show up.
     */
    const ensureTopic = (name: string): Effect.Effect<void, BusError> =>
      // every publish asks: a topic known to exist costs nothing (no promise, no retry schedule)
      existing.has(name) ? Effect.void : attempt("createTopic", name, () => {
        let pending = created.get(name)
        if (pending === undefined) {
          pending = createTopics([name])
          created.set(name, pending)
          pending.then(() => existing.add(name), () => created.delete(name))
        }
        return pending
      }).pipe(Effect.retry(topicBackoff))
    /** Topics whose creation has succeeded in this process. */
    const existing = new Set<string>()

    const topicBackoff = Schedule.exponential("100 millis", 2).pipe(
      Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(1)))),
      Schedule.jittered,
      Schedule.upTo({ times: 8 })
    )
    const backoff = Schedule.exponential(options.connectBaseDelay ?? "200 millis", 2).pipe(
      Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(5)))),
      Schedule.jittered,
      Schedule.upTo({ times: options.connectRetries ?? 6 })
    )
    const startUp = Effect.gen(function*() {
      yield* attempt("connect", "*", () => admin.connect())
      yield* attempt("connect", "*", () => producer.connect())
      const names = AllTopics.map((t) => t.name)
      yield* attempt("createTopics", names.join(","), () => createTopics(names))
      for (const name of names) {
        created.set(name, Promise.resolve())
        existing.add(name)
      }
    }).pipe(
      Effect.tapError((e) => Effect.logWarning("Kafka not reachable yet, retrying", { brokers: options.brokers, error: e.message })),
      Effect.retry(backoff)
    )
    const disconnect = Effect.promise(() =>
      Promise.allSettled([producer.disconnect(), admin.disconnect()]).then(() => {
        status.healthy = false
      })
    )
    yield* Effect.acquireRelease(startUp.pipe(Effect.onError(() => disconnect)), () => disconnect).pipe(
      Effect.withSpan("KafkaBus.connect")
    )

    /**
     * Every consumer this bus created and has not yet disconnected. A subscription disconnects its own when it ends;
     * whatever is left when the bus is released is disconnected here, before the producer and admin (a connected
     * kafkajs consumer keeps sockets and timers alive: the process would not exit). After that, `subscribe` fails.
     */
    const consumers = new Set<Consumer>()
    const lifecycle = { closed: false }
    const disconnectConsumer = (consumer: Consumer) =>
      Effect.promise(() => consumer.disconnect().catch(() => undefined)).pipe(
        Effect.timeoutOption(consumerDisconnectTimeout),
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.sync(() => consumers.delete(consumer))
            : Effect.logWarning("Kafka consumer did not disconnect in time", { timeout: Duration.format(consumerDisconnectTimeout) })
        )
      )
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        lifecycle.closed = true
        return Effect.forEach([...consumers], disconnectConsumer, { concurrency: "unbounded", discard: true })
      })
    )

    // A cheap metadata request keeps `ready` honest while nothing is published.
    yield* Effect.forkScoped(
      attempt("probe", "*", () => admin.describeCluster()).pipe(
        Effect.timeout("3 seconds"),
        Effect.exit,
        Effect.tap((exit) => Effect.sync(() => (status.healthy = Exit.isSuccess(exit)))),
        Effect.repeat(Schedule.spaced(options.probeInterval ?? "5 seconds"))
      )
    )

    let internalCluster: Promise<InternalCluster> | undefined
    yield* Effect.addFinalizer(() =>
      internalCluster === undefined
        ? Effect.void
        : Effect.promise(() => internalCluster!.then((c) => c.disconnect()).catch(() => undefined))
    )
    /** Commit for a group without members (admin commit: generation -1, no member id). */
    const commitAsAdmin = (groupId: string, topic: string, partition: number, offset: number) =>
      commitManyAsAdmin(groupId, topic, [{ partition, offset }])
    const commitManyAsAdmin = (groupId: string, topic: string, offsets: ReadonlyArray<{ readonly partition: number; readonly offset: number }>) =>
      attempt("commit", topic, async () => {
        if (internalCluster === undefined) {
          const cluster = makeInternalCluster(kafka)
          if (cluster === undefined) throw new Error("kafkajs internals moved: cannot commit for a closed subscription")
          internalCluster = cluster.connect().then(() => cluster)
          internalCluster.catch(() => (internalCluster = undefined))
        }
        const coordinator = await (await internalCluster).findGroupCoordinator({ groupId })
        await coordinator.offsetCommit({
          groupId,
          groupGenerationId: -1,
          memberId: "",
          topics: [{ topic, partitions: offsets.map((o) => ({ partition: o.partition, offset: String(o.offset) })) }]
        })
      }).pipe(
        Effect.mapError((e) =>
          new BusError({
            operation: e.operation,
            topic: e.topic,
            message: `${e.message} (group ${groupId}: its subscription ended; a commit then needs the group to have no members)`
          })
        )
      )

    /** Publishes waiting for the request in flight; they leave together, in order (see the module comment). */
    interface Outgoing {
      readonly topic: string
      readonly messages: Array<{ key: string; value: string }>
      readonly resolve: () => void
      readonly reject: (error: unknown) => void
      /** LATENCY_TRACE: the ticks the messages descend from, marked when the request leaves and when it is acknowledged. */
      readonly traced?: ReadonlyArray<string>
    }
    const outbox: Array<Outgoing> = []
    let sending = false
    const pump = (): void => {
      if (sending || outbox.length === 0) return
      sending = true
      const batch: Array<Outgoing> = []
      let count = 0
      while (outbox.length > 0 && (batch.length === 0 || count + outbox[0].messages.length <= maxBatchMessages)) {
        const next = outbox.shift()!
        batch.push(next)
        count += next.messages.length
      }
      const byTopic = new Map<string, Array<{ key: string; value: string }>>()
      for (const o of batch) {
        const list = byTopic.get(o.topic)
        if (list === undefined) byTopic.set(o.topic, [...o.messages])
        else for (const m of o.messages) list.push(m)
      }
      if (latencyTraceOn()) traceOutgoing(batch, "send")
      producer.sendBatch({ acks: -1, topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })) }).then(
        () => {
          if (latencyTraceOn()) traceOutgoing(batch, "acked")
          for (const o of batch) o.resolve()
        },
        async (error: unknown) => {
          for (const o of batch) o.reject(error)
          if (!lifecycle.closed) await replaceProducer()
        }
      ).finally(() => {
        sending = false
        pump()
      })
    }
    const enqueue = (topic: string, messages: Array<{ key: string; value: string }>, traced?: ReadonlyArray<string>): Promise<void> =>
      new Promise<void>((resolve, reject) => {
        outbox.push(traced === undefined ? { topic, messages, resolve, reject } : { topic, messages, resolve, reject, traced })
        pump()
      })

    const send = (topic: string, messages: Array<{ key: string; value: string }>, traced?: ReadonlyArray<string>) =>
      attempt("publish", topic, () => {
        if (messages.length <= maxBatchMessages) return enqueue(topic, messages, traced)
        const parts: Array<Promise<void>> = []
        for (let i = 0; i < messages.length; i += maxBatchMessages) parts.push(enqueue(topic, messages.slice(i, i + maxBatchMessages)))
        return Promise.all(parts).then(() => undefined)
      })

    const publishAll = <A>(topic: Topic<A>, messages: ReadonlyArray<{ readonly key: string; readonly value: A }>) =>
      Effect.gen(function*() {
        if (messages.length === 0) return
        const { encode } = topicCodec(topic)
        const encoded = yield* Effect.try({
          try: () => messages.map((m) => ({ key: m.key, value: encode(m.value) })),
          catch: (error) => new BusError({ operation: "encode", topic: topic.name, message: messageOf(error) })
        })
        yield* ensureTopic(topic.name)
        yield* send(topic.name, encoded, latencyTraceOn() ? tracePublished(topic.name, messages) : undefined)
      }).pipe(Effect.withSpan("KafkaBus.publish", { attributes: { topic: topic.name, count: messages.length } }))

    const publishRaw = (topic: string, key: string, value: string) =>
      ensureTopic(topic).pipe(
        Effect.andThen(send(topic, [{ key, value }])),
        Effect.withSpan("KafkaBus.publishRaw", { attributes: { topic } })
      )

    const endOffsets = (topic: Topic<any>): Effect.Effect<EndOffsets, BusError> =>
      ensureTopic(topic.name).pipe(
        Effect.andThen(read("endOffsets", topic.name, () => admin.fetchTopicOffsets(topic.name))),
        Effect.map((offsets): EndOffsets => new Map(offsets.map((o) => [o.partition, Number(o.high)]))),
        Effect.withSpan("KafkaBus.endOffsets", { attributes: { topic: topic.name } })
      )

    /** Σ over partitions of end offset − the group's committed offset (the log start where it has none). */
    const lag = (topic: Topic<any>, group: string): Effect.Effect<number, BusError> =>
      Effect.gen(function*() {
        yield* ensureTopic(topic.name)
        const ends = yield* read("lag", topic.name, () => admin.fetchTopicOffsets(topic.name))
        const [committed] = yield* read("lag", topic.name, () => admin.fetchOffsets({ groupId: group, topics: [topic.name] }))
        const byPartition = new Map((committed?.partitions ?? []).map((p) => [p.partition, Number(p.offset)]))
        let total = 0
        for (const { partition, high, low } of ends) {
          const at = byPartition.get(partition) ?? -1
          total += Number(high) - Math.max(at < 0 ? Number(low) : at, Number(low))
        }
        return total
      }).pipe(Effect.withSpan("KafkaBus.lag", { attributes: { topic: topic.name, group } }))

    /** Longest a `readPartition` may take (group join + fetches) before it fails with BusError. */
    const readTimeout = Duration.seconds(30)

    const readPartition = <A>(topic: Topic<A>, partition: number, from: number, to: number) =>
      Effect.gen(function*() {
        yield* ensureTopic(topic.name)
        const offsets = yield* read("readPartition", topic.name, () => admin.fetchTopicOffsets(topic.name))
        const at = offsets.find((o) => o.partition === partition)
        if (at === undefined) return [] as ReadonlyArray<PartitionRecord<A>>
        const start = Math.max(from, Number(at.low))
        const end = Math.min(to, Number(at.high))
        if (start >= end) return [] as ReadonlyArray<PartitionRecord<A>>
        const groupId = `${options.clientId}.read.${randomUUID()}`
        // the throw-away group starts at `start` on this partition and at the end of every other: it fetches the range only
        yield* commitManyAsAdmin(
          groupId,
          topic.name,
          offsets.map((o) => ({ partition: o.partition, offset: o.partition === partition ? start : Number(o.high) }))
        )
        const { decode } = topicCodec(topic)
        const consumer = kafka.consumer({
          groupId,
          sessionTimeout,
          heartbeatInterval,
          maxWaitTimeInMs,
          minBytes: 1,
          allowAutoTopicCreation: false,
          retry: { retries: options.requestRetries ?? 5, initialRetryTime: 100, maxRetryTime: 2_000, restartOnFailure: async () => false }
        })
        consumers.add(consumer)
        const fetched = Effect.callback<ReadonlyArray<PartitionRecord<A>>, BusError>((resume) => {
          const out: Array<PartitionRecord<A>> = []
          let finished = false
          const finish = (effect: Effect.Effect<ReadonlyArray<PartitionRecord<A>>, BusError>) => {
            if (finished) return
            finished = true
            resume(effect)
          }
          consumer.on(consumer.events.CRASH, (event) =>
            finish(Effect.fail(new BusError({ operation: "readPartition", topic: topic.name, message: messageOf(event.payload.error) }))))
          consumer
            .run({
              autoCommit: false,
              eachBatch: async ({ batch }) => {
                if (finished || batch.partition !== partition) return
                for (const message of batch.messages) {
                  const offset = Number(message.offset)
                  if (offset >= end) break
                  if (offset < start) continue
                  const decoded = decode(message.value?.toString("utf8") ?? "")
                  if (Exit.isSuccess(decoded)) out.push({ key: message.key?.toString("utf8") ?? "", value: decoded.value, offset })
                }
                const last = batch.messages.at(-1)
                if (last !== undefined && Number(last.offset) + 1 >= end) finish(Effect.succeed(out))
              }
            })
            .catch((error: unknown) => finish(Effect.fail(new BusError({ operation: "readPartition", topic: topic.name, message: messageOf(error) }))))
        })
        // connect and subscribe before the fetch (subscribe is asked again while the topic's metadata is not there yet)
        return yield* attempt("readPartition", topic.name, () => consumer.connect()).pipe(
          Effect.andThen(read("readPartition", topic.name, () => consumer.subscribe({ topic: topic.name, fromBeginning: true }))),
          Effect.andThen(fetched),
          Effect.timeoutOrElse({
            duration: readTimeout,
            orElse: () =>
              Effect.fail(new BusError({ operation: "readPartition", topic: topic.name, message: `range not read within ${Duration.format(readTimeout)}` }))
          }),
          Effect.ensuring(
            disconnectConsumer(consumer).pipe(
              Effect.andThen(Effect.promise(() => admin.deleteGroups([groupId]).catch(() => undefined)))
            )
          )
        )
      }).pipe(Effect.withSpan("KafkaBus.readPartition", { attributes: { topic: topic.name, partition, from, to } }))

    const deadLetterCodec = topicCodec(DeadLetters)

    /** Durable subscriptions of this process by `topic/group`, and whether each one's consumer is a live group member. */
    const members = new Map<string, Set<{ joined: boolean; readonly assigned: ReadonlyMap<number, number> }>>()
    const memberKey = (topic: string, group: string) => `${topic}\u0000${group}`

    const subscribe = <A>(topic: Topic<A>, subscribeOptions: SubscribeOptions): Stream.Stream<Delivery<A>, BusError> =>
      Stream.unwrap(
        Effect.gen(function*() {
          if (lifecycle.closed) {
            return yield* new BusError({ operation: "subscribe", topic: topic.name, message: "the bus is closed (shutting down)" })
          }
          yield* ensureTopic(topic.name)
          const ephemeral = subscribeOptions.ephemeral === true
          const groupId = ephemeral ? `${subscribeOptions.group}.ephemeral.${randomUUID()}` : subscribeOptions.group
          const { decode } = topicCodec(topic)
          const queue = yield* Queue.bounded<Item<A>, BusError | Cause.Done>(bufferSize)
          const state = { live: true }
          const commits = new Map<number, PartitionCommits>()
          const partitionCommits = (partition: number, offset: number): PartitionCommits => {
            let c = commits.get(partition)
            if (c === undefined) {
              // The first offset this subscription sees on a partition: the group had committed up to it.
              c = { floor: offset, deadLettered: new Set() }
              commits.set(partition, c)
            }
            return c
          }

          const consumer: Consumer = kafka.consumer({
            groupId,
            sessionTimeout,
            heartbeatInterval,
            rebalanceTimeout: Math.max(sessionTimeout, 10_000),
            // The broker answers a fetch as soon as data arrives, so the wait only paces idle polling. State readers
            // (ephemeral: orders.events, control, … in risk and orders) are idle most of the time: polling them every
            // 50 ms cost an otherwise idle service ~5-10 % of a core here, and the broker as much again.
            maxWaitTimeInMs: ephemeral ? Math.max(maxWaitTimeInMs, EPHEMERAL_MAX_WAIT_MS) : maxWaitTimeInMs,
            minBytes: 1,
            allowAutoTopicCreation: false,
            retry: {
              retries: options.requestRetries ?? 5,
              initialRetryTime: 100,
              maxRetryTime: 2_000,
              // kafkajs may restart this consumer in place (e.g. a join that outlived its retries during a
              // rebalance) only while the subscription is ours. Once it has ended (the stage failed and is being
              // restarted with a new consumer) it must never come back: a consumer revived by kafkajs' restart timer
              // after our disconnect joined the group beside the new one (a broker outage left 2–6 members per
              // process, one holding a partition nobody read). See also the GROUP_JOIN guard below.
              restartOnFailure: async () => state.live && !lifecycle.closed
            }
          })
          consumers.add(consumer)
          /** Partition → its current assignment number (see the module comment); empty between assignments. */
          const assigned = new Map<number, number>()
          const member = { joined: false, assigned }
          if (!ephemeral) {
            const key = memberKey(topic.name, groupId)
            let set = members.get(key)
            if (set === undefined) members.set(key, (set = new Set()))
            set.add(member)
            yield* Effect.addFinalizer(() => Effect.sync(() => set.delete(member)))
          }
          consumer.on(consumer.events.GROUP_JOIN, (event) => {
            // a consumer that joins after its subscription ended is a zombie: it leaves at once
            if (!state.live || lifecycle.closed) {
              void consumer.disconnect().catch(() => undefined)
              return
            }
            member.joined = true
            assigned.clear()
            // kafkajs fetches from the group's committed offsets again: what we knew of them is stale
            commits.clear()
            for (const partition of event.payload.memberAssignment[topic.name] ?? []) assigned.set(partition, nextAssignment())
          })
          const unassign = () => {
            member.joined = false
            assigned.clear()
          }
          consumer.on(consumer.events.REBALANCING, unassign)
          consumer.on(consumer.events.STOP, unassign)
          consumer.on(consumer.events.CRASH, (event) => {
            unassign()
            if (!event.payload.restart) {
              Queue.failCauseUnsafe(
                queue,
                Cause.fail(new BusError({ operation: "subscribe", topic: topic.name, message: messageOf(event.payload.error) }))
              )
            }
          })

          /** Live commits waiting for the OffsetCommit in flight: the highest offset per partition, and who waits on it. */
          const commitWaiters: Array<{ readonly resolve: () => void; readonly reject: (error: unknown) => void }> = []
          const commitTargets = new Map<number, number>()
          let committing = false
          const pumpCommits = (): void => {
            if (committing || commitTargets.size === 0) return
            committing = true
            const offsets = [...commitTargets].map(([partition, offset]) => ({ topic: topic.name, partition, offset: String(offset) }))
            const waiters = commitWaiters.splice(0)
            commitTargets.clear()
            consumer.commitOffsets(offsets).then(
              () => {
                for (const w of waiters) w.resolve()
              },
              (error: unknown) => {
                for (const w of waiters) w.reject(error)
              }
            ).finally(() => {
              committing = false
              pumpCommits()
            })
          }
          const commitLive = (partition: number, offset: number): Promise<void> =>
            new Promise<void>((resolve, reject) => {
              commitTargets.set(partition, Math.max(offset, commitTargets.get(partition) ?? 0))
              commitWaiters.push({ resolve, reject })
              pumpCommits()
            })

          /** Commits `offset` (the next one to read) unless the group is already there; skips dead letters right above it. */
          const commitFrom = (partition: number, offset: number): Effect.Effect<void, BusError> =>
            Effect.suspend(() => {
              const c = partitionCommits(partition, offset)
              let target = offset
              while (c.deadLettered.delete(target)) target++
              if (target <= c.floor) return Effect.void
              c.floor = target
              return state.live
                ? attempt("commit", topic.name, () =>
                  commitLive(partition, target).catch((error: unknown) => {
                    // the group moved on (a rebalance): the partition may be someone else's now. Not committing loses
                    // nothing (whoever owns it next starts at the last commit; redelivery is idempotent downstream)
                    if (rebalanced(error)) return
                    throw error
                  }))
                : commitAsAdmin(groupId, topic.name, partition, target)
            })

          // a durable subscription's fetch is a hop of the tick's path; state followers (ephemeral) are not
          const tracing = latencyTraceOn() && !ephemeral
          const topicTraceName = traceName(topic.name)
          const toItem = (partition: number, message: KafkaMessage): Item<A> => {
            const offset = Number(message.offset)
            const key = message.key?.toString("utf8") ?? ""
            const raw = message.value?.toString("utf8") ?? ""
            partitionCommits(partition, offset)
            const decoded = decode(raw)
            const assignment = assigned.get(partition) ?? -1
            if (tracing && Exit.isSuccess(decoded)) traceFetched(topicTraceName, decoded.value, Number(message.timestamp))
            if (Exit.isSuccess(decoded)) {
              return {
                _tag: "Delivery",
                delivery: {
                  topic: topic.name,
                  key,
                  value: decoded.value,
                  partition,
                  offset,
                  assignment,
                  assigned: Effect.sync(() => state.live && assigned.get(partition) === assignment),
                  // built when run (a stage commits once per batch): a span made per message captures a stack
                  // trace per message, a tenth of the consumer's CPU
                  commit: ephemeral
                    ? Effect.void
                    : Effect.suspend(() =>
                      commitFrom(partition, offset + 1).pipe(
                        Effect.withSpan("KafkaBus.commit", { attributes: { topic: topic.name, partition, offset } })
                      )
                    )
                }
              }
            }
            const error = Cause.squash(decoded.cause)
            return { _tag: "Undecodable", partition, offset, key, raw, error: messageOf(error) }
          }

          /** Waits for room in the buffer, heartbeating so the group keeps this member meanwhile. */
          const offer = async (item: Item<A>, payload: EachBatchPayload): Promise<{ offered: boolean; rejoin: boolean }> => {
            if (Queue.offerUnsafe(queue, item)) return { offered: true, rejoin: false }
            let rejoin = false
            const timer = setInterval(() => {
              payload.heartbeat().catch(() => (rejoin = true))
            }, heartbeatInterval)
            try {
              const offered = await Effect.runPromise(Queue.offer(queue, item)).catch(() => false)
              return { offered, rejoin }
            } finally {
              clearInterval(timer)
            }
          }

          /**
           * A fetched batch goes into the buffer as a whole when it has room (one offer, one resolveOffset), else as
           * much as fits and then one message at a time as room appears (back-pressure). Offering message by
           * message, each through a promise, cost a microtask turn per message.
           */
          const eachBatch = async (payload: EachBatchPayload): Promise<void> => {
            const { batch } = payload
            const messages = batch.messages
            if (messages.length === 0) return
            const items = messages.map((message) => toItem(batch.partition, message))
            let at = 0
            while (at < items.length) {
              if (!state.live || !payload.isRunning() || payload.isStale()) return
              const left = Queue.offerAllUnsafe(queue, at === 0 ? items : items.slice(at)).length
              const taken = items.length - at - left
              if (taken > 0) {
                at += taken
                // Fetch position only: the group's offset moves on Delivery.commit.
                payload.resolveOffset(messages[at - 1].offset)
                continue
              }
              const { offered, rejoin } = await offer(items[at], payload)
              if (!offered) return
              at++
              payload.resolveOffset(messages[at - 1].offset)
              if (rejoin) return
            }
          }

          yield* Effect.acquireRelease(
            attempt("subscribe", topic.name, () => consumer.connect()).pipe(
              // A topic created a moment ago (by this process or another) can be missing from the broker's metadata
              // for a while: kafkajs' subscribe then throws UNKNOWN_TOPIC_OR_PARTITION (retriable; it forgets the
              // topic again, so asking again is safe). Seen in CI on a loaded machine right after the topics' creation.
              Effect.andThen(read("subscribe", topic.name, () =>
                consumer.subscribe({ topic: topic.name, fromBeginning: ephemeral || subscribeOptions.start !== "latest" }))),
              Effect.andThen(attempt("subscribe", topic.name, () =>
                consumer.run({ autoCommit: false, eachBatchAutoResolve: false, partitionsConsumedConcurrently: 1, eachBatch }))),
              Effect.tapError(() => disconnectConsumer(consumer))
            ),
            () =>
              Effect.gen(function*() {
                // Later commits of this subscription's deliveries go the admin way, after the member has left.
                state.live = false
                yield* Queue.shutdown(queue)
                yield* disconnectConsumer(consumer)
              })
          )

          const deadLetter = (item: Undecodable) =>
            Effect.gen(function*() {
              const letter = yield* recordDeadLetter({
                stage: subscribeOptions.group,
                reason: decodeReason(item.raw),
                topic: topic.name,
                key: item.key,
                raw: item.raw,
                error: `${item.error} (partition ${item.partition}, offset ${item.offset})`
              })
              if (ephemeral) return
              if (topic.name !== DeadLetters.name) {
                yield* send(DeadLetters.name, [{ key: item.key, value: deadLetterCodec.encode(letter) }])
              }
              const c = partitionCommits(item.partition, item.offset)
              if (c.floor === item.offset) yield* commitFrom(item.partition, item.offset + 1)
              else c.deadLettered.add(item.offset)
            })

          return Stream.transformPull(Stream.fromQueue(queue), (pull) => Effect.succeed(deliveriesOf(pull, deadLetter, (d) => assigned.get(d.partition) === d.assignment)))
        }).pipe(Effect.withSpan("KafkaBus.subscribe", { attributes: { topic: topic.name, group: subscribeOptions.group } }))
      )

    return Bus.of({
      publish: (topic, key, value) => publishAll(topic, [{ key, value }]),
      publishAll,
      publishRaw,
      subscribe,
      endOffsets,
      readPartition,
      lag,
      ready: Effect.sync(() => status.admin && status.producer && status.healthy),
      consuming: (topic, group) =>
        Effect.sync(() => {
          const set = members.get(memberKey(topic.name, group))
          return set !== undefined && [...set].some((m) => m.joined)
        }),
      assignments: (topic, group) =>
        Effect.sync(() => {
          const now = new Map<number, number>()
          for (const m of members.get(memberKey(topic.name, group)) ?? []) for (const [p, n] of m.assigned) now.set(p, n)
          return now
        })
    })
  })

/** KafkaBus with explicit options (tests, tools). */
export const layerConfig = (options: KafkaBusOptions): Layer.Layer<Bus, BusError> => Layer.effect(Bus, make(options))

/** KafkaBus configured from the environment (see `config`). */
export const layer: Layer.Layer<Bus, BusError | Config.ConfigError> = Layer.effect(
  Bus,
  Effect.gen(function*() {
    const options = yield* config
    return yield* make(options)
  })
)
