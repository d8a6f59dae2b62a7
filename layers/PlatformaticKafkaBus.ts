/**
 * The Bus over Kafka with `@platformatic/kafka`: the same semantics as layers/KafkaBus.ts (kafkajs) and
 * layers/InMemoryBus, checked by test/bus/contract.ts. KAFKA_CLIENT chooses between the two.
 *
 * - Publishing: one idempotent producer (acks=all), keyed by the given key with the Java/kafkajs murmur2 partitioner
 *   (`compatibilityPartitioner`: platformatic's default hashes differently, so a deployment switching clients would
 *   move every symbol to another partition and lose per-symbol order across the switch). Publishes that arrive
 *   while a request is in flight wait in an outbox and leave together in the next request (one in flight: the
 *   idempotent sequence numbers stay in order), as in KafkaBus.
 * - A failed send retires the producer (platformatic resets the producer id itself; we also close the client and
 *   build a new one so no connection of the failed one is reused — the kafkajs lesson of the broker-restart test).
 * - Subscribing: one platformatic Consumer per `subscribe`, `autocommit: false`, mode `committed` (fallback = the
 *   `start` option). Its message stream feeds a bounded Queue; when the queue is full the stream is paused (the
 *   consumer stops fetching; its heartbeats run on their own timer, so the group keeps the member).
 * - `Delivery.commit` goes through the message's own `commit`, which platformatic coalesces per stream (single
 *   flight, highest offset per partition, held over a rejoin). After the subscription has ended it is written with
 *   the admin's OffsetCommit (`alterConsumerGroupOffsets`, public API here), which Kafka accepts only while the group
 *   has no members: with a member present it fails with BusError, as in KafkaBus.
 * - Assignments (as in KafkaBus): each `consumer:group:join` gives every partition assigned a new assignment number,
 *   kept ones included: in `committed` mode platformatic 2.12.1 refetches every assigned partition from the group's
 *   committed offset on each join (messages-stream.js `#assignOffsets`), so what is buffered from before the join
 *   comes again. `consumer:group:rebalance` (a rebalance has started) and `consumer:group:leave` end every
 *   assignment. A delivery whose assignment has ended when it reaches the head of the stream is dropped (the
 *   partition moved, or it is refetched under the new number). On a join the commit floors are forgotten (they are
 *   re-learnt from the refetch) and the fetch positions of the assigned partitions are dropped, so a partition with
 *   no committed offset is refetched from the fallback too instead of going on past the dropped deliveries.
 *   Ephemeral readers (`earliest` mode, no commits, one member) are not refetched on a join: their partitions keep
 *   their numbers and nothing is dropped. `Bus.assignments` reports the durable subscriptions' current numbers (a
 *   failed or ended subscription has none), as KafkaBus does.
 * - `readPartition`: a throw-away group whose offsets are set first (admin OffsetCommit) to the range's start on that
 *   partition and to the end on the others, consumed in `committed` mode, deleted afterwards.
 * - Undecodable messages are dead-lettered at the head of the stream and committed only once every earlier delivery
 *   of their partition is committed (same bookkeeping as KafkaBus). Ephemeral readers use a throw-away group, read
 *   from the earliest offset and never commit.
 */
import { Cause, Duration, Effect, Exit, Layer, Queue, Schedule, Stream } from "effect"
import type { Config, Scope } from "effect"
import {
  Admin,
  compatibilityPartitioner,
  Consumer,
  findErrorBy,
  type Message,
  type MessagesStream,
  ProduceAcks,
  Producer,
  stringDeserializers,
  stringSerializers
} from "@platformatic/kafka"
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
import { deliveriesOf, traceFetched, traceName, traceOutgoing, tracePublished } from "./KafkaDeliveries.ts"
import { config, type KafkaBusOptions } from "./KafkaOptions.ts"

export { config }
export type { KafkaBusOptions }

/** Longest a consumer's close (leave group, close sockets) may hold a subscription's end or the bus's release. */
const consumerCloseTimeout = Duration.seconds(10)
/** Longest an ephemeral subscription's (a state follower's) fetch waits on the broker when there is nothing to read. */
const followerMaxWaitTime = 500
/** Longest a live commit may wait (e.g. for a rejoin that never completes) before it fails with BusError. */
const commitTimeout = Duration.seconds(30)

const messageOf = (error: unknown): string => {
  if (!(error instanceof Error)) return String(error)
  // platformatic wraps per-request errors in an AggregateError: its own message says only "… failed N times"
  const inner = error instanceof AggregateError ? error.errors.map(messageOf).filter((m) => m !== "") : []
  return inner.length > 0 ? `${error.message}: ${[...new Set(inner)].join("; ")}` : error.message
}
/** platformatic marks errors a client may retry (NOT_LEADER, a broker starting, a dropped connection) with `canRetry`. */
const isRetriable = (error: unknown): boolean => error instanceof Error && findErrorBy(error, "canRetry", true) !== null
const alreadyExists = (error: unknown): boolean =>
  error instanceof Error && findErrorBy(error, "apiId", "TOPIC_ALREADY_EXISTS") !== null

type Item<A> =
  | { readonly _tag: "Delivery"; readonly delivery: Delivery<A> }
  | {
    readonly _tag: "Undecodable"
    readonly partition: number
    readonly offset: number
    readonly key: string
    readonly raw: string
    readonly error: string
    readonly commit: () => Promise<void>
  }

/** Per partition: the offset the group has committed up to (as far as this subscription knows) and dead letters above it. */
interface PartitionCommits {
  floor: number
  readonly deadLettered: Map<number, () => Promise<void>>
}

type Msg = Message<string, string, string, string>

export const make = (options: KafkaBusOptions): Effect.Effect<BusShape, BusError, Scope.Scope> =>
  Effect.gen(function*() {
    const bufferSize = options.bufferSize ?? 4096
    const maxBatchMessages = Math.max(1, options.maxBatchMessages ?? 2000)
    const sessionTimeout = options.sessionTimeoutMs ?? 10_000
    const heartbeatInterval = options.heartbeatIntervalMs ?? 1_000
    const maxWaitTime = options.maxWaitTimeMs ?? 50
    const requestRetries = options.requestRetries ?? 5
    const context = yield* Effect.context<never>()
    const runLog = (effect: Effect.Effect<void>) => {
      Effect.runForkWith(context)(effect)
    }
    const base = {
      clientId: options.clientId,
      bootstrapBrokers: [...options.brokers],
      connectTimeout: 1_000,
      timeout: 10_000,
      retries: requestRetries,
      // platformatic's own per-request retries: 100 ms doubling, at most 2 s (as KafkaBus gives kafkajs)
      retryDelay: (_client: unknown, _operation: string, attempt: number) => Math.min(2_000, 100 * 2 ** Math.max(0, attempt - 1)),
      autocreateTopics: false
    }
    /** A client's 'error' event (a failed rejoin, a broken connection) would throw without a listener. */
    const logErrors = (client: { on: (event: "error", listener: (error: Error) => void) => unknown }, name: string) =>
      client.on("error", (error) => runLog(Effect.logDebug(`platformatic ${name}: ${messageOf(error)}`)))

    const admin = new Admin(base)
    logErrors(admin, "admin")
    // `ready`: not closed, and the last broker round trip succeeded.
    const status = { healthy: false }
    const makeProducer = () => {
      const p = new Producer({
        ...base,
        idempotent: true,
        acks: ProduceAcks.ALL,
        partitioner: compatibilityPartitioner,
        serializers: stringSerializers
      })
      logErrors(p, "producer")
      return p
    }
    let producer = makeProducer()
    /**
     * After a failed send the idempotent producer's sequence numbers can no longer be trusted (see KafkaBus: across a
     * broker restart kafkajs failed every later send with OUT_OF_ORDER_SEQUENCE_NUMBER). The next send goes through a
     * new producer (new producer id). Redelivery stays at-least-once, which every consumer handles.
     */
    const replaceProducer = async (): Promise<void> => {
      const old = producer
      producer = makeProducer()
      await old.close(true).catch(() => undefined)
    }

    const attempt = <A>(operation: string, topic: string, f: () => Promise<A>): Effect.Effect<A, BusError> =>
      Effect.tryPromise({
        try: f,
        catch: (error) => new BusError({ operation, topic, message: messageOf(error) })
      }).pipe(
        Effect.tap(() => Effect.sync(() => (status.healthy = true))),
        Effect.tapError(() => Effect.sync(() => (status.healthy = false)))
      )

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

    /** A read the broker may briefly refuse with a retriable error (a leader moving, a broker starting): bounded retries. */
    const read = <A>(operation: string, topic: string, f: () => Promise<A>): Effect.Effect<A, BusError> =>
      Effect.tryPromise({ try: f, catch: (error) => error }).pipe(
        Effect.retry({ schedule: topicBackoff, while: isRetriable }),
        Effect.mapError((error) => new BusError({ operation, topic, message: messageOf(error) })),
        Effect.tap(() => Effect.sync(() => (status.healthy = true))),
        Effect.tapError(() => Effect.sync(() => (status.healthy = false)))
      )

    /** Creates the topics that do not exist yet and waits until every partition has a leader (TOPIC_ALREADY_EXISTS is success). */
    const createTopics = async (names: ReadonlyArray<string>): Promise<void> => {
      await admin.createTopics({ topics: [...names], partitions: options.partitions, replicas: 1 }).catch((error: unknown) => {
        if (!alreadyExists(error)) throw error
      })
      const metadata = await admin.metadata({ topics: [...names], forceUpdate: true })
      for (const name of names) {
        const topic = metadata.topics.get(name)
        if (topic === undefined || topic.partitions.some((p) => p === undefined || p.leader < 0)) {
          throw new Error(`topic ${name} has no leader yet`)
        }
      }
    }
    const created = new Map<string, Promise<void>>()
    /** Creates a topic once per process, before anyone reads or writes it; retried (a fresh broker takes seconds). */
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

    const startUp = Effect.gen(function*() {
      yield* attempt("connect", "*", () => admin.metadata({ topics: [] }))
      yield* attempt("connect", "*", () => producer.metadata({ topics: [] }))
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
    const closeClients = Effect.promise(() =>
      Promise.allSettled([producer.close(true), admin.close()]).then(() => {
        status.healthy = false
      })
    )
    yield* Effect.acquireRelease(startUp.pipe(Effect.onError(() => closeClients)), () => closeClients).pipe(
      Effect.withSpan("PlatformaticKafkaBus.connect")
    )

    /**
     * Every consumer this bus created and has not yet closed. A subscription closes its own when it ends; whatever is
     * left when the bus is released is closed here, before the producer and admin. After that, `subscribe` fails.
     */
    const consumers = new Set<Consumer<string, string, string, string>>()
    const lifecycle = { closed: false }
    /** A consumer in `groupId` with the bus's settings (manual commits), registered in `consumers` to be closed. */
    const openConsumer = (groupId: string, tuning: { readonly highWaterMark?: number; readonly maxWaitTime?: number } = {}) => {
      const consumer = new Consumer<string, string, string, string>({
        ...base,
        groupId,
        sessionTimeout,
        heartbeatInterval,
        rebalanceTimeout: Math.max(sessionTimeout, 10_000),
        maxWaitTime,
        minBytes: 1,
        autocommit: false,
        deserializers: stringDeserializers,
        ...tuning
      })
      consumers.add(consumer)
      return consumer
    }
    const closeConsumer = (consumer: Consumer<string, string, string, string>, stream?: MessagesStream<string, string, string, string>) =>
      Effect.promise(async () => {
        await stream?.close().catch(() => undefined)
        await consumer.close(true).catch(() => undefined)
      }).pipe(
        Effect.timeoutOption(consumerCloseTimeout),
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.sync(() => consumers.delete(consumer))
            : Effect.logWarning("Kafka consumer did not close in time", { timeout: Duration.format(consumerCloseTimeout) })
        )
      )
    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        lifecycle.closed = true
        return Effect.forEach([...consumers], (c) => closeConsumer(c), { concurrency: "unbounded", discard: true })
      })
    )

    // A cheap metadata request keeps `ready` honest while nothing is published.
    yield* Effect.forkScoped(
      attempt("probe", "*", () => admin.metadata({ topics: [], forceUpdate: true })).pipe(
        Effect.timeout("3 seconds"),
        Effect.exit,
        Effect.tap((exit) => Effect.sync(() => (status.healthy = Exit.isSuccess(exit)))),
        Effect.repeat(Schedule.spaced(options.probeInterval ?? "5 seconds"))
      )
    )

    /** Commit for a group without members (admin OffsetCommit: no generation, no member id). */
    const commitAsAdmin = (groupId: string, topic: string, partition: number, offset: number) =>
      attempt("commit", topic, () =>
        admin.alterConsumerGroupOffsets({
          groupId,
          topics: [{ name: topic, partitionOffsets: [{ partition, offset: BigInt(offset) }] }]
        })).pipe(
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
      const messages: Array<{ topic: string; key: string; value: string }> = []
      for (const o of batch) for (const m of o.messages) messages.push({ topic: o.topic, key: m.key, value: m.value })
      if (latencyTraceOn()) traceOutgoing(batch, "send")
      producer.send({ messages }).then(
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
      }).pipe(Effect.withSpan("PlatformaticKafkaBus.publish", { attributes: { topic: topic.name, count: messages.length } }))

    const publishRaw = (topic: string, key: string, value: string) =>
      ensureTopic(topic).pipe(
        Effect.andThen(send(topic, [{ key, value }])),
        Effect.withSpan("PlatformaticKafkaBus.publishRaw", { attributes: { topic } })
      )

    /** Offsets of every partition of `topic` at `timestamp` (-1: the end, -2: the log start). */
    const offsetsAt = (operation: string, topic: string, timestamp: bigint) =>
      Effect.gen(function*() {
        const metadata = yield* read(operation, topic, () => admin.metadata({ topics: [topic] }))
        const count = metadata.topics.get(topic)?.partitionsCount ?? 0
        const partitions = Array.from({ length: count }, (_, partitionIndex) => ({ partitionIndex, timestamp }))
        const [listed] = yield* read(operation, topic, () => admin.listOffsets({ topics: [{ name: topic, partitions }] }))
        return new Map((listed?.partitions ?? []).map((p) => [p.partitionIndex, Number(p.offset)]))
      })

    const endOffsets = (topic: Topic<any>): Effect.Effect<EndOffsets, BusError> =>
      ensureTopic(topic.name).pipe(
        Effect.andThen(offsetsAt("endOffsets", topic.name, -1n)),
        Effect.withSpan("PlatformaticKafkaBus.endOffsets", { attributes: { topic: topic.name } })
      )

    /** Σ over partitions of end offset − the group's committed offset (the log start where it has none). */
    const lag = (topic: Topic<any>, group: string): Effect.Effect<number, BusError> =>
      Effect.gen(function*() {
        yield* ensureTopic(topic.name)
        const ends = yield* offsetsAt("lag", topic.name, -1n)
        const starts = yield* offsetsAt("lag", topic.name, -2n)
        const [committed] = yield* read("lag", topic.name, () =>
          admin.listConsumerGroupOffsets({ groups: [{ groupId: group, topics: [{ name: topic.name, partitionIndexes: [...ends.keys()] }] }] }))
        const byPartition = new Map(
          (committed?.topics.find((t) => t.name === topic.name)?.partitions ?? []).map((p) => [p.partitionIndex, Number(p.committedOffset)])
        )
        let total = 0
        for (const [partition, high] of ends) {
          const low = starts.get(partition) ?? 0
          const at = byPartition.get(partition) ?? -1
          total += high - Math.max(at < 0 ? low : at, low)
        }
        return total
      }).pipe(Effect.withSpan("PlatformaticKafkaBus.lag", { attributes: { topic: topic.name, group } }))

    /** Longest a `readPartition` may take (group join + fetches) before it fails with BusError. */
    const readTimeout = Duration.seconds(30)

    const readPartition = <A>(topic: Topic<A>, partition: number, from: number, to: number) =>
      Effect.gen(function*() {
        yield* ensureTopic(topic.name)
        const lows = yield* offsetsAt("readPartition", topic.name, -2n)
        const highs = yield* offsetsAt("readPartition", topic.name, -1n)
        const high = highs.get(partition)
        if (high === undefined) return [] as ReadonlyArray<PartitionRecord<A>>
        const start = Math.max(from, lows.get(partition) ?? 0)
        const end = Math.min(to, high)
        if (start >= end) return [] as ReadonlyArray<PartitionRecord<A>>
        const groupId = `${options.clientId}.read.${randomUUID()}`
        // the throw-away group starts at `start` on this partition and at the end of every other: it fetches the range only
        yield* attempt("readPartition", topic.name, () =>
          admin.alterConsumerGroupOffsets({
            groupId,
            topics: [{
              name: topic.name,
              partitionOffsets: [...highs].map(([p, h]) => ({ partition: p, offset: BigInt(p === partition ? start : h) }))
            }]
          }))
        const { decode } = topicCodec(topic)
        const consumer = openConsumer(groupId)
        logErrors(consumer, "reader")
        let stream: MessagesStream<string, string, string, string> | undefined
        const fetched = Effect.callback<ReadonlyArray<PartitionRecord<A>>, BusError>((resume) => {
          const out: Array<PartitionRecord<A>> = []
          let finished = false
          const finish = (effect: Effect.Effect<ReadonlyArray<PartitionRecord<A>>, BusError>) => {
            if (finished) return
            finished = true
            resume(effect)
          }
          const failWith = (error: unknown) =>
            finish(Effect.fail(new BusError({ operation: "readPartition", topic: topic.name, message: messageOf(error) })))
          consumer
            .consume({
              topics: [topic.name],
              mode: "committed",
              fallbackMode: "earliest",
              autocommit: false,
              sessionTimeout,
              heartbeatInterval,
              rebalanceTimeout: Math.max(sessionTimeout, 10_000)
            })
            .then((s) => {
              stream = s
              s.on("data", (message: Msg) => {
                if (finished || message.partition !== partition) return
                const offset = Number(message.offset)
                if (offset >= start && offset < end) {
                  const decoded = decode(message.value ?? "")
                  if (Exit.isSuccess(decoded)) out.push({ key: message.key ?? "", value: decoded.value, offset })
                }
                if (offset + 1 >= end) finish(Effect.succeed(out))
              })
              s.on("error", failWith)
            }, failWith)
        })
        return yield* fetched.pipe(
          Effect.timeoutOrElse({
            duration: readTimeout,
            orElse: () =>
              Effect.fail(new BusError({ operation: "readPartition", topic: topic.name, message: `range not read within ${Duration.format(readTimeout)}` }))
          }),
          Effect.ensuring(
            Effect.suspend(() => closeConsumer(consumer, stream)).pipe(
              Effect.andThen(Effect.promise(() => admin.deleteGroups({ groups: [groupId] }).catch(() => undefined)))
            )
          )
        )
      }).pipe(Effect.withSpan("PlatformaticKafkaBus.readPartition", { attributes: { topic: topic.name, partition, from, to } }))

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
          const fail = (message: string) => {
            if (!state.live) return
            member.joined = false
            assigned.clear()
            Queue.failCauseUnsafe(queue, Cause.fail(new BusError({ operation: "subscribe", topic: topic.name, message })))
          }
          const commits = new Map<number, PartitionCommits>()
          const partitionCommits = (partition: number, offset: number): PartitionCommits => {
            let c = commits.get(partition)
            if (c === undefined) {
              // The first offset this subscription sees on a partition: the group had committed up to it.
              c = { floor: offset, deadLettered: new Map() }
              commits.set(partition, c)
            }
            return c
          }

          // platformatic's stream buffers this many messages before it stops fetching; our queue is the buffer
          // A state follower (ephemeral) mostly waits on topics that rarely move: its fetch waits longer on the broker
          // when there is nothing to read (data still returns at once). At 50 ms each follower woke its process 20
          // times a second for nothing (the risk gate follows four topics: ~100 fetches/s when idle); fetches have
          // their own connections, so the group's heartbeats and commits never wait behind one.
          const consumer = openConsumer(groupId, {
            highWaterMark: Math.min(bufferSize, 1024),
            ...(ephemeral ? { maxWaitTime: Math.max(maxWaitTime, followerMaxWaitTime) } : {})
          })
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
          /** The consumer's message stream, once `consume` has returned (the first join happens before). */
          const source: { stream: MessagesStream<string, string, string, string> | undefined } = { stream: undefined }
          // registered before `consume`, so this runs before the stream's own join handler (which schedules the refetch)
          consumer.on("consumer:group:join", () => {
            if (state.live && !lifecycle.closed) member.joined = true
            const now = new Set((consumer.assignments ?? []).filter((a) => a.topic === topic.name).flatMap((a) => a.partitions))
            if (ephemeral) {
              for (const partition of [...assigned.keys()]) if (!now.has(partition)) assigned.delete(partition)
              for (const partition of now) if (!assigned.has(partition)) assigned.set(partition, nextAssignment())
              return
            }
            assigned.clear()
            // platformatic fetches from the group's committed offsets again: what we knew of them is stale, and a
            // floor of the old assignment would skip (or misplace dead letters of) the refetched deliveries' commits
            commits.clear()
            // without a committed offset platformatic would go on from its fetch position, past the deliveries
            // dropped below: forget the position, so the refetch starts at the fallback (as kafkajs does)
            const positions = source.stream?.offsetsToFetch
            for (const partition of now) {
              positions?.delete(`${topic.name}:${partition}`)
              assigned.set(partition, nextAssignment())
            }
          })
          consumer.on("consumer:group:rebalance", () => {
            member.joined = false
            if (!ephemeral) assigned.clear()
          })
          consumer.on("consumer:group:leave", () => {
            member.joined = false
            assigned.clear()
          })
          // A rejoin that failed after platformatic's retries: the stage restarts with a new consumer.
          consumer.on("error", (error) => fail(`consumer: ${messageOf(error)}`))

          /** Commits `offset` (the next one to read) unless the group is already there; skips dead letters right above it. */
          const commitFrom = (partition: number, offset: number, commitOwn: () => Promise<void>): Effect.Effect<void, BusError> =>
            Effect.suspend(() => {
              const c = partitionCommits(partition, offset)
              let target = offset
              let commitLive = commitOwn
              for (let next = c.deadLettered.get(target); next !== undefined; next = c.deadLettered.get(target)) {
                c.deadLettered.delete(target)
                commitLive = next
                target++
              }
              if (target <= c.floor) return Effect.void
              c.floor = target
              return state.live
                ? attempt("commit", topic.name, commitLive).pipe(
                  Effect.timeoutOrElse({
                    duration: commitTimeout,
                    orElse: () =>
                      Effect.fail(new BusError({ operation: "commit", topic: topic.name, message: `no answer in ${Duration.format(commitTimeout)}` }))
                  })
                )
                : commitAsAdmin(groupId, topic.name, partition, target)
            })

          // a durable subscription's fetch is a hop of the tick's path; state followers (ephemeral) are not
          const tracing = latencyTraceOn() && !ephemeral
          const topicTraceName = traceName(topic.name)
          const toItem = (message: Msg): Item<A> => {
            const offset = Number(message.offset)
            const partition = message.partition
            const key = message.key ?? ""
            const raw = message.value ?? ""
            partitionCommits(partition, offset)
            // the message's own commit: offset + 1, coalesced by platformatic's stream
            const commitOwn = () => message.commit() as Promise<void>
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
                  commit: ephemeral
                    ? Effect.void
                    : Effect.suspend(() =>
                      commitFrom(partition, offset + 1, commitOwn).pipe(
                        Effect.withSpan("PlatformaticKafkaBus.commit", { attributes: { topic: topic.name, partition, offset } })
                      )
                    )
                }
              }
            }
            const error = Cause.squash(decoded.cause)
            return { _tag: "Undecodable", partition, offset, key, raw, error: messageOf(error), commit: commitOwn }
          }

          const stream = yield* attempt("subscribe", topic.name, () =>
            consumer.consume({
              topics: [topic.name],
              mode: ephemeral ? "earliest" : "committed",
              fallbackMode: ephemeral || subscribeOptions.start !== "latest" ? "earliest" : "latest",
              autocommit: false,
              sessionTimeout,
              heartbeatInterval,
              rebalanceTimeout: Math.max(sessionTimeout, 10_000)
            })).pipe(Effect.tapError(() => closeConsumer(consumer)))
          source.stream = stream

          /**
           * Messages go to the queue in order; when it is full the stream is paused and what it still hands over waits
           * in `overflow` until the stage has taken enough.
           */
          const overflow: Array<Item<A>> = []
          const drain = async (): Promise<void> => {
            while (overflow.length > 0 && state.live) {
              const offered = await Effect.runPromise(Queue.offer(queue, overflow[0])).catch(() => false)
              if (!offered) return
              overflow.shift()
            }
            if (state.live) stream.resume()
          }
          stream.on("data", (message: Msg) => {
            if (!state.live) return
            const item = toItem(message)
            if (overflow.length === 0 && Queue.offerUnsafe(queue, item)) return
            overflow.push(item)
            if (overflow.length === 1) {
              stream.pause()
              void drain()
            }
          })
          stream.on("error", (error) => fail(`stream: ${messageOf(error)}`))
          stream.on("end", () => fail("the consumer's stream ended"))

          yield* Effect.addFinalizer(() =>
            Effect.gen(function*() {
              // Later commits of this subscription's deliveries go the admin way, after the member has left.
              state.live = false
              member.joined = false
              assigned.clear()
              yield* Queue.shutdown(queue)
              yield* closeConsumer(consumer, stream)
            })
          )

          const deadLetter = (item: Extract<Item<A>, { _tag: "Undecodable" }>) =>
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
              if (c.floor === item.offset) yield* commitFrom(item.partition, item.offset + 1, item.commit)
              else c.deadLettered.set(item.offset, item.commit)
            })

          return Stream.transformPull(Stream.fromQueue(queue), (pull) =>
            // a delivery whose partition was revoked since it was fetched is not ours to act on (see the module comment)
            Effect.succeed(deliveriesOf(pull, deadLetter, (d) => assigned.get(d.partition) === d.assignment)))
        }).pipe(Effect.withSpan("PlatformaticKafkaBus.subscribe", { attributes: { topic: topic.name, group: subscribeOptions.group } }))
      )

    return Bus.of({
      publish: (topic, key, value) => publishAll(topic, [{ key, value }]),
      publishAll,
      publishRaw,
      subscribe,
      endOffsets,
      readPartition,
      lag,
      ready: Effect.sync(() => !lifecycle.closed && status.healthy),
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

/** PlatformaticKafkaBus with explicit options (tests, tools). */
export const layerConfig = (options: KafkaBusOptions): Layer.Layer<Bus, BusError> => Layer.effect(Bus, make(options))

/** PlatformaticKafkaBus configured from the environment (see KafkaBus `config`). */
export const layer: Layer.Layer<Bus, BusError | Config.ConfigError> = Layer.effect(
  Bus,
  Effect.gen(function*() {
    const options = yield* config
    return yield* make(options)
  })
)
