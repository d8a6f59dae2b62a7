import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import { startStages } from "../../src/runtime/Supervisor.ts"
import type { Alert } from "../../src/domain/Messages.ts"
import { Alerts, ControlTopic } from "../../src/domain/Topics.ts"
import { Health } from "../../src/observability/Health.ts"

const layer = Health.layer("test").pipe(Layer.provideMerge(InMemoryBus.layerTest()))
const smallBus = Health.layer("test").pipe(Layer.provideMerge(InMemoryBus.layerTest({ capacity: 10 })))

describe("stage supervision", () => {
  it.effect("a failing stage is reported (health, alert) and restarted with backoff; the others keep running", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const health = yield* Health
      const alerts: Array<Alert> = []
      yield* bus.subscribe(Alerts, { group: "t" }).pipe(Stream.runForEach((d) => Effect.sync(() => alerts.push(d.value))), Effect.forkScoped)
      const attempts = yield* Ref.make(0)
      const steady = yield* Ref.make(0)
      yield* startStages([
        {
          name: "flaky",
          run: Ref.updateAndGet(attempts, (n) => n + 1).pipe(
            Effect.flatMap((n) => (n === 1 ? Effect.fail("boom") : Effect.never))
          )
        },
        { name: "steady", run: Ref.update(steady, (n) => n + 1).pipe(Effect.andThen(Effect.never)) }
      ])
      for (let i = 0; i < 5; i++) yield* Effect.yieldNow
      const failed = yield* health.report
      assert.strictEqual(failed.status, "degraded")
      assert.strictEqual(failed.stages.flaky.status, "failed")
      assert.strictEqual(failed.stages.steady.status, "running")
      assert.strictEqual(alerts.length, 1)
      assert.match(alerts[0].message, /stage flaky failed and is restarting/)
      assert.strictEqual(yield* Ref.get(attempts), 1)
      yield* TestClock.adjust("2 seconds") // first restart delay: 1 s, jittered
      assert.strictEqual(yield* Ref.get(attempts), 2)
      const recovered = yield* health.report
      assert.strictEqual(recovered.stages.flaky.status, "running")
      assert.strictEqual(recovered.status, "ok")
      assert.strictEqual(yield* Ref.get(steady), 1, "the other stage was never restarted")
    }).pipe(Effect.provide(layer)))

  it.effect("a stage that dies with a defect is restarted, and the in-memory bus does not stall behind its group", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const health = yield* Health
      const handled: Array<number> = []
      let died = false
      yield* startStages([
        {
          name: "consumer",
          inputs: [[ControlTopic, "consumer"]],
          run: bus.subscribe(ControlTopic, { group: "consumer" }).pipe(
            Stream.runForEach((d) => {
              if (!died && d.value.ts === 5) {
                died = true
                return Effect.die(new Error("bug in the stage")) // not committed: redelivered after the restart
              }
              handled.push(d.value.ts)
              return d.commit
            })
          )
        }
      ])
      // 40 messages through a 10-message bus: only possible if the consumer's group keeps committing
      const publisher = yield* Effect.forEach(
        Array.from({ length: 40 }, (_, i) => i),
        (ts) => bus.publish(ControlTopic, "k", { command: "pause", by: "test", ts }),
        { discard: true }
      ).pipe(Effect.forkChild)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      const dead = yield* health.report
      assert.isTrue(died)
      assert.strictEqual(dead.stages.consumer.status, "failed")
      assert.match(dead.stages.consumer.detail ?? "", /bug in the stage/)
      assert.isFalse(dead.ready)
      assert.isUndefined(publisher.pollUnsafe(), "the publisher waits while the dead group pins the topic")
      yield* TestClock.adjust("1 second") // first restart: 500 ms, jittered
      yield* Fiber.join(publisher)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
      assert.deepStrictEqual(handled, Array.from({ length: 40 }, (_, i) => i))
      const back = yield* health.report
      assert.strictEqual(back.stages.consumer.status, "running")
      assert.strictEqual(back.stages.consumer.restarts, 1)
      assert.isTrue(back.ready)
    }).pipe(Effect.provide(smallBus)))
})
