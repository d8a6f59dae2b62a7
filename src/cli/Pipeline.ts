/**
 * Runs stages side by side, each supervised: a failing stage is logged, shown on /health and restarted with
 * backoff; it never takes the others down. `drain` stops the sources, then waits until every consumer group has
 * committed everything on its input topic, so a stop loses nothing that was already ingested.
 */
import { Clock, Duration, Effect, Fiber, Schedule } from "effect"
import type { Scope } from "effect"
import { Bus } from "../bus/Bus.ts"
import { Alerts, type Topic } from "../domain/Topics.ts"
import { Health } from "../observability/Health.ts"

export interface Stage<R> {
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown, R>
  /** Sources (ingest) are stopped first on drain. */
  readonly source?: boolean
  /** Input topics and consumer groups whose lag must reach 0 before the stage is stopped. */
  readonly inputs?: ReadonlyArray<readonly [Topic<any>, string]>
}

const restartSchedule = Schedule.min([Schedule.exponential("1 second", 2), Schedule.spaced("30 seconds")]).pipe(
  Schedule.jittered
)

const supervise = <R>(stage: Stage<R>) =>
  Effect.gen(function*() {
    const health = yield* Health
    yield* health.setStage(stage.name, "running")
    yield* stage.run
    yield* health.setStage(stage.name, "stopped")
  }).pipe(
    Effect.tapCause((cause) =>
      Effect.gen(function*() {
        const health = yield* Health
        yield* health.setStage(stage.name, "failed", String(cause).slice(0, 300))
        yield* Effect.logError("stage failed; restarting", { stage: stage.name, cause: String(cause) })
        // operators hear about it (the notifier forwards alerts); a bus that is down too is already on /health
        const bus = yield* Bus
        const ts = yield* Clock.currentTimeMillis
        yield* bus.publish(Alerts, stage.name, { source: stage.name, level: "error", message: `stage ${stage.name} failed and is restarting: ${String(cause).slice(0, 500)}`, ts }).pipe(Effect.ignore)
      })
    ),
    Effect.retry(restartSchedule),
    Effect.annotateLogs({ stage: stage.name })
  )

export const startStages = <R>(stages: ReadonlyArray<Stage<R>>, drainTimeout = Duration.seconds(15)) =>
  Effect.gen(function*() {
    const fibers = new Map<string, Fiber.Fiber<unknown, unknown>>()
    for (const stage of stages) fibers.set(stage.name, yield* Effect.forkScoped(supervise(stage)))
    const bus = yield* Bus

    const lagOf = Effect.forEach(
      stages.flatMap((s) => s.inputs ?? []),
      ([topic, group]) => bus.lag(topic, group).pipe(Effect.orElseSucceed(() => 0)),
      { concurrency: "unbounded" }
    ).pipe(Effect.map((lags) => lags.reduce((a, b) => a + b, 0)))

    const drain = Effect.gen(function*() {
      for (const stage of stages) {
        const fiber = fibers.get(stage.name)
        if (stage.source === true && fiber !== undefined) yield* Fiber.interrupt(fiber)
      }
      const waitIdle = Effect.gen(function*() {
        while ((yield* lagOf) > 0) yield* Effect.sleep("50 millis")
      })
      const drained = yield* waitIdle.pipe(Effect.timeoutOption(drainTimeout))
      const remaining = yield* lagOf
      yield* Effect.logInfo(drained._tag === "Some" ? "pipeline drained" : "drain timed out", { remaining })
    })
    return { drain }
  }) satisfies Effect.Effect<{ drain: Effect.Effect<void> }, never, Scope.Scope | Bus | Health | R>
