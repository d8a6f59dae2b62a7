/**
 * Per-service health: which stages run, whether the bus is usable, uptime. Served with Prometheus metrics as
 * `GET /health` (200 ok / 503 degraded) and `GET /metrics` on `HTTP_PORT`.
 */
import { NodeHttpServer } from "@effect/platform-node"
import { Clock, Context, Effect, Layer, Ref } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { Bus } from "../bus/Bus.ts"
import type { MarketGap } from "../domain/Messages.ts"

export type StageStatus = "starting" | "running" | "stopped" | "failed"

export interface HealthShape {
  readonly setStage: (stage: string, status: StageStatus, detail?: string) => Effect.Effect<void>
  readonly report: Effect.Effect<HealthReport>
  /** A market-data hole that could not be filled: counted and the last few shown (it does not degrade health). */
  readonly recordGap: (gap: MarketGap) => Effect.Effect<void>
}

const RECENT_GAPS = 10

export interface HealthReport {
  readonly status: "ok" | "degraded"
  readonly service: string
  readonly uptimeSeconds: number
  readonly bus: "ready" | "unavailable"
  readonly stages: Record<string, { readonly status: StageStatus; readonly detail?: string }>
  readonly marketGaps?: { readonly total: number; readonly recent: ReadonlyArray<MarketGap> }
}

export class Health extends Context.Service<Health, HealthShape>()("autotrader/observability/Health") {
  static readonly layer = (service: string) =>
    Layer.effect(
      Health,
      Effect.gen(function*() {
        const bus = yield* Bus
        const started = yield* Clock.currentTimeMillis
        const stages = yield* Ref.make(new Map<string, { status: StageStatus; detail?: string }>())
        const gaps = yield* Ref.make<{ total: number; recent: ReadonlyArray<MarketGap> }>({ total: 0, recent: [] })
        return Health.of({
          recordGap: (gap) => Ref.update(gaps, (g) => ({ total: g.total + 1, recent: [...g.recent, gap].slice(-RECENT_GAPS) })),
          setStage: (stage, status, detail) =>
            Ref.update(stages, (m) => new Map(m).set(stage, detail === undefined ? { status } : { status, detail })),
          report: Effect.gen(function*() {
            const now = yield* Clock.currentTimeMillis
            const ready = yield* bus.ready
            const current = yield* Ref.get(stages)
            const failed = [...current.values()].some((s) => s.status === "failed")
            const marketGaps = yield* Ref.get(gaps)
            return {
              status: ready && !failed ? "ok" : "degraded",
              service,
              uptimeSeconds: Math.round((now - started) / 1000),
              bus: ready ? "ready" : "unavailable",
              stages: Object.fromEntries(current),
              ...(marketGaps.total > 0 ? { marketGaps } : {})
            } as const
          })
        })
      })
    )
}

const healthRoute = HttpRouter.add(
  "GET",
  "/health",
  Effect.gen(function*() {
    const report = yield* (yield* Health).report
    return HttpServerResponse.jsonUnsafe(report, { status: report.status === "ok" ? 200 : 503 })
  })
)

/** `/health` and `/metrics` on `port` (0: the OS picks; the address is logged). */
export const healthServer = (port: number, host = "0.0.0.0") =>
  HttpRouter.serve(Layer.mergeAll(healthRoute, PrometheusMetrics.layerHttp())).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { port, host }))
  )
