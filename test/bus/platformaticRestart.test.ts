/**
 * PlatformaticKafkaBus across a broker restart, on a broker of this test's own: during the outage a publish fails
 * with BusError (bounded retries, not a hang) and `ready` turns false; after the return the same bus publishes again
 * (a failed send retired the idempotent producer, so no OUT_OF_ORDER_SEQUENCE_NUMBER for ever after, the kafkajs
 * failure the e2e broker-restart test found), a subscription resumed by its runner receives the new messages, and
 * `ready` is true again. The whole `autotrader run` over platformatic is covered by test/e2e/brokerRestart.test.ts
 * with KAFKA_CLIENT=platformatic.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Queue, Schedule, Schema, Stream } from "effect"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import * as PlatformaticKafkaBus from "../../layers/PlatformaticKafkaBus.ts"
import { freePortPair, kafka } from "../support/broker.ts"

const Num = Schema.Struct({ n: Schema.Int })
const topic = { name: "restart.numbers", schema: Num }

/** Polls `check` every 250 ms until it holds, at most `seconds` (the machine is loaded: generous bounds). */
const eventually = (check: Effect.Effect<boolean>, what: string, seconds: number) =>
  check.pipe(
    Effect.filterOrFail((ok) => ok, () => new Error(`timed out waiting for ${what}`)),
    Effect.retry(Schedule.spaced("250 millis").pipe(Schedule.upTo({ times: seconds * 4 })))
  )

describe("PlatformaticKafkaBus across a broker restart", () => {
  it.live("publish fails with BusError while the broker is down, then publishing, consuming and ready come back", () =>
    Effect.gen(function*() {
      const port = yield* Effect.promise(freePortPair)
      const dir = mkdtempSync(join(tmpdir(), "autotrader-plt-broker-"))
      // always stop this test's broker, whatever happens
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          spawnSync("bash", ["scripts/kafka.sh", "stop"], { env: { ...process.env, KAFKA_PORT: String(port), KAFKA_DATA_DIR: dir } })
          rmSync(dir, { recursive: true, force: true })
        })
      )
      yield* Effect.promise(() => kafka("start", port, dir))
      const bus = yield* PlatformaticKafkaBus.make({
        brokers: [`127.0.0.1:${port}`],
        clientId: "plt-restart-test",
        partitions: 1,
        requestRetries: 2,
        probeInterval: "500 millis",
        sessionTimeoutMs: 6_000
      })

      // The subscription, resumed by its runner whenever it fails, as the supervisor resumes a stage.
      const received = yield* Queue.unbounded<number>()
      yield* bus.subscribe(topic, { group: "restart.g" }).pipe(
        Stream.runForEach((d) => Queue.offer(received, d.value.n).pipe(Effect.andThen(d.commit))),
        Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo({ times: 240 }))),
        Effect.forkScoped
      )
      const receive = (n: number, seconds: number) =>
        Queue.take(received).pipe(
          Effect.repeat({ until: (got) => got === n }),
          Effect.timeoutOrElse({ duration: `${seconds} seconds`, orElse: () => Effect.fail(new Error(`message ${n} never arrived`)) })
        )

      yield* bus.publish(topic, "K", { n: 0 })
      yield* receive(0, 60)
      assert.isTrue(yield* bus.ready)

      yield* Effect.promise(() => kafka("stop", port, dir))
      const failed = yield* bus.publish(topic, "K", { n: 1 }).pipe(
        Effect.timeoutOrElse({ duration: "60 seconds", orElse: () => Effect.die(new Error("publish hung while the broker was down")) }),
        Effect.flip
      )
      assert.strictEqual(failed._tag, "BusError")
      assert.strictEqual(failed.operation, "publish")
      yield* eventually(Effect.map(bus.ready, (ready) => !ready), "ready to turn false", 30)

      yield* Effect.promise(() => kafka("start", port, dir))
      // the first publishes after the return may still meet a broker that is loading: bounded retries
      yield* bus.publish(topic, "K", { n: 2 }).pipe(Effect.retry(Schedule.spaced("500 millis").pipe(Schedule.upTo({ times: 120 }))))
      yield* receive(2, 90)
      yield* bus.publish(topic, "K", { n: 3 })
      yield* receive(3, 60)
      yield* eventually(bus.ready, "ready to turn true again", 30)
    }).pipe(Effect.scoped), 400_000)
})
