/** Test harness: the real stages on an in-memory bus against the simulator over loopback sockets. */
import { Duration, Effect, Layer, Option, Redacted, Stream } from "effect"
import * as BinanceExchange from "../../layers/BinanceExchange.ts"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Candidate, OrderEvent, Tick } from "../../src/domain/Messages.ts"
import { MarketRaw, OrdersEvents, SignalsCandidate } from "../../src/domain/Topics.ts"
import { Health } from "../../src/observability/Health.ts"
import { defaultOrderManagerOptions } from "../../src/orders/OrderManager.ts"
import type { RiskLimits } from "../../src/risk/RiskGate.ts"
import { type StageContext, stageRun, Stages, type StageServices } from "../../src/runtime/Stages.ts"
import type { StageRun } from "../../src/runtime/Supervisor.ts"
import type { SimExchange } from "../../src/sim/SimExchange.ts"
import { SIM_API_KEY, SIM_API_SECRET } from "../../src/sim/SimExchange.ts"

export const exchangeLayerFor = (sim: SimExchange, overrides: Partial<BinanceExchange.BinanceExchangeOptions> = {}) =>
  BinanceExchange.layerOptions({
    wsBaseUrl: sim.wsBaseUrl,
    restBaseUrl: sim.restBaseUrl,
    apiKey: Redacted.make(SIM_API_KEY),
    apiSecret: Redacted.make(SIM_API_SECRET),
    recvWindowMs: 5000,
    httpTimeout: Duration.seconds(5),
    idleTimeout: Duration.seconds(30),
    ...overrides
  })

export const servicesFor = (sim: SimExchange, overrides: Partial<BinanceExchange.BinanceExchangeOptions> = {}) =>
  Layer.mergeAll(exchangeLayerFor(sim, overrides), Health.layer("test")).pipe(Layer.provideMerge(InMemoryBus.layerTest()))

export const testLimits: RiskLimits = { orderQty: 0.1, maxPosition: 1, maxTradesPerMinute: 10, maxTradesPerHour: 100 }

/** The trading stages of the registry (ingest → signals → risk → orders) with test configuration. */
export const allStages = (symbols: ReadonlyArray<string>, limits = testLimits): ReadonlyArray<StageRun<StageServices>> => {
  const context: StageContext = { symbols, mode: "run" }
  return [
    stageRun(Stages.ingest, undefined, context),
    stageRun(Stages.signals, Option.none(), context),
    stageRun(Stages.risk, limits, context),
    stageRun(Stages.orders, defaultOrderManagerOptions(symbols), context)
  ]
}

/** Collects what the pipeline publishes (subscribed before anything is published). */
export const recorder = Effect.gen(function*() {
  const bus = yield* Bus
  const ticks: Array<Tick> = []
  const candidates: Array<Candidate> = []
  const orders: Array<OrderEvent> = []
  yield* bus.subscribe(MarketRaw, { group: "rec-ticks" }).pipe(Stream.runForEach((d) => Effect.sync(() => ticks.push(d.value))), Effect.forkScoped)
  yield* bus.subscribe(SignalsCandidate, { group: "rec-cand" }).pipe(Stream.runForEach((d) => Effect.sync(() => candidates.push(d.value))), Effect.forkScoped)
  yield* bus.subscribe(OrdersEvents, { group: "rec-orders" }).pipe(Stream.runForEach((d) => Effect.sync(() => orders.push(d.value))), Effect.forkScoped)
  return { ticks, candidates, orders }
})

/** Real-time wait, independent of TestClock (the simulator and HTTP run on real time). */
export const realWait = (ms: number) => Effect.promise(() => new Promise<void>((resolve) => setTimeout(resolve, ms)))

/** Polls `condition` every 10 ms of real time (so it also works under TestClock), failing after `timeoutMs`. */
export const eventually = (condition: () => boolean, what: string, timeoutMs = 10_000) =>
  Effect.gen(function*() {
    const start = Date.now()
    while (!condition()) {
      if (Date.now() - start > timeoutMs) return yield* Effect.die(new Error(`timed out waiting for ${what}`))
      yield* realWait(10)
    }
  })

/** Emits trades at the simulator until the ingest stage has delivered one to market.raw (the socket is up). */
export const waitForIngest = (sim: SimExchange, seen: ReadonlyArray<Tick>, symbol: string, price: number) =>
  Effect.gen(function*() {
    const start = Date.now()
    while (seen.length === 0) {
      if (Date.now() - start > 10_000) return yield* Effect.die(new Error("ingest never connected"))
      sim.emitTrade(symbol, price)
      yield* Effect.sleep("50 millis")
    }
  })
