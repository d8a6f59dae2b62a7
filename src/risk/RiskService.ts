/**
 * Runs the risk gate over the bus. State is rebuilt first from `orders.events` (positions), `signals.approved`
 * and `signals.rejected` (decisions already taken, pending orders) and `control` (paused or not); then candidates
 * are decided while those four topics keep the state current, whoever writes them.
 *
 * Scale-out: instances share the `risk` group and each decides the symbols of its partitions of
 * `signals.candidate`; every instance follows all four state topics, including the other instances' decisions
 * (every apply is idempotent). When a partition is (re)assigned here, the first candidate of each symbol in the new
 * assignment waits until the state topics are applied up to their ends at that moment: the previous owner's decisions and the
 * fills of its orders are known before this instance decides for the symbol. The trade caps count every instance's
 * approvals as they are followed, so near the cap two instances deciding within the same instant can exceed it by
 * one each (a cap, not an exact count, across instances).
 */
import { Clock, Effect, Metric, Stream } from "effect"
import { Bus, follow, makeCommitBehind } from "../bus/Bus.ts"
import type { Approved, Rejected } from "../domain/Messages.ts"
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
import { traceMark } from "../observability/LatencyTrace.ts"
import { candidateToDecisionSeconds, perAttributes, secondsBetween } from "../observability/Metrics.ts"

export { riskLimitsConfig } from "./RiskConfig.ts"

export const approvedTotal = Metric.counter("risk_approved_total", { description: "Candidates approved" })
// labels fixed once per (symbol, side): updated per approval, on the way to the order (see perAttributes)
const approvedBy = perAttributes((attributes) => Metric.counter("risk_approved_total", { description: "Candidates approved", attributes }))
export const rejectedTotal = Metric.counter("risk_rejected_total", { description: "Candidates rejected" })

export const RISK_GROUP = "risk"

export const runRisk = (limits: RiskLimits) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bus = yield* Bus
      const state = initialRiskState()
      const group = `${RISK_GROUP}-state`
      let live = false
      // applied on their own fibers (state mutations are synchronous): every instance's approvals, rejections and
      // order events, so a symbol that moves here mid-run finds what its previous owner decided. Approvals first, then
      // the order events that resolve them (the canonical rebuild); the gate's state does not depend on that order
      // (live, the readers run side by side and one may replay its topic while the other is live; see applyApproved)
      const approved = yield* follow(SignalsApproved, group, (a) => applyApproved(state, a))
      const orders = yield* follow(OrdersEvents, group, (e) => applyOrder(state, e))
      const rejected = yield* follow(SignalsRejected, group, (r) => applyRejected(state, r))
      // inline, not an observer: a /pause is applied on its publisher's turn, before any candidate published after it
      const control = yield* follow(ControlTopic, group, (c) => {
        applyControl(state, c)
        if (!live) return
        return Effect.logInfo(c.command === "pause" ? "approvals paused" : "approvals resumed", {
          by: c.by,
          ...(c.symbol === undefined ? {} : { symbol: c.symbol })
        })
      }, undefined, { observer: false })
      live = true
      yield* Effect.logInfo("risk state rebuilt", {
        orderEvents: orders.applied(),
        approvals: approved.applied(),
        pending: state.pending.size,
        paused: state.paused
      })
      const followers = [orders, approved, rejected, control]
      /** symbol → the assignment of its signals.candidate partition under which this instance caught up for it */
      const caughtUpFor = new Map<string, number>()
      // A batch at a time: every candidate of it decided in order, the decisions published in one request per
      // topic, the candidates committed once. Per candidate, a publish and a commit round trip each capped the gate
      // at a few dozen candidates/s over Kafka. The commit of a batch overlaps the next batch (see makeCommitBehind).
      const committer = makeCommitBehind()
      yield* bus.subscribe(SignalsCandidate, { group: RISK_GROUP }).pipe(
        Stream.runForEachArray((candidates) =>
          Effect.gen(function*() {
            const approvals: Array<{ readonly key: string; readonly value: Approved }> = []
            const rejections: Array<{ readonly key: string; readonly value: Rejected }> = []
            const decided: Array<{ readonly decision: Approved | Rejected; readonly emittedAt: number | undefined; readonly now: number }> = []
            for (const delivery of candidates) {
              const candidate = delivery.value
              traceMark(candidate.origin.tickId, "risk")
              if (caughtUpFor.get(candidate.symbol) !== delivery.assignment) {
                // the symbol's first candidate since its partition was (re)assigned here: whatever its previous owner
                // approved, rejected or filled before now is applied before we decide (a redelivered candidate then
                // gets the answer it already had)
                yield* Effect.forEach(followers, (f) => f.caughtUp, { concurrency: "unbounded", discard: true })
                caughtUpFor.set(candidate.symbol, delivery.assignment)
                yield* Effect.logInfo("risk state caught up for a symbol", { symbol: candidate.symbol, partition: delivery.partition, from: delivery.offset })
              }
              const now = yield* Clock.currentTimeMillis
              const decision = decide(state, limits, candidate, now)
              decided.push({ decision, emittedAt: candidate.emittedAt, now })
              if (decision._tag === "Approved") {
                traceMark(candidate.origin.tickId, "approved")
                approvals.push({ key: candidate.symbol, value: decision })
              } else rejections.push({ key: candidate.symbol, value: decision })
            }
            // both topics in flight together when both have decisions: the Kafka bus carries them in one produce
            // request; one topic alone is published as is (no fibers forked and joined around it on the way to the order)
            if (approvals.length > 0 && rejections.length > 0) {
              yield* Effect.all([bus.publishAll(SignalsApproved, approvals), bus.publishAll(SignalsRejected, rejections)], {
                concurrency: "unbounded",
                discard: true
              })
            } else if (approvals.length > 0) yield* bus.publishAll(SignalsApproved, approvals)
            else if (rejections.length > 0) yield* bus.publishAll(SignalsRejected, rejections)
            // metrics and Info lines once the decisions are published: a line's formatting sat between the decision
            // and the publish that wakes the order stage (~0.06 ms of "approved → orders" at 1k ticks/s)
            for (const { decision, emittedAt, now } of decided) {
              const symbol = decision.candidate.symbol
              if (emittedAt !== undefined) yield* Metric.update(candidateToDecisionSeconds.by({ symbol }), secondsBetween(emittedAt, now))
              if (decision._tag === "Approved") {
                yield* Metric.update(approvedBy({ symbol, side: decision.orderSide }), 1)
                yield* Effect.logInfo("approved", { id: decision.id, symbol, action: decision.action, qty: decision.qty })
              } else {
                yield* Metric.update(rejectedTotal.pipe(Metric.withAttributes({ symbol, reason: decision.reason })), 1)
                yield* Effect.logInfo("rejected", { id: decision.id, symbol, reason: decision.reason, detail: decision.detail })
              }
            }
            yield* committer.commit(candidates)
          })
        ),
        Effect.andThen(committer.flush)
      )
    })
  ).pipe(Effect.annotateLogs({ stage: "risk" }))
