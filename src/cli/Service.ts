/**
 * `autotrader service <stage>`: one stage as its own process, over Kafka by default (`BUS=kafka`,
 * `KAFKA_BROKERS`), with `/health` and `/metrics` on `HTTP_PORT` so several can run side by side.
 * Stages that hold state (risk, orders) rebuild it from the bus on start.
 */
import { Config, Effect, Layer, Option } from "effect"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { ConfigError } from "../domain/Errors.ts"
import { MarketRaw, SignalsApproved, SignalsCandidate } from "../domain/Topics.ts"
import { runIngest } from "../ingest/Ingest.ts"
import { Health, healthServer } from "../observability/Health.ts"
import { ORDERS_GROUP, runOrders } from "../orders/OrderService.ts"
import { RISK_GROUP, riskLimitsConfig, runRisk } from "../risk/RiskService.ts"
import { runSignals, SIGNALS_GROUP } from "../signals/SignalService.ts"
import { notifierConfig, notifierStage } from "../notify/Notifier.ts"
import { runStore, STORE_GROUP, storeOptionsConfig } from "../storage/StoreService.ts"
import { httpPortConfig, symbolsConfig } from "./AppConfig.ts"
import { type Stage, startStages } from "./Pipeline.ts"
import { kafkaBusLayer, orderOptionsConfig } from "./Run.ts"

export const SERVICE_STAGES = ["ingest", "signals", "risk", "orders", "notify", "store"] as const
export type ServiceStage = (typeof SERVICE_STAGES)[number]

const serviceBusLayer = Layer.unwrap(
  Effect.map(
    Config.Literals(["memory", "kafka"], "BUS").pipe(Config.withDefault("kafka" as const)),
    (kind) => (kind === "kafka" ? kafkaBusLayer : InMemoryBus.layer)
  )
)

/** A service that talks to the exchange needs its URLs: there is no embedded simulator per service. */
const exchangeLayer = Layer.unwrap(
  Effect.gen(function*() {
    const ws = yield* Config.String("EXCHANGE_WS_URL").pipe(Config.withDefault(""))
    const rest = yield* Config.String("EXCHANGE_REST_URL").pipe(Config.withDefault(""))
    if (ws === "" || rest === "") {
      return yield* new ConfigError({
        message: "EXCHANGE_WS_URL and EXCHANGE_REST_URL are required for the ingest and orders services (e.g. the sim-exchange container, or Binance)"
      })
    }
    return BinanceExchange.layer()
  })
)

const stageFor = (stage: ServiceStage) =>
  Effect.gen(function*() {
    const symbols = yield* symbolsConfig
    switch (stage) {
      case "ingest":
        return { name: stage, run: runIngest(symbols), source: true } satisfies Stage<any>
      case "signals":
        return { name: stage, run: runSignals, inputs: [[MarketRaw, SIGNALS_GROUP]] } satisfies Stage<any>
      case "risk":
        return { name: stage, run: runRisk(yield* riskLimitsConfig), inputs: [[SignalsCandidate, RISK_GROUP]] } satisfies Stage<any>
      case "orders":
        return { name: stage, run: runOrders(yield* orderOptionsConfig(symbols)), inputs: [[SignalsApproved, ORDERS_GROUP]] } satisfies Stage<any>
      case "notify": {
        const telegram = yield* notifierConfig
        if (Option.isSome(telegram)) return notifierStage(telegram.value, symbols) satisfies Stage<any>
        // without a token the service stays up (healthy, idle) so a deployment can add the token later
        return {
          name: stage,
          run: Effect.logInfo("Telegram notifier off: TELEGRAM_BOT_TOKEN is not set").pipe(Effect.andThen(Effect.never))
        } satisfies Stage<any>
      }
      case "store":
        return { name: stage, run: runStore(yield* storeOptionsConfig), inputs: [[MarketRaw, STORE_GROUP]] } satisfies Stage<any>
    }
  })

export const service = (stage: ServiceStage) =>
  Effect.scoped(
    Effect.gen(function*() {
      const definition = yield* stageFor(stage)
      const httpPort = yield* httpPortConfig
      const needsExchange = stage === "ingest" || stage === "orders"
      const services = Layer.mergeAll(
        needsExchange ? exchangeLayer : Layer.empty,
        Health.layer(stage)
      ).pipe(Layer.provideMerge(serviceBusLayer))
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("service starting", { stage })
        const { drain } = yield* startStages([definition as Stage<never>])
        yield* Effect.addFinalizer(() => drain)
        return yield* Effect.never
      }).pipe(Effect.provide(healthServer(httpPort).pipe(Layer.provideMerge(services))))
    })
  ).pipe(Effect.annotateLogs({ service: stage }))
