/**
 * Runs the risk gate over the bus. State is rebuilt first from `orders.events` (positions), `signals.approved`
 * and `signals.rejected` (decisions already taken, pending orders) and `control` (paused or not); then candidates
 * are decided while order events and control messages keep the state current.
 */
import { Clock, Effect, Metric, Stream } from "effect"
import { Bus, type Delivery, makeCommitBehind, replayThenLive } from "../bus/Bus.ts"
import type { Approved, Candidate, Control, OrderEvent, Rejected } from "../domain/Messages.ts"
import { ControlTopic, OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected } from "../domain/Topics.ts"
import {
  applyApproved,
  applyControl,
  applyOrder,
  applyRejected,
  decide,
  initialRiskState,
  type RiskLimits
} from "./RiskGate.ts"
import { candidateToDecisionSeconds, secondsBetween } from "../observability/Metrics.ts"

export { riskLimitsConfig } from "./RiskConfig.ts"

export const approvedTotal = Metric.counter("risk_approved_total", { description: "Candidates approved" })
export const rejectedTotal = Metric.counter("risk_rejected_total", { description: "Candidates rejected" })

export const RISK_GROUP = "risk"

type Input =
  | { readonly _tag: "Candidate"; readonly delivery: Delivery<Candidate> }
  | { readonly _tag: "Order"; readonly event: OrderEvent }
  | { readonly _tag: "Control"; readonly control: Control }

export const runRisk = (limits: RiskLimits) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bus = yield* Bus
      const state = initialRiskState()
      const group = `${RISK_GROUP}-state`
      const orders = yield* replayThenLive(OrdersEvents, group)
      const approved = yield* replayThenLive(SignalsApproved, group)
      const rejected = yield* replayThenLive(SignalsRejected, group)
      const control = yield* replayThenLive(ControlTopic, group)
      for (const a of approved.history) applyApproved(state, a)
      for (const r of rejected.history) applyRejected(state, r)
      for (const e of orders.history) applyOrder(state, e)
      for (const c of control.history) applyControl(state, c)
      yield* Effect.logInfo("risk state rebuilt", {
        orderEvents: orders.history.length,
        approvals: approved.history.length,
        pending: state.pending.size,
        paused: state.paused
      })
      const inputs = Stream.mergeAll(
        [
          bus.subscribe(SignalsCandidate, { group: RISK_GROUP }).pipe(Stream.map((delivery): Input => ({ _tag: "Candidate", delivery }))),
          orders.live.pipe(Stream.map((event): Input => ({ _tag: "Order", event }))),
          control.live.pipe(Stream.map((c): Input => ({ _tag: "Control", control: c })))
        ],
        { concurrency: "unbounded" }
      )
      // our own approvals/rejections come back on these topics; they were applied when decided
      yield* Stream.merge(approved.live, rejected.live).pipe(Stream.runDrain, Effect.forkScoped)
      // A batch at a time: every candidate of it decided in order (order events and control messages applied where
      // they arrived), the decisions published in one request per topic, the candidates committed once. Per
      // candidate, a publish and a commit round trip each capped the gate at a few dozen candidates/s over Kafka.
      // the commit of a batch overlaps the next batch (see makeCommitBehind)
      const committer = makeCommitBehind()
      yield* inputs.pipe(
        Stream.runForEachArray((batch) =>
          Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const approvals: Array<{ readonly key: string; readonly value: Approved }> = []
            const rejections: Array<{ readonly key: string; readonly value: Rejected }> = []
            const candidates: Array<Delivery<Candidate>> = []
            for (const input of batch) {
              switch (input._tag) {
                case "Order":
                  applyOrder(state, input.event)
                  break
                case "Control":
                  applyControl(state, input.control)
                  yield* Effect.logInfo(input.control.command === "pause" ? "approvals paused" : "approvals resumed", {
                    by: input.control.by
                  })
                  break
                case "Candidate": {
                  const candidate = input.delivery.value
                  candidates.push(input.delivery)
                  const decision = decide(state, limits, candidate, now)
                  if (candidate.emittedAt !== undefined) {
                    yield* Metric.update(
                      candidateToDecisionSeconds.pipe(Metric.withAttributes({ symbol: candidate.symbol })),
                      secondsBetween(candidate.emittedAt, now)
                    )
                  }
                  if (decision._tag === "Approved") {
                    approvals.push({ key: candidate.symbol, value: decision })
                    yield* Metric.update(approvedTotal.pipe(Metric.withAttributes({ symbol: candidate.symbol, side: decision.orderSide })), 1)
                    yield* Effect.logInfo("approved", { id: decision.id, symbol: candidate.symbol, action: decision.action, qty: decision.qty })
                  } else {
                    rejections.push({ key: candidate.symbol, value: decision })
                    yield* Metric.update(rejectedTotal.pipe(Metric.withAttributes({ symbol: candidate.symbol, reason: decision.reason })), 1)
                    yield* Effect.logInfo("rejected", { id: decision.id, symbol: candidate.symbol, reason: decision.reason, detail: decision.detail })
                  }
                }
              }
            }
            if (candidates.length === 0) return
            // both topics in flight together: the Kafka bus carries them in one produce request
            yield* Effect.all([bus.publishAll(SignalsApproved, approvals), bus.publishAll(SignalsRejected, rejections)], {
              concurrency: "unbounded",
              discard: true
            })
            yield* committer.commit(candidates)
          })
        ),
        Effect.andThen(committer.flush)
      )
    })
  ).pipe(Effect.annotateLogs({ stage: "risk" }))
