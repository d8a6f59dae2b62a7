/**
 * The stream side of a Kafka subscription (both clients: layers/KafkaBus.ts, layers/PlatformaticKafkaBus.ts, each with
 * its own undecodable-item type): the buffer's items as arrays of deliveries, without an Effect per message. An undecodable item
 * is dead-lettered when it reaches the head, i.e. once the stage has pulled every delivery before it: a pulled array
 * is cut at the first undecodable item and the rest kept for the next pull. Also the buses' LATENCY_TRACE marks
 * (publish, send, acked, fetched, created, pulled), one copy for both clients.
 */
import { Effect } from "effect"
import type { Array as Arr, Pull } from "effect"
import type { Delivery } from "../src/bus/Bus.ts"
import type { BusError } from "../src/domain/Errors.ts"
import { AllTopics } from "../src/domain/Topics.ts"
import { latencyTraceOn, traceMark, traceTickOf, traceTopic } from "../src/observability/LatencyTrace.ts"

const topicNames = AllTopics.map((t) => t.name)

/**
 * LATENCY_TRACE marks of both Kafka buses (off: the callers test `latencyTraceOn()` first, one boolean per publish
 * or fetch). The topic's mark name drops a deployment prefix (`traceTopic`).
 */
export const traceName = (topic: string): string => traceTopic(topic, topicNames)

/** A publish of `messages` to `topic`: marks `publish:<topic>` per tick they descend from; returns those ticks. */
export const tracePublished = (topic: string, messages: ReadonlyArray<{ readonly value: unknown }>): ReadonlyArray<string> => {
  const traced: Array<string> = []
  for (const m of messages) {
    const id = traceTickOf(m.value)
    if (id !== undefined) traced.push(id)
  }
  const name = `publish:${traceName(topic)}`
  for (const id of traced) traceMark(id, name)
  return traced
}

/** A produce request's publishes at `point` (`send`: it leaves, `acked`: the broker answered). */
export const traceOutgoing = (
  batch: ReadonlyArray<{ readonly topic: string; readonly traced?: ReadonlyArray<string> | undefined }>,
  point: "send" | "acked"
): void => {
  for (const o of batch) {
    if (o.traced === undefined) continue
    const name = `${point}:${traceName(o.topic)}`
    for (const id of o.traced) traceMark(id, name)
  }
}

/** A record a durable subscription fetched: `fetched:<topic>` now and `created:<topic>` at the record's CreateTime. */
export const traceFetched = (topicTraceName: string, value: unknown, createdAt: number): void => {
  const id = traceTickOf(value)
  if (id === undefined) return
  traceMark(id, `fetched:${topicTraceName}`)
  traceMark(id, `created:${topicTraceName}`, createdAt)
}

export type BufferedItem<A, U extends { readonly _tag: "Undecodable" }> =
  | { readonly _tag: "Delivery"; readonly delivery: Delivery<A> }
  | U

export const deliveriesOf = <A, U extends { readonly _tag: "Undecodable" }, E>(
  pull: Pull.Pull<Arr.NonEmptyReadonlyArray<BufferedItem<A, U>>, E, void>,
  deadLetter: (item: U) => Effect.Effect<void, BusError>,
  /** Whether a delivery's assignment is still current: one fetched under an ended assignment is dropped. */
  current: (delivery: Delivery<A>) => boolean
): Pull.Pull<Arr.NonEmptyReadonlyArray<Delivery<A>>, E | BusError, void> => {
  let rest: ReadonlyArray<BufferedItem<A, U>> = []
  const next = (items: ReadonlyArray<BufferedItem<A, U>>): Pull.Pull<Arr.NonEmptyReadonlyArray<Delivery<A>>, E | BusError, void> => {
    let lead = 0
    while (lead < items.length && items[lead]._tag === "Undecodable") lead++
    if (lead > 0) {
      const letters = items.slice(0, lead) as Array<U>
      const after = items.slice(lead)
      return Effect.flatMap(
        Effect.forEach(letters, deadLetter, { discard: true }),
        () => (after.length > 0 ? next(after) : Effect.flatMap(pull, next))
      )
    }
    let end = 0
    while (end < items.length && items[end]._tag === "Delivery") end++
    rest = end < items.length ? items.slice(end) : []
    const out: Array<Delivery<A>> = []
    for (let i = 0; i < end; i++) {
      const delivery = (items[i] as { readonly delivery: Delivery<A> }).delivery
      if (current(delivery)) out.push(delivery)
    }
    if (latencyTraceOn()) {
      // LATENCY_TRACE: the stage has pulled these (the queue between the consumer and the stage is behind them)
      for (const d of out) {
        const id = traceTickOf(d.value)
        if (id !== undefined) traceMark(id, `pulled:${traceName(d.topic)}`)
      }
    }
    if (out.length === 0) {
      // all of them fetched under an assignment that has ended: not ours to act on
      if (rest.length === 0) return Effect.flatMap(pull, next)
      const more = rest
      rest = []
      return next(more)
    }
    return Effect.succeed(out as unknown as Arr.NonEmptyReadonlyArray<Delivery<A>>)
  }
  return Effect.suspend(() => {
    if (rest.length === 0) return Effect.flatMap(pull, next)
    const items = rest
    rest = []
    return next(items)
  })
}
