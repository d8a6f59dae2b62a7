/**
 * Runs the order manager over the bus: rebuilds from `orders.events`, reconciles what a previous run left in
 * flight, then handles `signals.approved` one at a time, committing each after its order reached a final or
 * in-flight state. Control messages lift halts on /resume.
 */
import { Effect, Stream } from "effect"
import { Bus, replayThenLive } from "../bus/Bus.ts"
import { ControlTopic, OrdersEvents, SignalsApproved } from "../domain/Topics.ts"
import { makeOrderManager, type OrderManagerOptions } from "./OrderManager.ts"

export const ORDERS_GROUP = "orders"

export const runOrders = (options: OrderManagerOptions) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bus = yield* Bus
      const manager = yield* makeOrderManager(options)
      const events = yield* replayThenLive(OrdersEvents, `${ORDERS_GROUP}-state`)
      manager.rebuild(events.history)
      yield* Effect.logInfo("order state rebuilt", { orderEvents: events.history.length, inFlight: yield* manager.inFlight })
      yield* manager.refreshRules.pipe(
        Effect.catch((e) => Effect.logWarning("exchange filters not loaded yet; will retry on first order", { error: e._tag }))
      )
      yield* events.live.pipe(Stream.runForEach((e) => Effect.sync(() => manager.observe(e))), Effect.forkScoped)
      const control = yield* replayThenLive(ControlTopic, `${ORDERS_GROUP}-control`)
      yield* control.live.pipe(
        Stream.runForEach((c) => Effect.sync(() => manager.setPaused(c.command === "pause"))),
        Effect.forkScoped
      )
      yield* manager.resumeInFlight
      yield* bus.subscribe(SignalsApproved, { group: ORDERS_GROUP }).pipe(
        Stream.runForEach((d) => manager.handle(d.value).pipe(Effect.andThen(d.commit)))
      )
    })
  ).pipe(Effect.annotateLogs({ stage: "orders" }))
