/**
 * Per-service health: which stages run, whether the bus is usable, whether each stage's consumers are consuming,
 * uptime. Served by src/observability/HttpServer.ts as `GET /health` (200 ok / 503 degraded) and `GET /ready`.
 *
 * - `status` (health): "degraded" while the bus is unavailable or a stage has failed (it is being restarted).
 * - `ready`: additionally false while a stage is starting, or one of its input subscriptions is not consuming
 *   (e.g. its Kafka consumer has not joined its group yet after a broker restart).
 */
import { Clock, Context, Effect, Layer, Metric, Ref, Schedule } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Bus } from "../bus/Bus.ts"
import type { MarketGap } from "../domain/Messages.ts"
import type { Topic } from "../domain/Topics.ts"
import { consumerLagMessages } from "./Metrics.ts"

export type StageStatus = "starting" | "running" | "stopped" | "failed"

/** An input of a stage: the topic it consumes as the consumer group. */
export type StageInput = readonly [Topic<any>, string]

export interface StageHealth {
  readonly status: StageStatus
  readonly detail?: string
  /** Times the supervisor restarted the stage after a failure or a defect. */
  readonly restarts?: number
  /** Per input `topic/group`: whether this process consumes it right now. */
  readonly consuming?: Record<string, boolean>
}

export interface HealthShape {
  readonly setStage: (stage: string, status: StageStatus, detail?: string) => Effect.Effect<void>
  /** The inputs whose subscriptions must be consuming for the stage to count as ready. */
  readonly setInputs: (stage: string, inputs: ReadonlyArray<StageInput>) => Effect.Effect<void>
  readonly countRestart: (stage: string) => Effect.Effect<void>
  readonly report: Effect.Effect<HealthReport>
  /** A market-data hole that could not be filled: counted and the last few shown (it does not degrade health). */
  readonly recordGap: (gap: MarketGap) => Effect.Effect<void>
  /**
   * A dependency /ready waits for (`market-data`: the socket is receiving; `exchange-rest`: the REST API answers).
   * A check that was never set does not hold readiness back; one that is set must be ok.
   */
  readonly setCheck: (name: string, ok: boolean, detail: string) => Effect.Effect<void>
}

const RECENT_GAPS = 10

export interface HealthReport {
  readonly status: "ok" | "degraded"
  readonly ready: boolean
  readonly service: string
  readonly uptimeSeconds: number
  readonly bus: "ready" | "unavailable"
  readonly stages: Record<string, StageHealth>
  readonly marketGaps?: { readonly total: number; readonly recent: ReadonlyArray<MarketGap> }
  /** The dependencies /ready waits for, each ok or not with why. */
  readonly checks: Record<string, { readonly ok: boolean; readonly detail: string }>
}

interface StageEntry {
  status: StageStatus
  detail?: string
  restarts: number
  inputs: ReadonlyArray<StageInput>
}

export class Health extends Context.Service<Health, HealthShape>()("autotrader/observability/Health") {
  static readonly layer = (service: string) =>
    Layer.effect(
      Health,
      Effect.gen(function*() {
        const bus = yield* Bus
        const started = yield* Clock.currentTimeMillis
        const stages = yield* Ref.make(new Map<string, StageEntry>())
        const update = (stage: string, f: (e: StageEntry) => StageEntry) =>
          Ref.update(stages, (m) => new Map(m).set(stage, f(m.get(stage) ?? { status: "starting", restarts: 0, inputs: [] })))
        const gaps = yield* Ref.make<{ total: number; recent: ReadonlyArray<MarketGap> }>({ total: 0, recent: [] })
        const checks = yield* Ref.make<Record<string, { readonly ok: boolean; readonly detail: string }>>({})
        // consumer lag of every stage input (per group and topic) on /metrics, sampled every 5 s
        const sampleLag = Effect.gen(function*() {
          for (const entry of (yield* Ref.get(stages)).values()) {
            for (const [topic, group] of entry.inputs) {
              const lag = yield* bus.lag(topic, group).pipe(Effect.option)
              if (lag._tag === "Some") yield* Metric.update(consumerLagMessages.pipe(Metric.withAttributes({ group, topic: topic.name })), lag.value)
            }
          }
        })
        yield* sampleLag.pipe(Effect.repeat(Schedule.spaced("5 seconds")), Effect.forkScoped)
        return Health.of({
          setCheck: (name, ok, detail) => Ref.update(checks, (c) => ({ ...c, [name]: { ok, detail } })),
          recordGap: (gap) => Ref.update(gaps, (g) => ({ total: g.total + 1, recent: [...g.recent, gap].slice(-RECENT_GAPS) })),
          setStage: (stage, status, detail) => update(stage, (e) => ({ ...e, status, detail })),
          setInputs: (stage, inputs) => update(stage, (e) => ({ ...e, inputs })),
          countRestart: (stage) => update(stage, (e) => ({ ...e, restarts: e.restarts + 1 })),
          report: Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const busReady = yield* bus.ready
            const current = yield* Ref.get(stages)
            const out: Record<string, StageHealth> = {}
            let failed = false
            let allReady = true
            for (const [name, e] of current) {
              const consuming: Record<string, boolean> = {}
              for (const [topic, group] of e.inputs) {
                const on = yield* bus.consuming(topic, group)
                consuming[`${topic.name}/${group}`] = on
                if (!on) allReady = false
              }
              if (e.status === "failed") failed = true
              if (e.status !== "running") allReady = false
              out[name] = {
                status: e.status,
                ...(e.detail === undefined ? {} : { detail: e.detail }),
                ...(e.restarts > 0 ? { restarts: e.restarts } : {}),
                ...(e.inputs.length > 0 ? { consuming } : {})
              }
            }
            const marketGaps = yield* Ref.get(gaps)
            const dependencies = yield* Ref.get(checks)
            const dependenciesOk = Object.values(dependencies).every((c) => c.ok)
            return {
              status: busReady && !failed ? "ok" : "degraded",
              ready: busReady && allReady && dependenciesOk,
              checks: dependencies,
              service,
              uptimeSeconds: Math.round((now - started) / 1000),
              bus: busReady ? "ready" : "unavailable",
              stages: out,
              ...(marketGaps.total > 0 ? { marketGaps } : {})
            } as const
          })
        })
      })
    )
}

/** `GET /health`: 200 while ok, 503 while degraded, with the report as JSON. */
export const healthRoute = HttpRouter.add(
  "GET",
  "/health",
  Effect.gen(function*() {
    const report = yield* (yield* Health).report
    return HttpServerResponse.jsonUnsafe(report, { status: report.status === "ok" ? 200 : 503 })
  })
)

/** `GET /ready`: 200 once every stage runs and consumes its inputs, 503 otherwise (load balancers, orchestrators). */
export const readyRoute = HttpRouter.add(
  "GET",
  "/ready",
  Effect.gen(function*() {
    const report = yield* (yield* Health).report
    return HttpServerResponse.jsonUnsafe(
      {
        ready: report.ready,
        // what is missing, in words: "bus unavailable", "market-data: disconnected: closed (1006)", …
        waitingFor: [
          ...(report.bus === "ready" ? [] : ["bus unavailable"]),
          ...Object.entries(report.checks).filter(([, c]) => !c.ok).map(([name, c]) => `${name}: ${c.detail}`),
          ...Object.entries(report.stages).flatMap(([name, s]) =>
            s.status !== "running"
              ? [`stage ${name} ${s.status}`]
              : Object.entries(s.consuming ?? {}).filter(([, on]) => !on).map(([input]) => `stage ${name} not consuming ${input}`)
          )
        ],
        bus: report.bus,
        checks: report.checks,
        stages: report.stages
      },
      { status: report.ready ? 200 : 503 }
    )
  })
)
