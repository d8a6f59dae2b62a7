/**
 * The stage registry: every stage once, with what it reads (topic + consumer group, drained on stop), what it
 * writes, whether it is a source, whether it needs the exchange, its configuration and how it runs.
 * `autotrader run`, `autotrader service <stage>` and the test support all start stages from here.
 *
 * Configuration is split from running so that the runtime loads every stage's config before anything starts
 * (a fatal ConfigError stops the process at once), and tests pass their own config to `run`.
 */
import { Config, Effect, Option } from "effect"
import type { Bus } from "../bus/Bus.ts"
import type { ConfigError } from "../domain/Errors.ts"
import {
  Alerts,
  ControlTopic,
  MarketRaw,
  OrdersEvents,
  SignalsApproved,
  SignalsCandidate,
  SignalsRejected,
  type Topic
} from "../domain/Topics.ts"
import type { Exchange } from "../exchange/Exchange.ts"
import { ingestOptionsConfig, type IngestOptions, runIngest } from "../ingest/Ingest.ts"
import { type NotifierConfig, notifierConfig, notifierStage } from "../notify/Notifier.ts"
import type { Health, StageInput } from "../observability/Health.ts"
import { defaultOrderManagerOptions, type OrderManagerOptions } from "../orders/OrderManager.ts"
import { ORDERS_GROUP, runOrders } from "../orders/OrderService.ts"
import type { RiskLimits } from "../risk/RiskGate.ts"
import { RISK_GROUP, riskLimitsConfig, runRisk } from "../risk/RiskService.ts"
import {
  runSignalsWith,
  type SignalModelOptions,
  signalModelConfig,
  SIGNALS_GROUP,
  signalWindowsConfig
} from "../signals/SignalService.ts"
import { runStore, STORE_GROUP, type StoreOptions, storeOptionsConfig } from "../storage/StoreService.ts"
import type { StageRun } from "./Supervisor.ts"

export const STAGE_NAMES = ["ingest", "signals", "risk", "orders", "notify", "store"] as const
export type StageName = (typeof STAGE_NAMES)[number]

/** What every stage may know about the process that runs it. */
export interface StageContext {
  readonly symbols: ReadonlyArray<string>
  /** `run`: all stages in one process; `service`: this stage alone. */
  readonly mode: "run" | "service"
}

export type StageServices = Bus | Exchange | Health

export interface StageDefinition<C> {
  readonly name: StageName
  /** Sources publish from outside the bus; they are stopped first on drain. */
  readonly source: boolean
  readonly inputs: ReadonlyArray<StageInput>
  readonly outputs: ReadonlyArray<Topic<any>>
  readonly needsExchange: boolean
  /** Reads and validates the stage's configuration (fails with a ConfigError naming the variable). */
  readonly config: (context: StageContext) => Effect.Effect<C, ConfigError | Config.ConfigError>
  /** Whether the stage runs at all with this configuration (e.g. STORE_ENABLED=false in `run`). */
  readonly enabled: (config: C, context: StageContext) => boolean
  readonly run: (config: C, context: StageContext) => Effect.Effect<unknown, unknown, StageServices>
}

const define = <C>(definition: StageDefinition<C>): StageDefinition<C> => definition
const always = () => true

export const orderOptionsConfig = (symbols: ReadonlyArray<string>) =>
  Effect.map(Config.Int("EXCHANGE_RECV_WINDOW").pipe(Config.withDefault(5000)), (recvWindowMs): OrderManagerOptions => ({
    ...defaultOrderManagerOptions(symbols),
    recvWindowMs
  }))

export const Stages = {
  /** Config undefined: the stage reads it from the environment when it starts (tests). */
  ingest: define<IngestOptions | undefined>({
    name: "ingest",
    source: true,
    inputs: [],
    outputs: [MarketRaw],
    needsExchange: true,
    config: ({ symbols }) => ingestOptionsConfig(symbols),
    enabled: always,
    run: (options, { symbols }) => runIngest(symbols, options)
  }),
  signals: define<Option.Option<SignalModelOptions>>({
    name: "signals",
    source: false,
    inputs: [[MarketRaw, SIGNALS_GROUP]],
    outputs: [SignalsCandidate],
    needsExchange: false,
    // the windows are read again by the worker; checked here so a bad SIGNAL_FAST stops the process at start
    config: () => Effect.andThen(signalWindowsConfig, signalModelConfig),
    enabled: always,
    run: (model) => runSignalsWith(model)
  }),
  risk: define<RiskLimits>({
    name: "risk",
    source: false,
    inputs: [[SignalsCandidate, RISK_GROUP]],
    outputs: [SignalsApproved, SignalsRejected],
    needsExchange: false,
    config: () => riskLimitsConfig,
    enabled: always,
    run: (limits) => runRisk(limits)
  }),
  orders: define<OrderManagerOptions>({
    name: "orders",
    source: false,
    inputs: [[SignalsApproved, ORDERS_GROUP]],
    outputs: [OrdersEvents, Alerts],
    needsExchange: true,
    config: ({ symbols }) => orderOptionsConfig(symbols),
    enabled: always,
    run: (options) => runOrders(options)
  }),
  notify: define<Option.Option<NotifierConfig>>({
    name: "notify",
    source: false,
    inputs: [],
    outputs: [ControlTopic],
    needsExchange: false,
    config: () => notifierConfig,
    // in `run` it is simply off without a token; as a service it stays up idle so a deployment can add the token
    enabled: (telegram, { mode }) => mode === "service" || Option.isSome(telegram),
    run: (telegram, { symbols }) =>
      Option.isSome(telegram)
        ? notifierStage(telegram.value, symbols).run
        : Effect.logInfo("Telegram notifier off: TELEGRAM_BOT_TOKEN is not set").pipe(Effect.andThen(Effect.never))
  }),
  store: define<StoreOptions>({
    name: "store",
    source: false,
    inputs: [[MarketRaw, STORE_GROUP]],
    outputs: [],
    needsExchange: false,
    config: () => storeOptionsConfig,
    enabled: (options, { mode }) => mode === "service" || options.enabled,
    run: (options) => runStore(options)
  })
} as const satisfies { readonly [K in StageName]: StageDefinition<any> }

/** A stage of the registry with its configuration applied: what the Supervisor starts. */
export const stageRun = <C>(definition: StageDefinition<C>, config: C, context: StageContext): StageRun<StageServices> => ({
  name: definition.name,
  run: definition.run(config, context),
  source: definition.source,
  inputs: definition.inputs
})

/** A stage with its configuration loaded from the environment, or undefined when it is disabled. */
export interface LoadedStage {
  readonly definition: StageDefinition<any>
  readonly run: StageRun<StageServices>
}

export const loadStage = <C>(definition: StageDefinition<C>, context: StageContext) =>
  Effect.map(definition.config(context), (config): Option.Option<LoadedStage> =>
    definition.enabled(config, context)
      ? Option.some({ definition, run: stageRun(definition, config, context) })
      : Option.none())
