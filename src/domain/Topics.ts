/** Topic names and the schema of what travels on each. The bus encodes with these, in memory and over Kafka alike. */
import type { Schema } from "effect"
import { Alert, Approved, Candidate, Control, DeadLetter, MarketGap, OrderEvent, Rejected, Tick, tickJson } from "./Messages.ts"

/**
 * Hand-written JSON paths for a topic every tick crosses. Each may only accept what the schema accepts and must give
 * the same result (same JSON text, same decoded value); `undefined` means "not sure": the schema path then decides,
 * so refusals and their messages always come from the schema.
 */
export interface FastJson<A> {
  // methods, not function properties: a Topic<Approved> stays usable where a Topic<Approved | Rejected> is expected
  encode(a: A): string | undefined
  /** From the JSON-parsed message. */
  decode(parsed: unknown): A | undefined
}

export interface Topic<A> {
  readonly name: string
  readonly schema: Schema.Codec<A, any, never, never>
  readonly fast?: FastJson<A>
}

const topic = <A>(name: string, schema: Schema.Codec<A, any, never, never>, fast?: FastJson<A>): Topic<A> =>
  fast === undefined ? { name, schema } : { name, schema, fast }

export const MarketRaw = topic("market.raw", Tick, tickJson)
export const SignalsCandidate = topic("signals.candidate", Candidate)
export const SignalsApproved = topic("signals.approved", Approved)
export const SignalsRejected = topic("signals.rejected", Rejected)
export const OrdersEvents = topic("orders.events", OrderEvent)
export const ControlTopic = topic("control", Control)
export const Alerts = topic("alerts", Alert)
export const DeadLetters = topic("dlq", DeadLetter)
export const MarketGaps = topic("market.gaps", MarketGap)

export const AllTopics: ReadonlyArray<Topic<any>> = [
  MarketRaw,
  SignalsCandidate,
  SignalsApproved,
  SignalsRejected,
  OrdersEvents,
  ControlTopic,
  Alerts,
  DeadLetters,
  MarketGaps
]
