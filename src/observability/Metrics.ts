/**
 * Metric naming, by Prometheus's conventions (https://prometheus.io/docs/practices/naming/): a single-word
 * application prefix per area (`ingest_`, `signals_`, `risk_`, `orders_`, `store_`, `bus_`, `exchange_`,
 * `telegram_`), base units in names and values (`_seconds`, `_bytes`; never `_ms`), `_total` on counters and only
 * on counters, snake_case, labels for what varies (`symbol`, `side`, `reason`, `stage`, `group`, `topic`), never a
 * label with unbounded values (ids, prices). `test/observability/metrics-lint.test.ts` checks every exposed metric
 * against these rules (and against `promtool check metrics` where promtool is installed).
 *
 * The pipeline's latency histograms live here, with one set of buckets: 100 µs to 10 s.
 */
import { Metric } from "effect"

/** Histogram upper bounds in seconds: 100 µs … 10 s, about ×2.5 per step (1-2.5-5 per decade). */
export const LATENCY_BUCKETS_SECONDS: ReadonlyArray<number> = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10
]

/**
 * A metric per attribute set, built (by `make`) once per set, for per-tick and per-order updates:
 * `Metric.withAttributes` merges its attributes into a new context on every update, and a metric updated under
 * alternating attribute sets (BUY, SELL) derives its series key (attributes sorted, then JSON) again each time; a
 * metric built with its attributes keys its series once. Same series (type, name, description, attributes), same
 * exposition. Only for bounded attribute values (symbol, side).
 */
export const perAttributes = <M>(make: (attributes: Record<string, string>) => M): (attributes: Record<string, string>) => M => {
  const built = new Map<string, M>()
  return (attributes) => {
    const key = JSON.stringify(attributes)
    let m = built.get(key)
    if (m === undefined) {
      m = make(attributes)
      built.set(key, m)
    }
    return m
  }
}

const latency = (name: string, description: string) => {
  const metric = Metric.histogram(name, { description, boundaries: LATENCY_BUCKETS_SECONDS })
  return Object.assign(metric, {
    /** The same histogram with its labels fixed (see `perAttributes`). */
    by: perAttributes((attributes) => Metric.histogram(name, { description, boundaries: LATENCY_BUCKETS_SECONDS, attributes }))
  })
}

/** Labels: symbol. */
export const tickToCandidateSeconds = latency(
  "signals_tick_to_candidate_seconds",
  "Tick received by ingest to candidate published by the signal worker"
)
/** Labels: symbol. */
export const candidateToDecisionSeconds = latency(
  "risk_candidate_to_decision_seconds",
  "Candidate published to the risk gate's decision (approved or rejected)"
)
/** Labels: symbol, side. */
export const decisionToAckSeconds = latency(
  "orders_decision_to_ack_seconds",
  "Approval by the risk gate to the exchange's answer to the order (ack, fill or rejection)"
)
/** Labels: symbol, side. */
export const tickToOrderSeconds = latency(
  "orders_tick_to_ack_seconds",
  "End to end: tick received by ingest to the exchange's answer to the order it caused"
)

/** Labels: group, topic. Sampled by the runtime; over Kafka, what a consumer group has yet to commit. */
export const consumerLagMessages = Metric.gauge("bus_consumer_lag_messages", {
  description: "Messages of a topic not yet committed by a consumer group"
})

/** Milliseconds (Clock) → seconds, for the histograms above. */
export const secondsBetween = (fromMs: number, toMs: number): number => Math.max(0, toMs - fromMs) / 1000
