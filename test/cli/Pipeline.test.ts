import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Ref, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import { startStages } from "../../src/cli/Pipeline.ts"
import type { Alert } from "../../src/domain/Messages.ts"
import { Alerts } from "../../src/domain/Topics.ts"
import { Health } from "../../src/observability/Health.ts"

const layer = Health.layer("test").pipe(Layer.provideMerge(InMemoryBus.layerTest()))

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
})
