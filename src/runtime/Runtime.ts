/**
 * One layer graph for `autotrader run` and `autotrader service <stage>`:
 *
 *   stages (one Layer each: the Supervisor forks its supervised loop)
 *     └─ Supervisor (its finalizer is the drain)
 *          └─ HTTP server (/health, /ready, /metrics) ─ Health ─ Exchange ─ Bus
 *
 * Layers are released in reverse order of acquisition, so on stop the drain runs while the bus, the exchange and the
 * HTTP server are still open, and finishes before they are released. All configuration is loaded by
 * `loadRuntimeConfig` before the graph is built: a ConfigError stops the process before any stage starts.
 */
import { Config, Duration, Effect, Layer, Option, Scheduler } from "effect"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import * as KafkaOptions from "../../layers/KafkaOptions.ts"
import { Bus, namespaced } from "../bus/Bus.ts"
import { type BusError, ConfigError } from "../domain/Errors.ts"
import { Exchange } from "../exchange/Exchange.ts"
import { Health } from "../observability/Health.ts"
import { httpServer } from "../observability/HttpServer.ts"
import * as OperatorView from "../observability/OperatorView.ts"
import { enableLatencyTrace } from "../observability/LatencyTrace.ts"
import { restProbe } from "../observability/Readiness.ts"
import * as SimExchangeServer from "../sim/SimExchangeServer.ts"
import { busKindConfig, httpPortConfig, simConfig, symbolsConfig, topicPrefixConfig } from "../cli/AppConfig.ts"
import { checkExchangeSymbols, checkSimSymbols } from "../cli/StartupChecks.ts"
import { type LoadedStage, loadStage, type StageContext, type StageName, Stages } from "./Stages.ts"
import { makeHopScheduler } from "./HopScheduler.ts"
import { Supervisor } from "./Supervisor.ts"

export type BusConfig =
  | { readonly kind: "memory"; readonly capacity: number }
  | {
    readonly kind: "kafka"
    readonly client: KafkaOptions.KafkaClient
    readonly options: KafkaOptions.KafkaBusOptions
    readonly prefix: string
  }

export type ExchangeConfig =
  | { readonly kind: "none" }
  | { readonly kind: "remote"; readonly options: BinanceExchange.BinanceExchangeOptions }
  /** `run` without EXCHANGE_* URLs: the simulated exchange on loopback, its URLs filled in once it listens. */
  | {
    readonly kind: "embedded"
    readonly options: BinanceExchange.BinanceExchangeOptions
    readonly sim: { readonly symbols: ReadonlyArray<string>; readonly seed: number; readonly ticksPerSecond: number; readonly port: number }
  }

export interface RuntimeConfig {
  /** The name on /health: "autotrader" for `run`, the stage for `service`. */
  readonly service: string
  readonly context: StageContext
  readonly stages: ReadonlyArray<LoadedStage>
  readonly bus: BusConfig
  readonly exchange: ExchangeConfig
  readonly httpPort: number
}

export type Selection = { readonly mode: "run" } | { readonly mode: "service"; readonly stage: StageName }

const busConfig = (mode: "run" | "service") =>
  Effect.gen(function*() {
    // a lone service talks to the others over Kafka unless told otherwise
    const kind = mode === "run" ? yield* busKindConfig : yield* busKindConfig.pipe(Config.withDefault("kafka" as const))
    if (kind === "memory") {
      return { kind, capacity: yield* Config.Int("BUS_CAPACITY").pipe(Config.withDefault(250_000)) } satisfies BusConfig
    }
    return {
      kind,
      client: yield* KafkaOptions.kafkaClientConfig,
      options: yield* KafkaOptions.config,
      prefix: yield* topicPrefixConfig
    } satisfies BusConfig
  })

const exchangeConfigFor = (context: StageContext, needed: boolean) =>
  Effect.gen(function*() {
    if (!needed) return { kind: "none" } satisfies ExchangeConfig
    const ws = yield* Config.String("EXCHANGE_WS_URL").pipe(Config.withDefault(""))
    const rest = yield* Config.String("EXCHANGE_REST_URL").pipe(Config.withDefault(""))
    if (ws !== "" && rest !== "") {
      return { kind: "remote", options: yield* BinanceExchange.exchangeConfig() } satisfies ExchangeConfig
    }
    if (context.mode === "service") {
      return yield* new ConfigError({
        message:
          "EXCHANGE_WS_URL and EXCHANGE_REST_URL are required for the ingest and orders services (e.g. the sim-exchange container, or Binance)"
      })
    }
    // the simulator would invent any market it is asked for: SYMBOLS must be one it offers
    yield* checkSimSymbols(context.symbols)
    const options = yield* BinanceExchange.exchangeConfig({ wsBaseUrl: "embedded", restBaseUrl: "embedded" })
    return { kind: "embedded", options, sim: { symbols: context.symbols, ...(yield* simConfig) } } satisfies ExchangeConfig
  })

/** Every setting the selected stages and their services need, read and checked before anything starts. */
export const loadRuntimeConfig = (selection: Selection) =>
  Effect.gen(function*() {
    const context: StageContext = { symbols: yield* symbolsConfig, mode: selection.mode }
    const definitions = selection.mode === "run"
      ? Object.values(Stages)
      : [Stages[selection.stage]]
    const stages: Array<LoadedStage> = []
    for (const definition of definitions) {
      const loaded = yield* loadStage(definition as Parameters<typeof loadStage>[0], context)
      if (Option.isSome(loaded)) stages.push(loaded.value)
    }
    return {
      service: selection.mode === "run" ? "autotrader" : selection.stage,
      context,
      stages,
      bus: yield* busConfig(selection.mode),
      exchange: yield* exchangeConfigFor(context, stages.some((s) => s.definition.needsExchange)),
      httpPort: yield* httpPortConfig
    } satisfies RuntimeConfig
  })

export const busLayer = (config: BusConfig): Layer.Layer<Bus, BusError> =>
  config.kind === "memory"
    ? InMemoryBus.layerTest({ capacity: config.capacity })
    : Layer.effect(
      Bus,
      // only the chosen client is loaded (kafkajs' 140 modules are a large part of a start-up otherwise)
      Effect.promise(() => config.client === "platformatic" ? import("../../layers/PlatformaticKafkaBus.ts") : import("../../layers/KafkaBus.ts")).pipe(
        Effect.flatMap((kafka) => kafka.make(config.options)),
        Effect.map((bus) => namespaced(config.prefix, bus))
      )
    )

/** The exchange, or a stand-in that dies if a stage that does not need it ever asks for it. */
export const exchangeLayer = (config: ExchangeConfig): Layer.Layer<Exchange, unknown> => {
  switch (config.kind) {
    case "none":
      return Layer.mock(Exchange, {})
    case "remote":
      return BinanceExchange.layerOptions(config.options)
    case "embedded":
      return Layer.unwrap(
        Effect.gen(function*() {
          const sim = yield* SimExchangeServer.make(config.sim)
          yield* Effect.logInfo("embedded simulated exchange started", {
            ws: sim.wsBaseUrl,
            rest: sim.restBaseUrl,
            seed: config.sim.seed,
            ticksPerSecond: config.sim.ticksPerSecond
          })
          return BinanceExchange.layerOptions({ ...config.options, wsBaseUrl: sim.wsBaseUrl, restBaseUrl: sim.restBaseUrl })
        })
      )
  }
}

/** A stage of the graph: a layer that hands its supervised loop to the Supervisor. */
export const stageLayer = (stage: LoadedStage) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const supervisor = yield* Supervisor
    yield* supervisor.start(stage.run)
  }))

/** The whole process as one layer. */
export const runtimeLayer = (config: RuntimeConfig, options: { readonly drainTimeout?: Duration.Input } = {}) => {
  const view = OperatorView.layer({ symbols: config.context.symbols, service: config.service, console: config.context.mode === "run" })
  const services = Layer.mergeAll(exchangeLayer(config.exchange), Health.layer(config.service), view).pipe(
    Layer.provideMerge(busLayer(config.bus))
  )
  // SYMBOLS against the exchange's exchangeInfo, before the HTTP server and any stage start
  const symbolsChecked = config.exchange.kind === "none"
    ? Layer.empty
    : Layer.merge(Layer.effectDiscard(checkExchangeSymbols(config.context.symbols)), restProbe())
  const base = Supervisor.layer(options).pipe(
    Layer.provideMerge(httpServer(config.httpPort)),
    Layer.provideMerge(symbolsChecked),
    Layer.provideMerge(services)
  )
  const started = Layer.effectDiscard(
    Effect.logInfo(config.context.mode === "run" ? "autotrader running" : "service starting", {
      service: config.service,
      symbols: config.context.symbols,
      stages: config.stages.map((s) => s.definition.name)
    })
  )
  return Layer.mergeAll(started, ...config.stages.map(stageLayer)).pipe(Layer.provide(base))
}

/** Builds the graph and keeps it up until interrupted (SIGINT/SIGTERM) or, with `forDuration`, that long. */
export const launch = (config: RuntimeConfig, forDuration: Option.Option<Duration.Duration> = Option.none()) =>
  Effect.gen(function*() {
    // LATENCY_TRACE=<file>: per-hop times of every tick that becomes an order (bench/tickToOrder.ts reads them)
    const trace = yield* Config.option(Config.String("LATENCY_TRACE"))
    // (a service writes every mark of its own, the reader joins the processes' files by tick id)
    if (Option.isSome(trace) && trace.value !== "") enableLatencyTrace(trace.value, { perProcess: config.context.mode === "service" })
    return yield* Option.isSome(forDuration)
      ? Effect.scoped(Layer.build(runtimeLayer(config)).pipe(Effect.andThen(Effect.sleep(forDuration.value))))
      : Layer.launch(runtimeLayer(config))
  }).pipe(
    // fiber hand-offs in microtasks (bounded): a tick reaches its order without waiting an event-loop turn per hop
    Effect.provideService(Scheduler.Scheduler, makeHopScheduler())
  )
