/** Topic names and the schema of what travels on each. The bus encodes with these, in memory and over Kafka alike. */
import type { Schema } from "effect"
import { Alert, Approved, Candidate, Control, DeadLetter, MarketGap, OrderEvent, Rejected, Tick } from "./Messages.ts"

export interface Topic<A> {
  readonly name: string
  readonly schema: Schema.Codec<A, any, never, never>
}

const topic = <A>(name: string, schema: Schema.Codec<A, any, never, never>): Topic<A> => ({ name, schema })

export const MarketRaw = topic("market.raw", Tick)
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
