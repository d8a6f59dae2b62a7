/**
 * Runs stages side by side, each supervised: a stage that fails or dies (a defect) is logged, shown on /health,
 * announced on `alerts` and restarted on a capped, jittered Schedule; it never takes the others down.
 *
 * The Supervisor's own finalizer is the drain: stop the sources, wait until every consumer group has committed
 * everything on its input topic (lag read from the still-connected bus), then stop the other stages. It lives in
 * the layer graph *above* the bus, exchange and HTTP server, so those are released only after the drain finished.
 */
import { Cause, Clock, Context, Duration, Effect, Fiber, Layer, Metric, Schedule, Scope } from "effect"
import { Bus } from "../bus/Bus.ts"
import type { BusError } from "../domain/Errors.ts"
import { Alerts } from "../domain/Topics.ts"
import { Health, type StageInput } from "../observability/Health.ts"

export interface StageRun<R> {
  readonly name: string
  readonly run: Effect.Effect<unknown, unknown, R>
  /** Sources (ingest) are stopped first on drain. */
  readonly source?: boolean
  /** Input topics and consumer groups whose lag must reach 0 before the stage is stopped. */
  readonly inputs?: ReadonlyArray<StageInput>
}

export type DrainOutcome =
  | { readonly _tag: "Drained" }
  | { readonly _tag: "TimedOut"; readonly remaining: number }
  | { readonly _tag: "LagUnknown"; readonly error: BusError }

export interface SupervisorShape {
  /** Forks the supervised stage into the supervisor's scope (it outlives the caller). */
  readonly start: <R>(stage: StageRun<R>) => Effect.Effect<void, never, R>
  /** Stops the sources, waits for lag 0 on every input, stops the rest. Runs once; later calls return its outcome. */
  readonly drain: Effect.Effect<DrainOutcome>
}

export interface SupervisorOptions {
  /** Longest the drain waits for lag 0 (default 15 s). */
  readonly drainTimeout?: Duration.Input
  /** Restart policy of a failed stage (default: 500 ms doubling, capped at 10 s, jittered, forever). */
  readonly restart?: Schedule.Schedule<unknown, unknown>
}

/**
 * Forever, since a stage is the process's reason to exist; capped at 10 s (×1.2 jitter) so a stage is back within
 * ~12 s of its dependency's return (a broker restart), never hammering it faster than every 0.5 s.
 */
export const restartSchedule: Schedule.Schedule<unknown, unknown> = Schedule.exponential("500 millis", 2).pipe(
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(10)))),
  Schedule.jittered
)

export const stageRestarts = Metric.counter("stage_restarts_total", {
  description: "Stages restarted by the supervisor after a failure or a defect"
})

/** How often the drain reads the lag, and how many consecutive lag errors it accepts before giving up. */
const lagPoll = Schedule.spaced("50 millis")
const lagErrorRetries = Schedule.exponential("100 millis", 2).pipe(Schedule.upTo({ times: 5 }))

export class Supervisor extends Context.Service<Supervisor, SupervisorShape>()("autotrader/runtime/Supervisor") {
  static readonly layer = (options: SupervisorOptions = {}): Layer.Layer<Supervisor, never, Bus | Health> =>
    Layer.effect(Supervisor, make(options))
}

const supervise = <R>(
  stage: StageRun<R>,
  schedule: Schedule.Schedule<unknown, unknown>,
  health: Health["Service"],
  bus: Bus["Service"]
) =>
  Effect.gen(function*() {
    const once = Effect.gen(function*() {
      yield* health.setStage(stage.name, "running")
      yield* stage.run
      yield* health.setStage(stage.name, "stopped")
    })
    const report = (cause: Cause.Cause<unknown>) =>
      Effect.gen(function*() {
        const text = Cause.pretty(cause)
        const died = Cause.hasDies(cause)
        yield* health.setStage(stage.name, "failed", text.slice(0, 300))
        yield* health.countRestart(stage.name)
        yield* Metric.update(stageRestarts.pipe(Metric.withAttributes({ stage: stage.name })), 1)
        yield* Effect.logError(died ? "stage died; restarting" : "stage failed; restarting", { stage: stage.name, cause: text })
        // operators hear about it (the notifier forwards alerts); a bus that is down too is already on /health
        const ts = yield* Clock.currentTimeMillis
        yield* bus.publish(Alerts, stage.name, {
          source: stage.name,
          level: "error",
          message: `stage ${stage.name} failed and is restarting: ${text.slice(0, 500)}`,
          ts
        }).pipe(Effect.timeout("2 seconds"), Effect.ignore)
      })
    // sandbox: defects and stray interruptions of the stage's own children become failures, hence restarted too;
    // interrupting this fiber (the drain) still stops the loop.
    yield* once.pipe(
      Effect.sandbox,
      Effect.tapError(report),
      Effect.retry(schedule),
      Effect.annotateLogs({ stage: stage.name })
    )
  })

export const make = (options: SupervisorOptions = {}) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const health = yield* Health
    const drainTimeout = Duration.fromInputUnsafe(options.drainTimeout ?? Duration.seconds(15))
    const schedule = options.restart ?? restartSchedule
    const layerScope = yield* Effect.scope
    // Stage fibers live in a child scope registered before the drain finalizer, so it closes after the drain.
    const fibersScope = yield* Scope.fork(layerScope, "parallel")
    const stages: Array<{ readonly stage: StageRun<any>; readonly fiber: Fiber.Fiber<unknown, unknown> }> = []

    /** Lag per input (`topic/group`), read from the bus as it is now. */
    const lags = Effect.suspend(() =>
      Effect.forEach(
        stages.flatMap(({ stage }) => stage.inputs ?? []),
        ([topic, group]) => Effect.map(bus.lag(topic, group), (lag) => [`${topic.name}/${group}`, lag] as const),
        { concurrency: "unbounded" }
      )
    ).pipe(Effect.map((entries) => Object.fromEntries(entries)))
    // a transient error is retried; one that persists ends the drain as LagUnknown, never as "drained"
    const lagOnce = lags.pipe(Effect.retry(lagErrorRetries))
    const sum = (byInput: Record<string, number>) => Object.values(byInput).reduce((a, b) => a + b, 0)

    const runDrain = Effect.gen(function*() {
      for (const { stage, fiber } of stages) if (stage.source === true) yield* Fiber.interrupt(fiber)
      let first: Record<string, number> | undefined
      let polls = 0
      const waitIdle = lagOnce.pipe(
        Effect.tap((byInput) =>
          Effect.sync(() => {
            first ??= byInput
            polls++
          })
        ),
        Effect.repeat({ schedule: lagPoll, until: (byInput) => sum(byInput) === 0 })
      )
      const outcome: DrainOutcome = yield* waitIdle.pipe(
        Effect.timeoutOption(drainTimeout),
        Effect.flatMap((done) =>
          done._tag === "Some"
            ? Effect.succeed<DrainOutcome>({ _tag: "Drained" })
            : lagOnce.pipe(Effect.map((byInput): DrainOutcome => ({ _tag: "TimedOut", remaining: sum(byInput) })))
        ),
        Effect.catch((error) => Effect.succeed<DrainOutcome>({ _tag: "LagUnknown", error }))
      )
      // the lag seen when the drain began, per input: what the stages still had to handle
      const atStart = first ?? {}
      switch (outcome._tag) {
        case "Drained":
          yield* Effect.logInfo("pipeline drained", { remaining: 0, lagAtStart: atStart, polls })
          break
        case "TimedOut":
          yield* Effect.logWarning("drain timed out", {
            remaining: outcome.remaining,
            lagAtStart: atStart,
            timeout: Duration.format(drainTimeout)
          })
          break
        case "LagUnknown":
          yield* Effect.logError("drain could not read the lag; stopping without knowing what is left", {
            error: outcome.error.message,
            operation: outcome.error.operation,
            topic: outcome.error.topic
          })
      }
      yield* Effect.forEach(stages, ({ fiber }) => Fiber.interrupt(fiber), { concurrency: "unbounded", discard: true })
      for (const { stage } of stages) yield* health.setStage(stage.name, "stopped")
      return outcome
    })
    const drain = yield* Effect.cached(runDrain)
    yield* Effect.addFinalizer(() => drain)

    return Supervisor.of({
      start: (stage) =>
        Effect.gen(function*() {
          yield* health.setStage(stage.name, "starting")
          yield* health.setInputs(stage.name, stage.inputs ?? [])
          const fiber = yield* Effect.forkIn(supervise(stage, schedule, health, bus), fibersScope)
          stages.push({ stage, fiber })
        }),
      drain
    })
  })

/**
 * Starts `stages` under a Supervisor living in the caller's scope (tests, tools); `drain` as in the layer.
 */
export const startStages = <R>(stages: ReadonlyArray<StageRun<R>>, options: SupervisorOptions = {}) =>
  Effect.gen(function*() {
    const supervisor = yield* make(options)
    for (const stage of stages) yield* supervisor.start(stage)
    return { drain: supervisor.drain }
  })
