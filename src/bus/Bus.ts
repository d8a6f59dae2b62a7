/**
 * The Bus: publish by topic with a key (the symbol), subscribe as a consumer group, commit after handling.
 * Stages never know the transport: in-memory (layers/InMemoryBus) and Kafka (layers/KafkaBus) implement this.
 *
 * Semantics both backends hold (the contract tests run against each):
 * - per-key order is preserved;
 * - a delivery is redelivered to the same group after a restart unless it (or a later one of its partition) was committed;
 * - a new group starts at `start` ("earliest" by default, so nothing is lost);
 * - an ephemeral subscription never commits and starts at the earliest offset: it is how stages rebuild state.
 */
import { Context, Deferred, Effect, Schema, Stream } from "effect"
import type { Scope } from "effect"
import type { BusError } from "../domain/Errors.ts"
import type { Topic } from "../domain/Topics.ts"

export interface Delivery<A> {
  readonly topic: string
  readonly key: string
  readonly value: A
  readonly partition: number
  readonly offset: number
  /** Marks this delivery and everything before it on its partition as handled by the group. */
  readonly commit: Effect.Effect<void, BusError>
}

export interface SubscribeOptions {
  readonly group: string
  /** Where a group without a committed offset starts. */
  readonly start?: "earliest" | "latest"
  /** Reads from the earliest offset, never commits, holds no retention. */
  readonly ephemeral?: boolean
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
   * Messages of a topic for a group. Undecodable messages are dead-lettered (topic `deadletter`),
   * counted, logged and committed; the stream goes on.
   */
  readonly subscribe: <A>(topic: Topic<A>, options: SubscribeOptions) => Stream.Stream<Delivery<A>, BusError>
  readonly endOffsets: (topic: Topic<any>) => Effect.Effect<EndOffsets, BusError>
  /** Whether the transport is currently usable (for /health). */
  readonly ready: Effect.Effect<boolean>
}

export class Bus extends Context.Service<Bus, BusShape>()("autotrader/bus/Bus") {}

/** JSON codec of a topic, built once per topic. */
export const topicCodec = <A>(topic: Topic<A>) => {
  const json = Schema.fromJsonString(topic.schema)
  return {
    encode: Schema.encodeSync(json) as (a: A) => string,
    decode: Schema.decodeUnknownExit(json)
  }
}

/**
 * Everything on `topic` now (from the earliest offset), then live messages: `initial` completes when the
 * reader has caught up with the end offsets taken at the start, so a stage can rebuild its state before it acts.
 */
export const replayThenLive = <A>(
  topic: Topic<A>,
  group: string
): Effect.Effect<
  { readonly caughtUp: Effect.Effect<void>; readonly stream: Stream.Stream<A, BusError> },
  BusError,
  Bus | Scope.Scope
> =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const ends = yield* bus.endOffsets(topic)
    const done = yield* Deferred.make<void>()
    const pending = new Map<number, number>()
    for (const [partition, end] of ends) if (end > 0) pending.set(partition, end)
    if (pending.size === 0) yield* Deferred.succeed(done, undefined)
    const stream = bus.subscribe(topic, { group, ephemeral: true }).pipe(
      Stream.tap((d) =>
        Effect.suspend(() => {
          const end = pending.get(d.partition)
          if (end !== undefined && d.offset + 1 >= end) {
            pending.delete(d.partition)
            if (pending.size === 0) return Deferred.succeed(done, undefined)
          }
          return Effect.void
        })
      ),
      Stream.map((d) => d.value)
    )
    return { caughtUp: Deferred.await(done), stream }
  })
