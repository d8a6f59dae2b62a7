/**
 * `autotrader run`: every stage in one process. Without EXCHANGE_WS_URL / EXCHANGE_REST_URL it starts the
 * embedded simulated exchange on loopback; with them it trades against that exchange (Binance, its testnet, …).
 * `BUS=kafka` runs the same stages over Kafka instead of the in-memory bus.
 */
import { Config, Duration, Effect, Layer, Option } from "effect"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import * as KafkaBus from "../../layers/KafkaBus.ts"
import { Bus, namespaced } from "../bus/Bus.ts"
import type { Exchange } from "../exchange/Exchange.ts"
import { MarketRaw, SignalsApproved, SignalsCandidate } from "../domain/Topics.ts"
import { runIngest } from "../ingest/Ingest.ts"
import { Health, healthServer } from "../observability/Health.ts"
import { defaultOrderManagerOptions } from "../orders/OrderManager.ts"
import { notifierConfig, notifierStage } from "../notify/Notifier.ts"
import { ORDERS_GROUP, runOrders } from "../orders/OrderService.ts"
import { RISK_GROUP, riskLimitsConfig, runRisk } from "../risk/RiskService.ts"
import { runSignals, SIGNALS_GROUP } from "../signals/SignalService.ts"
import * as SimExchangeServer from "../sim/SimExchangeServer.ts"
import { runStore, STORE_GROUP, storeOptionsConfig } from "../storage/StoreService.ts"
import { busKindConfig, httpPortConfig, simConfig, symbolsConfig, topicPrefixConfig } from "./AppConfig.ts"
import { type Stage, startStages } from "./Pipeline.ts"

/** KafkaBus from env, with topics and groups under KAFKA_TOPIC_PREFIX. */
export const kafkaBusLayer = Layer.effect(
  Bus,
  Effect.gen(function*() {
    const bus = yield* Bus
    return namespaced(yield* topicPrefixConfig, bus)
  })
).pipe(Layer.provide(KafkaBus.layer))

export const busLayer = Layer.unwrap(
  Effect.map(busKindConfig, (kind) => (kind === "kafka" ? kafkaBusLayer : InMemoryBus.layer))
)

/** Exchange URLs from env, or the embedded simulator's when they are not set. */
export const exchangeDefaults = (symbols: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const ws = yield* Config.option(Config.String("EXCHANGE_WS_URL"))
    const rest = yield* Config.option(Config.String("EXCHANGE_REST_URL"))
    if (Option.isSome(ws) && Option.isSome(rest)) return {}
    const sim = yield* simConfig
    const exchange = yield* SimExchangeServer.make({ symbols, seed: sim.seed, ticksPerSecond: sim.ticksPerSecond, port: sim.port })
    yield* Effect.logInfo("embedded simulated exchange started", {
      ws: exchange.wsBaseUrl,
      rest: exchange.restBaseUrl,
      seed: sim.seed,
      ticksPerSecond: sim.ticksPerSecond
    })
    return { wsBaseUrl: exchange.wsBaseUrl, restBaseUrl: exchange.restBaseUrl }
  })

export const orderOptionsConfig = (symbols: ReadonlyArray<string>) =>
  Effect.map(Config.Int("EXCHANGE_RECV_WINDOW").pipe(Config.withDefault(5000)), (recvWindowMs) => ({
    ...defaultOrderManagerOptions(symbols),
    recvWindowMs
  }))

export const run = (forDuration: Option.Option<Duration.Duration>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const symbols = yield* symbolsConfig
      const limits = yield* riskLimitsConfig
      const orderOptions = yield* orderOptionsConfig(symbols)
      const httpPort = yield* httpPortConfig
      const defaults = yield* exchangeDefaults(symbols)
      const storeOptions = yield* storeOptionsConfig
      const telegram = yield* notifierConfig
      if (Option.isNone(telegram)) yield* Effect.logInfo("Telegram notifier off: TELEGRAM_BOT_TOKEN is not set")
      const stages: ReadonlyArray<Stage<Bus | Exchange | Health>> = [
        { name: "ingest", run: runIngest(symbols), source: true },
        { name: "signals", run: runSignals, inputs: [[MarketRaw, SIGNALS_GROUP]] },
        { name: "risk", run: runRisk(limits), inputs: [[SignalsCandidate, RISK_GROUP]] },
        { name: "orders", run: runOrders(orderOptions), inputs: [[SignalsApproved, ORDERS_GROUP]] },
        ...(storeOptions.enabled ? [{ name: "store", run: runStore(storeOptions), inputs: [[MarketRaw, STORE_GROUP]] } as const] : []),
        ...(Option.isSome(telegram) ? [notifierStage(telegram.value, symbols)] : [])
      ]
      const services = Layer.mergeAll(BinanceExchange.layer(defaults), Health.layer("autotrader")).pipe(
        Layer.provideMerge(busLayer)
      )
      yield* Effect.gen(function*() {
        yield* Effect.logInfo("autotrader running", { symbols, stages: stages.map((s) => s.name) })
        const { drain } = yield* startStages(stages)
        yield* Effect.addFinalizer(() => drain)
        if (Option.isSome(forDuration)) yield* Effect.sleep(forDuration.value)
        else yield* Effect.never
      }).pipe(
        Effect.provide(Layer.merge(healthServer(httpPort), Layer.empty).pipe(Layer.provideMerge(services)))
      )
    })
  )
