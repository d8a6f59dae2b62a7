/**
 * `autotrader service <stage>`: one stage of the registry as its own process, over Kafka by default (`BUS=kafka`,
 * `KAFKA_BROKERS`), with `/health`, `/ready` and `/metrics` on `HTTP_PORT` so several can run side by side.
 * Stages that hold state (risk, orders) rebuild it from the bus on start.
 */
import { Effect, Option } from "effect"
import { launch, loadRuntimeConfig } from "../runtime/Runtime.ts"
import { STAGE_NAMES, type StageName } from "../runtime/Stages.ts"

export const SERVICE_STAGES = STAGE_NAMES
export type ServiceStage = StageName

export const service = (stage: ServiceStage) =>
  Effect.gen(function*() {
    const config = yield* loadRuntimeConfig({ mode: "service", stage })
    yield* launch(config, Option.none())
  }).pipe(Effect.annotateLogs({ service: stage }))
