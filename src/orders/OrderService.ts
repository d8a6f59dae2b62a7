/**
 * Runs the order manager over the bus: rebuilds from `orders.events`, then handles `signals.approved` in per-symbol
 * lanes. Each symbol has its own FIFO lane (one fiber): a symbol's orders stay in order, and a stuck symbol (backoff,
 * lookups, a held request) never delays another. Orders a previous run left in flight are reconciled first, each in
 * its symbol's lane, ahead of that symbol's new approvals.
 *
 * Commits with lanes: a Kafka commit is cumulative per partition, so a delivery is committed only when it and every
 * delivery before it on its partition are done (`CommitTracker`). A crash therefore redelivers at most what was not
 * finished, and redelivered approvals are recognised from `orders.events` and not sent again. A lane does not wait for
 * that commit's answer before its next approval (`makeCommitBehind`: one commit in flight, newer ones coalesced).
 * Control messages lift halts on /resume. A lane that fails (bus error) fails the stage, which is restarted and rebuilds.
 *
 * Scale-out: instances share the `orders` group; each places the orders of the symbols of its partitions of
 * `signals.approved`. Every instance follows all of `orders.events`, so it knows every client order id sent or
 * settled by anyone: a redelivered approval is never sent again (Binance only refuses a duplicate
 * newClientOrderId while the first order is open). A symbol's orders left in flight are reconciled by whoever
 * takes the symbol over, after catching up with `orders.events`, never by every instance at start: as soon as the
 * symbol's partition is assigned (`Bus.assignments`), or at its first approval on a bus without that (`takeOver`).
 * An approval queued in a lane when its partition moves elsewhere is left to the new owner (`Delivery.assigned`), and
 * so is one already being driven: every signed request and every order event is fenced by the delivery's assignment
 * (`Ownership`), and a retry or resend first catches up with `orders.events`, so a revoked owner never sends a client
 * order id again beside the new owner.
 */
import { Cause, Deferred, Duration, Effect, Schedule, Stream } from "effect"
import { Bus, type Delivery, follow, makeCommitBehind, replayThenLive } from "../bus/Bus.ts"
import { partitionOf } from "../bus/Partitioner.ts"
import type { BusError } from "../domain/Errors.ts"
import type { Approved } from "../domain/Messages.ts"
import { ControlTopic, OrdersEvents, SignalsApproved } from "../domain/Topics.ts"
import { traceMark } from "../observability/LatencyTrace.ts"
import { makeOrderManager, type OrderManagerOptions, type Ownership } from "./OrderManager.ts"

export const ORDERS_GROUP = "orders"

/** How often the stage looks for partitions of signals.approved newly assigned to it. */
const ASSIGNMENT_POLL = Duration.seconds(1)

/**
 * Which deliveries may be committed: per partition, the deliveries taken so far under its current assignment, in
 * offset order; `done` marks one finished and returns the last of the finished prefix (commit it: everything up to
 * it is done), if it moved.
 *
 * A partition's list belongs to one assignment: a delivery of a new assignment (a rebalance, the partition kept or
 * given back) starts a new list, and deliveries of an ended assignment are neither tracked nor committed. A job left
 * to the partition's new owner is `drop`ped. Without this, an entry skipped at a rebalance stayed at the head for
 * good (the redeliveries at the same offsets marked the stale entries done instead of their own), and the partition
 * never committed again in this process.
 */
export const makeCommitTracker = <D extends { readonly partition: number; readonly offset: number; readonly assignment: number }>() => {
  const pending = new Map<number, { readonly assignment: number; readonly entries: Array<{ readonly delivery: D; done: boolean }> }>()
  return {
    track: (d: D): void => {
      const list = pending.get(d.partition)
      if (list === undefined || list.assignment !== d.assignment) {
        pending.set(d.partition, { assignment: d.assignment, entries: [{ delivery: d, done: false }] })
        return
      }
      list.entries.push({ delivery: d, done: false })
    },
    done: (d: D): D | undefined => {
      const list = pending.get(d.partition)
      if (list === undefined || list.assignment !== d.assignment) return undefined
      const entry = list.entries.find((e) => e.delivery === d)
      if (entry !== undefined) entry.done = true
      let last: D | undefined
      while (list.entries.length > 0 && list.entries[0].done) last = list.entries.shift()!.delivery
      return last
    },
    /** Forgets a delivery that will not be handled here (its partition moved): never committed by this instance. */
    drop: (d: D): void => {
      const list = pending.get(d.partition)
      if (list === undefined || list.assignment !== d.assignment) return
      const i = list.entries.findIndex((e) => e.delivery === d)
      if (i >= 0) list.entries.splice(i, 1)
      if (list.entries.length === 0) pending.delete(d.partition)
    },
    /** Deliveries taken and not yet committable (for diagnostics and tests). */
    size: (): number => {
      let n = 0
      for (const list of pending.values()) n += list.entries.length
      return n
    }
  }
}

export const runOrders = (options: OrderManagerOptions) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bus = yield* Bus
      const manager = yield* makeOrderManager(options)
      // every instance's order events, history then live: what was sent, settled or is in flight, whoever sent it
      const events = yield* follow(OrdersEvents, `${ORDERS_GROUP}-state`, manager.observe)
      yield* Effect.logInfo("order state rebuilt", { orderEvents: events.applied(), inFlight: yield* manager.inFlight })
      yield* manager.refreshRules.pipe(
        Effect.catch((e) => Effect.logWarning("exchange filters not loaded yet; will retry on first order", { error: e._tag }))
      )
      // inline, not an observer: a /resume lifts the halts before an approval published after it is handled
      const control = yield* replayThenLive(ControlTopic, `${ORDERS_GROUP}-control`, { observer: false })
      yield* control.live.pipe(Stream.runForEach((c) => Effect.sync(() => manager.control(c))), Effect.forkScoped)

      // a lane's failure ends the stage (the supervisor restarts it and it rebuilds from orders.events)
      const failed = yield* Deferred.make<never, BusError>()
      const scope = yield* Effect.scope
      /**
       * A symbol's lane: its jobs run one after the other in one fiber, started when a job arrives at an idle lane and
       * ending when the lane is empty again. Started immediately: the job runs on the caller's turn up to its first
       * wait (the order request on the wire), where a queue hand-off to a standing fiber cost a scheduler dispatch per
       * approval ("orders → lane" in the trace). The caller goes on at that first wait, so a symbol's slow order never
       * holds another symbol's approvals.
       */
      interface Lane {
        readonly symbol: string
        readonly pending: Array<Effect.Effect<void, BusError>>
        running: boolean
      }
      const lanes = new Map<string, Lane>()
      const drain = (lane: Lane, job: Effect.Effect<void, BusError>): Effect.Effect<void, BusError> =>
        Effect.andThen(job, Effect.suspend(() => {
          const next = lane.pending.shift()
          if (next !== undefined) return drain(lane, next)
          lane.running = false
          return Effect.void
        }))
      const laneOf = (symbol: string): Lane => {
        let lane = lanes.get(symbol)
        if (lane === undefined) {
          lane = { symbol, pending: [], running: false }
          lanes.set(symbol, lane)
        }
        return lane
      }
      /** Runs `job` in the idle `lane`, then the lane's pending jobs, in a fiber of its own. */
      const start = (lane: Lane, job: Effect.Effect<void, BusError>): Effect.Effect<void> => {
        lane.running = true
        return drain(lane, job).pipe(
          Effect.annotateLogs({ lane: lane.symbol }),
          Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Deferred.failCause(failed, cause)),
          Effect.forkIn(scope, { startImmediately: true }),
          Effect.asVoid
        )
      }
      const enqueue = (symbol: string, job: Effect.Effect<void, BusError>): Effect.Effect<void> =>
        Effect.suspend(() => {
          const lane = laneOf(symbol)
          if (!lane.running) return start(lane, job)
          lane.pending.push(job)
          return Effect.void
        })

      /** The fence of a drive started for `d`: its partition's assignment still current; catch-up with orders.events. */
      const isAssigned = bus.isAssigned
      const ownership = (d: Delivery<Approved>): Ownership =>
        isAssigned === undefined
          ? { owned: d.assigned, catchUp: events.caughtUp }
          : { owned: d.assigned, ownedNow: () => isAssigned(d.assignment), catchUp: events.caughtUp }

      /** symbol → the assignment of its signals.approved partition under which this instance took the symbol over */
      const ownedUnder = new Map<string, number>()
      /**
       * The symbol's first approval since its partition was (re)assigned here (start, restart, rebalance): catch up
       * with orders.events (what the previous owner sent and settled, up to now), then reconcile the symbol's orders
       * left in flight, in its lane, ahead of its new approvals. Redelivered approvals are then recognised.
       */
      const takeOver = (d: Delivery<Approved>) =>
        Effect.gen(function*() {
          const symbol = d.value.candidate.symbol
          yield* events.caughtUp
          ownedUnder.set(symbol, d.assignment)
          const open = (yield* manager.inFlightOrders).filter((o) => o.symbol === symbol)
          if (open.length > 0) yield* Effect.logWarning("reconciling orders left in flight", { symbol, count: open.length })
          for (const o of open) yield* enqueue(symbol, o.reconcile(ownership(d)))
        })

      /**
       * At assignment time, not at the first approval: a partition newly assigned here (start, restart, rebalance)
       * has its symbols' orders left in flight reconciled at once, each in its lane, fenced by that assignment.
       * Waiting for an approval is not enough: an order a dead owner gave up on (OrderUncertain, symbol pending at the
       * risk gate) gets no new approval, so nobody would ever reconcile it. A symbol's partition is the one the
       * producers chose (`partitionOf`, murmur2). Needs `Bus.assignments`; without it the first approval does it.
       */
      const assignmentsOf = bus.assignments
      if (assignmentsOf !== undefined) {
        const partitions = Math.max(1, (yield* bus.endOffsets(SignalsApproved)).size)
        const current = assignmentsOf(SignalsApproved, ORDERS_GROUP)
        const seen = new Map<number, number>()
        const takeOverPartition = (partition: number, assignment: number) =>
          Effect.gen(function*() {
            yield* events.caughtUp
            const owner: Ownership = { owned: Effect.map(current, (now) => now.get(partition) === assignment), catchUp: events.caughtUp }
            const open = (yield* manager.inFlightOrders).filter((o) => partitionOf(o.symbol, partitions) === partition && ownedUnder.get(o.symbol) !== assignment)
            if (open.length === 0) return
            yield* Effect.logWarning("partition assigned: reconciling orders left in flight", { partition, count: open.length })
            for (const o of open) {
              ownedUnder.set(o.symbol, assignment)
              yield* enqueue(o.symbol, o.reconcile(owner))
            }
          })
        yield* Effect.gen(function*() {
          for (const [partition, assignment] of yield* current) {
            if (seen.get(partition) === assignment) continue
            seen.set(partition, assignment)
            yield* takeOverPartition(partition, assignment)
          }
        }).pipe(
          Effect.repeat(Schedule.spaced(ASSIGNMENT_POLL)),
          Effect.catchCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Deferred.failCause(failed, cause)),
          Effect.forkScoped
        )
      }

      const tracker = makeCommitTracker<Delivery<Approved>>()
      /**
       * The lane goes on to its next approval while the commit of the handled prefix is in flight (one commit in flight,
       * later ones coalesced per partition: makeCommitBehind). Before, each approval of a symbol waited for the previous
       * one's commit round trip. The commit still names only deliveries handled with every one before them, is skipped
       * if the partition moved meanwhile (the new owner commits), and a failed commit fails the stage at once, as before.
       */
      const committer = makeCommitBehind(scope)
      const behind = (d: Delivery<Approved>): Delivery<Approved> => ({
        ...d,
        commit: Effect.flatMap(d.assigned, (owned) => owned ? d.commit : Effect.void).pipe(
          Effect.tapCause((cause) => Cause.hasInterruptsOnly(cause) ? Effect.void : Deferred.failCause(failed, cause))
        )
      })
      /** After `d` was handled: commit it with everything handled before it, unless its partition moved meanwhile. */
      const handled = (d: Delivery<Approved>) =>
        Effect.gen(function*() {
          // moved while it was handled: the new owner commits (a commit of an ended assignment is refused or stale)
          if (!(yield* d.assigned)) return tracker.drop(d)
          const committable = tracker.done(d)
          if (committable !== undefined) yield* committer.commit([behind(committable)])
        })
      const job = (d: Delivery<Approved>) =>
        Effect.gen(function*() {
          // queued here before the partition moved to another instance: the new owner handles it (uncommitted)
          if (!(yield* d.assigned)) {
            tracker.drop(d)
            return yield* Effect.logInfo("approval left to the partition's new owner", { signalId: d.value.id, partition: d.partition })
          }
          yield* manager.handle(d.value, ownership(d))
          yield* handled(d)
        })
      const accept = (d: Delivery<Approved>): Effect.Effect<void> => {
        traceMark(d.value.origin.tickId, "orders")
        tracker.track(d)
        const lane = laneOf(d.value.candidate.symbol)
        if (!lane.running) {
          // the tick → order path: an idle lane's new approval has its request written here, before the lane's fiber
          // starts (see OrderManager.placeNow); the fiber then awaits its answer. Anything else goes through `handle`.
          // The request is on the wire once placeNow returns; the lane's fiber is forked only when the effect returned
          // below runs. An interrupt in between (this consume fiber's, i.e. the stage ending: `failed` won the race
          // or the supervisor stopped it) leaves the request sent with its answer not awaited. Safe: its OrderSubmitted
          // is already durable on orders.events, so the restarted stage finds the order in flight and reconciles it
          // (looks it up) before the symbol's next approval. `lane.running` (set by `start` before that effect runs)
          // is then left true, but only in the `lanes` of the stage that ended: a restart builds its own.
          const placed = manager.placeNow(d.value, ownership(d))
          if (placed !== undefined) return start(lane, Effect.andThen(placed, handled(d)))
        }
        return enqueue(lane.symbol, job(d))
      }
      const consume = bus.subscribe(SignalsApproved, { group: ORDERS_GROUP }).pipe(
        Stream.runForEach((d) =>
          ownedUnder.get(d.value.candidate.symbol) === d.assignment ? Effect.suspend(() => accept(d)) : Effect.andThen(takeOver(d), Effect.suspend(() => accept(d)))
        )
      )
      yield* Effect.raceFirst(consume, Deferred.await(failed))
    })
  ).pipe(Effect.annotateLogs({ stage: "orders" }))
