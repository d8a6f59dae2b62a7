/**
 * The Bus: publish by topic with a key (the symbol), subscribe as a consumer group, commit after handling.
 * Stages never know the transport: in-memory (layers/InMemoryBus) and Kafka (layers/KafkaBus) implement this.
 *
 * Semantics both backends hold (the contract tests run against each):
 * - per-key order is preserved;
 * - a delivery is redelivered to the same group after a restart unless it (or a later one of its partition) was committed;
 * - a new group starts at `start` ("earliest" by default, so nothing is lost);
 * - an ephemeral subscription never commits and starts at the earliest offset: it is how stages rebuild state;
 * - every delivery says which assignment of its partition to this subscription it came in (`assignment`): a new
 *   number whenever the partition is (re)assigned (a new subscription, a Kafka rebalance). Deliveries of an
 *   assignment that has ended are never handed out after it ended. A stage that keeps per-key state rebuilds it
 *   for a key the first time it sees that key in a new assignment: another instance may have handled the key's
 *   messages in between (scale-out), so what the stage holds may be stale;
 * - `readPartition` reads a range of one partition's history (what came before the first offset a new assignment
 *   delivers), without a group's offsets.
 */
import { Clock, Context, Deferred, Effect, Exit, Fiber, Metric, Pull, Schema, Stream } from "effect"
import type { Cause, Duration, Scope } from "effect"
import { BusError } from "../domain/Errors.ts"
import { DEAD_LETTER_RAW_MAX, type DeadLetter } from "../domain/Messages.ts"
import { DeadLetters, type Topic } from "../domain/Topics.ts"

export interface Delivery<A> {
  readonly topic: string
  readonly key: string
  readonly value: A
  readonly partition: number
  readonly offset: number
  /**
   * The assignment of this partition to this subscription the delivery came in: unique within the process,
   * changes whenever the partition is (re)assigned (new subscription, rebalance). See the module comment.
   */
  readonly assignment: number
  /** Whether that assignment is still current (false once the partition was revoked or the subscription ended). */
  readonly assigned: Effect.Effect<boolean>
  /** Marks this delivery and everything before it on its partition as handled by the group. */
  readonly commit: Effect.Effect<void, BusError>
}

/** A record of a partition's history, as `readPartition` returns it. */
export interface PartitionRecord<A> {
  readonly key: string
  readonly value: A
  readonly offset: number
}

let assignments = 0
/** A new assignment number, unique within the process (both backends draw from it). */
export const nextAssignment = (): number => ++assignments

export interface SubscribeOptions {
  readonly group: string
  /** Where a group without a committed offset starts. */
  readonly start?: "earliest" | "latest"
  /** Reads from the earliest offset, never commits, holds no retention. */
  readonly ephemeral?: boolean
  /**
   * Reads along, off the tick → order path (state followers, the operator view, notifications). The in-memory bus
   * wakes such a reader once the publishing fiber has run on to its next wait (a microtask), not inline inside the
   * publish: an inline wake ran every follower of `signals.approved` before the order stage, and the four followers
   * of `orders.events` between the durable OrderSubmitted and the request it guards. Kafka buses ignore it.
   */
  readonly observer?: boolean
}

/** End offset (next offset to be written) per partition. */
export type EndOffsets = ReadonlyMap<number, number>

export interface BusShape {
  readonly publish: <A>(topic: Topic<A>, key: string, value: A) => Effect.Effect<void, BusError>
  readonly publishAll: <A>(
    topic: Topic<A>,
    messages: ReadonlyArray<{ readonly key: string; readonly value: A }>
  ) => Effect.Effect<void, BusError>
  /**
   * Messages of a topic for a group. Undecodable messages are dead-lettered (topic `dlq`, stage = the group),
   * counted, logged and committed; the stream goes on.
   */
  readonly subscribe: <A>(topic: Topic<A>, options: SubscribeOptions) => Stream.Stream<Delivery<A>, BusError>
  /**
   * In-process buses only: whether the assignment numbered `assignment` (a Delivery's) is still current, read at once,
   * from the bus's own state (a wrapper that rewrites deliveries cannot leave a stale answer behind: an assignment
   * number the bus did not give out is never current). The order manager's first placement fences with it.
   */
  readonly isAssigned?: (assignment: number) => boolean
  /**
   * In-process buses only: appends the message at once and returns true (it is then exactly as durable as `publish`
   * makes it), or returns false, having done nothing, when that would have to wait (a full topic): use `publish`.
   * The order manager's first placement makes its OrderSubmitted durable through it without the interpreter.
   */
  readonly publishNow?: <A>(topic: Topic<A>, key: string, value: A) => boolean
  /** Publishes an already-encoded payload as is (dead-letter forwarding, tests of undecodable input). */
  readonly publishRaw: (topic: string, key: string, value: string) => Effect.Effect<void, BusError>
  readonly endOffsets: (topic: Topic<any>) => Effect.Effect<EndOffsets, BusError>
  /**
   * The decodable records of `partition` with offsets in [from, to), oldest first (`from` is raised to the log's
   * start, `to` lowered to its end; undecodable records are skipped). Reads exactly that range, no group involved.
   */
  readonly readPartition: <A>(
    topic: Topic<A>,
    partition: number,
    from: number,
    to: number
  ) => Effect.Effect<ReadonlyArray<PartitionRecord<A>>, BusError>
  /** Messages of `topic` not yet committed by `group` (0 when caught up). */
  readonly lag: (topic: Topic<any>, group: string) => Effect.Effect<number, BusError>
  /** Whether the transport is currently usable (for /health). */
  readonly ready: Effect.Effect<boolean>
  /**
   * Whether a durable subscription of this process to `topic` as `group` is consuming now (subscribed and, over
   * Kafka, a member of its group that is not crashed or rejoining). For /ready.
   */
  readonly consuming: (topic: Topic<any>, group: string) => Effect.Effect<boolean>
  /**
   * The partitions of `topic` assigned now to this process's durable subscription as `group`, each with its current
   * assignment number (the one its deliveries carry). Lets a stage act on a partition it was just given before any
   * message arrives on it (the order manager reconciles the in-flight orders of its symbols). Optional: a backend
   * without it leaves that to the first delivery.
   */
  readonly assignments?: (topic: Topic<any>, group: string) => Effect.Effect<ReadonlyMap<number, number>>
}

export class Bus extends Context.Service<Bus, BusShape>()("autotrader/bus/Bus") {}

export interface TopicCodec<A> {
  readonly encode: (a: A) => string
  readonly decode: (raw: unknown) => Exit.Exit<A, Schema.SchemaError>
}

/**
 * Codecs by schema (by the topic's fast paths when it has them): building one compiles the schema's parser, too costly
 * for every publish (a namespaced bus copies the topic, never its schema).
 */
const codecs = new WeakMap<object, TopicCodec<any>>()

/**
 * JSON codec of a topic, built once per schema and cached. Same result as `Schema.fromJsonString(schema)`, but the
 * JSON step runs outside the schema (JSON.stringify / JSON.parse on the encoded value): going through the
 * string schema cost twice as much per message (Tick: ~300k/s vs ~650k/s encode on one core). Text that is not
 * JSON is decoded by `fromJsonString` itself, so its error is the same as before. A topic's `fast` paths (market.raw)
 * go first; whatever they are not sure of goes through the schema.
 */
export const topicCodec = <A>(topic: Topic<A>): TopicCodec<A> => {
  const fast = topic.fast
  let codec = codecs.get(fast ?? topic.schema)
  if (codec === undefined) {
    const json = Schema.decodeUnknownExit(Schema.fromJsonString(topic.schema))
    const encodeValue = Schema.encodeSync(topic.schema) as (a: A) => unknown
    const decodeValue = Schema.decodeUnknownExit(topic.schema)
    codec = {
      encode: (a: A) => fast?.encode(a) ?? JSON.stringify(encodeValue(a)),
      decode: (raw: unknown) => {
        if (typeof raw !== "string") return json(raw)
        let parsed: unknown
        try {
          parsed = JSON.parse(raw)
        } catch {
          return json(raw)
        }
        const value = fast?.decode(parsed)
        return value === undefined ? decodeValue(parsed) : Exit.succeed(value)
      }
    } satisfies TopicCodec<any>
    codecs.set(fast ?? topic.schema, codec)
  }
  return codec
}

/** How a follower reads along (`follow`, `replayThenLive`). */
export interface FollowOptions {
  /**
   * Woken off the publisher's path (`SubscribeOptions.observer`; default true): right for state that only has to be
   * current before a stage's *next wait* (orders.events state, the operator view, the notifier). false for what must
   * take effect before the next message of another topic is handled, on the publisher's turn: an operator's control
   * (a /pause applied a microtask after its publish let a candidate decided in between be approved).
   */
  readonly observer?: boolean
}

/**
 * Everything on `topic` now (from the earliest offset) as `history`, then `live` messages from the same reader,
 * so a stage can rebuild its state before it acts and miss nothing in between. The reader lives in the caller's Scope.
 */
export const replayThenLive = <A>(
  topic: Topic<A>,
  group: string,
  options: FollowOptions = {}
): Effect.Effect<
  { readonly history: ReadonlyArray<A>; readonly live: Stream.Stream<A, BusError> },
  BusError,
  Bus | Scope.Scope
> =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const ends = yield* bus.endOffsets(topic)
    const pending = new Map<number, number>()
    for (const [partition, end] of ends) if (end > 0) pending.set(partition, end)
    const pull = yield* Stream.toPull(bus.subscribe(topic, { group, ephemeral: true, observer: options.observer ?? true }))
    const history: Array<A> = []
    while (pending.size > 0) {
      const chunk = yield* pull.pipe(
        Pull.catchDone(() => Effect.fail(new BusError({ operation: "replay", topic: topic.name, message: "subscription ended" })))
      )
      for (const d of chunk) {
        history.push(d.value)
        const end = pending.get(d.partition)
        if (end !== undefined && d.offset + 1 >= end) pending.delete(d.partition)
      }
    }
    const live = Stream.fromPull(Effect.succeed(pull)).pipe(Stream.map((d) => d.value))
    return { history, live }
  })

/**
 * The last `n` records of `key` on `partition` before offset `before`, oldest first: read backwards in windows that
 * double (from `4n`), bounded by the log's start (below it `readPartition` returns nothing, at no cost) and by
 * `maxScan` offsets looked at in all (a key absent from a long log costs at most that much). How a new owner of a key rebuilds per-key state from the history of its input.
 */
export const lastOfKey = <A>(
  topic: Topic<A>,
  partition: number,
  before: number,
  key: string,
  n: number,
  maxScan = 200_000
): Effect.Effect<ReadonlyArray<PartitionRecord<A>>, BusError, Bus> =>
  Effect.gen(function*() {
    const bus = yield* Bus
    let found: Array<PartitionRecord<A>> = []
    let to = before
    let window = Math.max(64, 4 * n)
    let scanned = 0
    while (found.length < n && to > 0 && scanned < maxScan) {
      const from = Math.max(0, to - window)
      const records = yield* bus.readPartition(topic, partition, from, to)
      const mine = records.filter((r) => r.key === key)
      found = [...mine, ...found]
      scanned += to - from
      to = from
      window *= 2
    }
    return found.slice(Math.max(0, found.length - n))
  })

/**
 * A whole-topic reader that applies every message of `topic` (history first, then live) with `apply` (a mutation, or
 * an effect), on a fiber of its own in the caller's Scope. Returns once the history (everything published before the call) is applied, with
 * `caughtUp`: waits until everything published before *it* was called is applied (bounded by `within`; a reader that
 * failed or fell that far behind fails it with BusError). How a stage that has just been given a key makes sure it
 * has seen what the key's previous owner wrote before it acts.
 */
export interface Follower {
  /** Messages applied so far. */
  readonly applied: () => number
  readonly caughtUp: Effect.Effect<void, BusError>
}

export const follow = <A>(
  topic: Topic<A>,
  group: string,
  apply: (a: A) => void | Effect.Effect<void>,
  within: Duration.Input = "60 seconds",
  options: FollowOptions = {}
): Effect.Effect<Follower, BusError, Bus | Scope.Scope> =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const positions = new Map<number, number>()
    let applied = 0
    let moved = Deferred.makeUnsafe<void, BusError>()
    const failed = { error: undefined as BusError | undefined }
    yield* bus.subscribe(topic, { group, ephemeral: true, observer: options.observer ?? true }).pipe(
      Stream.runForEachArray((deliveries) =>
        Effect.gen(function*() {
          for (const d of deliveries) {
            const effect = apply(d.value)
            if (effect !== undefined) yield* effect
            applied++
            positions.set(d.partition, Math.max(positions.get(d.partition) ?? 0, d.offset + 1))
          }
          const woke = moved
          moved = Deferred.makeUnsafe<void, BusError>()
          Deferred.doneUnsafe(woke, Exit.void)
        })
      ),
      Effect.tapError((e) =>
        Effect.sync(() => {
          failed.error = e
          Deferred.doneUnsafe(moved, Exit.fail(e))
        })
      ),
      Effect.forkScoped
    )
    const reached = (ends: EndOffsets): boolean => {
      for (const [partition, end] of ends) if (end > 0 && (positions.get(partition) ?? 0) < end) return false
      return true
    }
    const caughtUp = Effect.gen(function*() {
      const ends = yield* bus.endOffsets(topic)
      return yield* Effect.gen(function*() {
        while (!reached(ends)) {
          if (failed.error !== undefined) return yield* failed.error
          yield* Deferred.await(moved)
        }
      }).pipe(
        Effect.timeoutOrElse({
          duration: within,
          orElse: () =>
            Effect.fail(
              new BusError({
                operation: "catchUp",
                topic: topic.name,
                message: `not caught up within ${String(within)}: at ${JSON.stringify([...positions])}, ends ${JSON.stringify([...ends])}`
              })
            )
        })
      )
    })
    yield* caughtUp
    return { applied: () => applied, caughtUp }
  })

/** Commits a handled batch: the last delivery of each partition (Kafka commits are cumulative per partition). */
export const commitBatch = (deliveries: ReadonlyArray<Delivery<unknown>>): Effect.Effect<void, BusError> => {
  const last = new Map<number, Delivery<unknown>>()
  for (const d of deliveries) last.set(d.partition, d)
  // concurrently: a backend may carry the partitions' commits in one request
  return Effect.forEach(last.values(), (d) => d.commit, { discard: true, concurrency: "unbounded" })
}

/**
 * Commits batch after batch without holding the stage for a commit's round trip: one commit is in flight at a time
 * (in a child fiber of the stage); batches handled meanwhile only record their last delivery per partition, and the
 * newest of those is committed as soon as the commit in flight is answered. Commits stay in order and cumulative per
 * partition, and only ever name handled deliveries; a commit failure fails the stage at its next `commit` or `flush`.
 * A stage stopped in between has at most the batches since the last answered commit redelivered (at-least-once, as
 * any crash). The drain waits for lag 0 at the broker, so it sees the last commit land.
 *
 * The commit fiber is a child of the caller, or lives in `scope` when one is given (a caller that ends early).
 *
 * Before, each batch waited for the previous batch's commit: a stage then took one batch per commit round trip, and
 * at 1k ticks/s over Kafka a tick waited ~6 ms in the signal stage's queue behind commits (LATENCY_TRACE, 2026-12-02).
 */
export const makeCommitBehind = (scope?: Scope.Scope): {
  readonly commit: (deliveries: ReadonlyArray<Delivery<unknown>>) => Effect.Effect<void, BusError>
  /** Waits until everything handed to `commit` is committed (raising a commit's error), e.g. when the input ended. */
  readonly flush: Effect.Effect<void, BusError>
} => {
  /** partition → the newest handled delivery not yet committed */
  let pending = new Map<number, Delivery<unknown>>()
  /** A commit loop is running (set before it is forked, cleared in the same step in which it finds nothing left). */
  let active = false
  let current: Fiber.Fiber<void, BusError> | undefined
  /** How the commit loop ended when it did not succeed: a BusError, but also a defect or an interruption. */
  let failure: Cause.Cause<BusError> | undefined
  const loop: Effect.Effect<void, BusError> = Effect.suspend(() => {
    if (pending.size === 0) {
      active = false
      current = undefined
      return Effect.void
    }
    const batch = [...pending.values()]
    pending = new Map()
    return Effect.flatMap(commitBatch(batch), () => loop)
  })
  // Every way the loop can end other than success is kept (not only a typed error): a commit fiber that died or was
  // interrupted would otherwise leave `active` set, and every later commit would return at once, committing nothing.
  const guarded = loop.pipe(
    Effect.onExit((exit) =>
      Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => {
        failure = exit.cause
        active = false
        current = undefined
      })
    )
  )
  const flush: Effect.Effect<void, BusError> = Effect.suspend(() => {
    if (failure !== undefined) return Effect.failCause(failure)
    if (active) return current === undefined ? Effect.flatMap(Effect.yieldNow, () => flush) : Effect.flatMap(Fiber.join(current), () => flush)
    if (pending.size === 0) return Effect.void
    active = true
    return Effect.flatMap(guarded, () => flush)
  })
  return {
    flush,
    commit: (deliveries) =>
      Effect.suspend(() => {
        if (failure !== undefined) return Effect.failCause(failure)
        for (const d of deliveries) pending.set(d.partition, d)
        if (active || pending.size === 0) return Effect.void
        active = true
        // in `scope` when given: a caller that ends before the commit is answered (an order lane) must not take it along
        return Effect.map(scope === undefined ? Effect.forkChild(guarded) : Effect.forkIn(guarded, scope), (fiber) => {
          if (active) current = fiber
        })
      })
  }
}

/**
 * The same bus with every topic and consumer group name prefixed: several deployments (or test runs) share one
 * Kafka cluster without seeing each other's messages, offsets or state.
 */
export const namespaced = (prefix: string, bus: BusShape): BusShape => {
  if (prefix === "") return bus
  const at = <A>(topic: Topic<A>): Topic<A> => ({ ...topic, name: `${prefix}${topic.name}` })
  return {
    publish: (topic, key, value) => bus.publish(at(topic), key, value),
    publishAll: (topic, messages) => bus.publishAll(at(topic), messages),
    publishRaw: (name, key, value) => bus.publishRaw(`${prefix}${name}`, key, value),
    subscribe: (topic, options) =>
      bus.subscribe(at(topic), { ...options, group: `${prefix}${options.group}` }).pipe(
        Stream.map((d) => ({ ...d, topic: topic.name }))
      ),
    endOffsets: (topic) => bus.endOffsets(at(topic)),
    readPartition: (topic, partition, from, to) => bus.readPartition(at(topic), partition, from, to),
    lag: (topic, group) => bus.lag(at(topic), `${prefix}${group}`),
    ready: bus.ready,
    consuming: (topic, group) => bus.consuming(at(topic), `${prefix}${group}`),
    ...(bus.assignments === undefined ? {} : { assignments: (topic, group) => bus.assignments!(at(topic), `${prefix}${group}`) }),
    ...(bus.publishNow === undefined ? {} : { publishNow: (topic, key, value) => bus.publishNow!(at(topic), key, value) }),
    ...(bus.isAssigned === undefined ? {} : { isAssigned: bus.isAssigned })
  }
}

/** Every input that failed to decode anywhere (exchange frames, REST answers, bus messages), by stage and reason. */
export const deadLettersTotal = Metric.counter("dead_letters_total", {
  description: "Inputs that failed to decode and were dead-lettered (topic dlq), by stage and reason"
})

/** `not_json` when the payload is not JSON at all, `schema` when it is JSON of the wrong shape. */
export const decodeReason = (raw: string): "not_json" | "schema" => {
  try {
    JSON.parse(raw)
    return "schema"
  } catch {
    return "not_json"
  }
}

export interface DeadLetterInput {
  readonly stage: string
  readonly reason: string
  readonly topic: string
  readonly key: string
  readonly raw: string
  readonly error: string
}

/** Counts and logs an undecodable input and returns its dead letter (raw cut at DEAD_LETTER_RAW_MAX), ready to publish. */
export const recordDeadLetter = (input: DeadLetterInput): Effect.Effect<DeadLetter> =>
  Effect.gen(function*() {
    const ts = yield* Clock.currentTimeMillis
    yield* Metric.update(deadLettersTotal.pipe(Metric.withAttributes({ stage: input.stage, reason: input.reason })), 1)
    const cut = input.raw.length > DEAD_LETTER_RAW_MAX
    const raw = cut ? input.raw.slice(0, DEAD_LETTER_RAW_MAX) : input.raw
    yield* Effect.logWarning("dead letter", {
      stage: input.stage,
      reason: input.reason,
      topic: input.topic,
      key: input.key,
      raw: raw.length > 2000 ? `${raw.slice(0, 2000)}… (${input.raw.length} chars)` : raw,
      error: input.error.slice(0, 2000)
    })
    return { ...input, raw, ...(cut ? { rawLength: input.raw.length } : {}), ts }
  })

/** Records and publishes a dead letter on `dlq`; a failing publish is logged, never raised (the stream goes on). */
export const publishDeadLetter = (bus: BusShape, input: DeadLetterInput): Effect.Effect<void> =>
  recordDeadLetter(input).pipe(
    Effect.flatMap((letter) => bus.publish(DeadLetters, input.key, letter)),
    Effect.catch((e) => Effect.logError("dead-letter publish failed", { stage: input.stage, error: e.message }))
  )
