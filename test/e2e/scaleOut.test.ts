/**
 * Scale-out over Kafka: two instances each of signals, risk and orders in the same consumer groups, four symbols over
 * four partitions, ingest and the simulator as the exchange. Each instance is a runtime of its own (its own Kafka
 * clients, so its own group member) in this process; stopping one leaves its group, as a stopped service does.
 * Mid-run one instance of each stage is stopped (its partitions move to the survivor), then a fresh one is started
 * (partitions move again, away from a running owner). Then ingest stops, the pipeline settles, and the run is checked
 * from outside: crossovers recomputed independently from market.raw, the candidates and decisions on the topics,
 * the simulator's own order log. Run once per Kafka client (kafkajs, then @platformatic/kafka, the default): each
 * has its own assignment bookkeeping (layers/KafkaBus.ts, layers/PlatformaticKafkaBus.ts).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Layer, Logger, Option, Schedule, Scope } from "effect"
import { AssignerProtocol, Kafka, logLevel } from "kafkajs"
import * as KafkaBus from "../../layers/KafkaBus.ts"
import * as PlatformaticKafkaBus from "../../layers/PlatformaticKafkaBus.ts"
import { Bus, follow, namespaced } from "../../src/bus/Bus.ts"
import { type Approved, candidateId, type Candidate, type OrderEvent, type Rejected, type Tick } from "../../src/domain/Messages.ts"
import { MarketRaw, OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected } from "../../src/domain/Topics.ts"
import { Health } from "../../src/observability/Health.ts"
import { defaultOrderManagerOptions } from "../../src/orders/OrderManager.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { Stages, type StageServices } from "../../src/runtime/Stages.ts"
import { type SimExchange, startSimExchange } from "../../src/sim/SimExchange.ts"
import { exchangeLayerFor } from "../support/pipeline.ts"

const BROKERS = process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`
/** One symbol per partition under kafkajs' murmur2 partitioner with 4 partitions: XRP 0, ETH 1, BTC 2, BNB 3. */
const SYMBOLS = ["XRPUSDT", "ETHUSDT", "BTCUSDT", "BNBUSDT"]
const PARTITIONS = 4
const FAST = 10
const SLOW = 30
type Client = "kafkajs" | "platformatic"
/** The client of the suite running (set in its beforeAll), and its topics' and groups' prefix. */
let client: Client = "kafkajs"
let prefix = ""
const context = { symbols: SYMBOLS, mode: "service" as const }
const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 100_000, maxTradesPerHour: 100_000 }

interface LogLine {
  readonly instance: string
  readonly message: string
  readonly fields: Record<string, unknown>
}
const logs: Array<LogLine> = []
const loggerFor = (instance: string) =>
  Logger.layer([
    Logger.map(Logger.formatStructured, (entry) => {
      const [message, fields] = Array.isArray(entry.message) ? entry.message : [entry.message, {}]
      logs.push({ instance, message: String(message), fields: (fields ?? {}) as Record<string, unknown> })
    })
  ])

const kafkaBus = (clientId: string) =>
  Layer.effect(
    Bus,
    (client === "kafkajs" ? KafkaBus.make : PlatformaticKafkaBus.make)({ brokers: [BROKERS], clientId, partitions: PARTITIONS }).pipe(
      Effect.map((bus) => namespaced(prefix, bus))
    )
  )

let sim: SimExchange
const instances = new Map<string, Fiber.Fiber<unknown, unknown>>()

/** Starts one instance of a stage: its own bus (Kafka clients), exchange client and health; restarted on failure. */
const start = (name: string, stage: Effect.Effect<unknown, unknown, StageServices>) => {
  const services = Layer.mergeAll(exchangeLayerFor(sim), Health.layer(name)).pipe(Layer.provideMerge(kafkaBus(`${prefix}${name}`)))
  const fiber = Effect.runFork(
    stage.pipe(
      Effect.sandbox,
      Effect.tapError((cause) => Effect.logError("instance failed; restarting", { cause: String(cause) })),
      Effect.retry(Schedule.spaced("1 second")),
      Effect.provide(services),
      Effect.provide(loggerFor(name))
    )
  )
  instances.set(name, fiber)
}
const stop = async (name: string) => {
  const fiber = instances.get(name)
  instances.delete(name)
  if (fiber !== undefined) await Effect.runPromise(Fiber.interrupt(fiber))
}

const signalsStage = () => Stages.signals.run(Option.none(), context)
const riskStage = () => Stages.risk.run(limits, context)
const ordersStage = () => Stages.orders.run({ ...defaultOrderManagerOptions(SYMBOLS), recvWindowMs: 5000 }, context)

const kafka = new Kafka({ brokers: [BROKERS], logLevel: logLevel.NOTHING, retry: { retries: 2 } })
const admin = kafka.admin()

/** Partitions of `topic` held by each member of `group`. */
const assignment = async (group: string, topic: string): Promise<Array<ReadonlyArray<number>>> => {
  const { groups } = await admin.describeGroups([`${prefix}${group}`])
  return (groups[0]?.members ?? []).map((m) => {
    const decoded = AssignerProtocol.MemberAssignment.decode(m.memberAssignment)
    return decoded?.assignment[`${prefix}${topic}`] ?? []
  })
}

const waitFor = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs: number) => {
  const startedAt = Date.now()
  while (!(await condition())) {
    if (Date.now() - startedAt > timeoutMs) {
      const failures = logs.filter((l) => l.message.includes("failed")).slice(-5).map((l) => `${l.instance}: ${l.message} ${JSON.stringify(l.fields)}`)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${failures.join("\n")}`)
    }
    await new Promise((r) => setTimeout(r, 200))
  }
}

/** Two members in each group, every partition held by exactly one of them. */
const splitBetweenTwo = async (): Promise<boolean> => {
  for (const [group, topic] of [["signals", "market.raw"], ["risk", "signals.candidate"], ["orders", "signals.approved"]] as const) {
    const members = await assignment(group, topic)
    if (members.length !== 2 || members.some((p) => p.length === 0)) return false
    if ([...members.flat()].sort().join(",") !== "0,1,2,3") return false
  }
  return true
}

const executed = () => [...sim.orders()].sort((a, b) => a.orderId - b.orderId)

/** The crossover rule, written again from its definition: MA10/MA30 of the last trade prices, sign changes. */
const crossoversOf = (ticks: ReadonlyArray<Tick>): Array<{ readonly id: string; readonly tradeId: number; readonly side: "LONG" | "SHORT" }> => {
  const out: Array<{ id: string; tradeId: number; side: "LONG" | "SHORT" }> = []
  let last = 0
  for (let i = SLOW - 1; i < ticks.length; i++) {
    let slow = 0
    let fast = 0
    for (let k = 0; k < SLOW; k++) {
      const p = ticks[i - k].price
      slow += p
      if (k < FAST) fast += p
    }
    const maFast = fast / FAST
    const maSlow = slow / SLOW
    const diff = maFast - maSlow
    const sign = Math.abs(diff) <= Math.abs(maSlow) * 1e-12 ? 0 : diff > 0 ? 1 : -1
    if (sign === 0) continue
    if (last !== 0 && sign !== last) {
      const side = sign > 0 ? "LONG" : "SHORT"
      out.push({ id: candidateId(ticks[i].symbol, ticks[i].tradeId, side), tradeId: ticks[i].tradeId, side })
    }
    last = sign
  }
  return out
}

beforeAll(async () => {
  await admin.connect().catch((e) => {
    throw new Error(`Kafka is not reachable at ${BROKERS} (start it with scripts/kafka.sh start): ${e}`)
  })
}, 60_000)
afterAll(() => admin.disconnect(), 60_000)

for (const suiteClient of ["kafkajs", "platformatic"] as const) describe(`scale-out over Kafka (${suiteClient})`, () => {
  beforeAll(async () => {
    client = suiteClient
    prefix = `scale${suiteClient === "kafkajs" ? "j" : "p"}${Date.now().toString(36)}.`
    logs.length = 0
    sim = await startSimExchange({
      symbols: SYMBOLS,
      ticksPerSecond: 8,
      seed: 11,
      // one price level for all four, so one order quantity clears every symbol's filters
      startPrices: Object.fromEntries(SYMBOLS.map((s) => [s, 60_000]))
    })
  }, 60_000)

  afterAll(async () => {
    await Promise.all([...instances.keys()].map(stop))
    await sim?.close()
  }, 60_000)

  it("Two instances per stage over Kafka: orders once per crossover across a forced rebalance", async () => {
    // the test's own reader of the topics (follows them live; ephemeral groups)
    const scope = Effect.runSync(Scope.make())
    const seen = {
      ticks: [] as Array<Tick>,
      candidates: [] as Array<Candidate>,
      approved: [] as Array<Approved>,
      rejected: [] as Array<Rejected>,
      events: [] as Array<OrderEvent>
    }
    const readerLayer = kafkaBus(`${prefix}reader`)
    // the reader's bus lives in `scope` (until the end of the test), not just while the followers start
    const readerContext = await Effect.runPromise(Layer.buildWithScope(readerLayer, scope).pipe(Effect.provide(Logger.layer([]))))
    const followers = await Effect.runPromise(
      Effect.gen(function*() {
        return {
          ticks: yield* follow(MarketRaw, "check", (t) => void seen.ticks.push(t)),
          candidates: yield* follow(SignalsCandidate, "check", (c) => void seen.candidates.push(c)),
          approved: yield* follow(SignalsApproved, "check", (a) => void seen.approved.push(a)),
          rejected: yield* follow(SignalsRejected, "check", (r) => void seen.rejected.push(r)),
          events: yield* follow(OrdersEvents, "check", (e) => void seen.events.push(e))
        }
      }).pipe(
        Scope.provide(scope),
        Effect.provideContext(readerContext),
        Effect.provide(Logger.layer([]))
      )
    )
    const t0 = Date.now()
    const phase = (what: string) => console.log(`scale-out +${((Date.now() - t0) / 1000).toFixed(1)} s: ${what} (${executed().length} orders)`)
    phase("topics followed")
    try {
      start("ingest", Stages.ingest.run(undefined, context))
      for (const n of ["a", "b"]) {
        start(`signals-${n}`, signalsStage())
        start(`risk-${n}`, riskStage())
        start(`orders-${n}`, ordersStage())
      }
      await waitFor(splitBetweenTwo, "two members per group, the four partitions split between them", 90_000)
      phase("split")
      await waitFor(() => executed().length >= 4, "orders with two instances per stage", 90_000)
      phase("trading with two instances")

      // stop one instance of each stage: its partitions move to the survivor
      const beforeStop = executed().length
      await Promise.all(["signals-a", "risk-a", "orders-a"].map(stop))
      await waitFor(async () => (await assignment("orders", "signals.approved")).length === 1, "the survivors holding every partition", 60_000)
      phase("survivors hold every partition")
      await waitFor(() => executed().length >= beforeStop + 4, "orders after the survivors took over", 90_000)
      phase("trading after the stop")

      // start fresh instances: partitions move again, away from running owners
      for (const n of ["c"]) {
        start(`signals-${n}`, signalsStage())
        start(`risk-${n}`, riskStage())
        start(`orders-${n}`, ordersStage())
      }
      await waitFor(splitBetweenTwo, "the new instances holding partitions", 90_000)
      phase("new instances hold partitions")
      const beforeJoin = executed().length
      await waitFor(() => executed().length >= beforeJoin + 4, "orders after the new instances joined", 90_000)
      phase("trading after the join")

      // end of the run: no more ticks; everything decided and every approval settled
      await stop("ingest")
      const settled = async () => {
        await Effect.runPromise(
          Effect.all([followers.ticks.caughtUp, followers.candidates.caughtUp, followers.approved.caughtUp, followers.rejected.caughtUp, followers.events.caughtUp])
        )
        // every stage's input handled (committed by the groups) and every approval settled
        const lags = await Effect.runPromise(
          Effect.gen(function*() {
            const bus = yield* Bus
            return yield* Effect.all([bus.lag(MarketRaw, "signals"), bus.lag(SignalsCandidate, "risk"), bus.lag(SignalsApproved, "orders")])
          }).pipe(Effect.provideContext(readerContext))
        )
        const final = new Set(seen.events.filter((e) => e._tag === "OrderFilled" || e._tag === "OrderRejected" || e._tag === "OrderFailed").map((e) => e.signalId))
        return lags.every((n) => n === 0) && seen.approved.every((a) => final.has(a.id))
      }
      const crossovers = () => {
        const bySymbol = new Map<string, Map<number, Tick>>()
        for (const t of seen.ticks) {
          const m = bySymbol.get(t.symbol) ?? new Map<number, Tick>()
          m.set(t.tradeId, t)
          bySymbol.set(t.symbol, m)
        }
        return [...bySymbol.values()].flatMap((m) => crossoversOf([...m.values()].sort((a, b) => a.tradeId - b.tradeId)))
      }
      await waitFor(settled, "every stage caught up (lag 0) and every approval settled", 90_000)
      phase("settled")

      // --- the checks, from outside ---------------------------------------------------------------------------
      const expected = crossovers()
      const expectedIds = new Set(expected.map((c) => c.id))
      const candidateIds = new Set(seen.candidates.map((c) => c.id))
      const missed = expected.filter((c) => !candidateIds.has(c.id)).map((c) => c.id)
      const invented = [...candidateIds].filter((id) => !expectedIds.has(id))
      expect(missed, "crossovers without a candidate").toEqual([])
      expect(invented, "candidates that are not crossovers").toEqual([])

      const approvedIds = new Set(seen.approved.map((a) => a.id))
      const rejectedBy = new Map(seen.rejected.map((r) => [r.id, r.reason]))
      const conflicting = [...approvedIds].filter((id) => rejectedBy.has(id))
      expect(conflicting, "crossovers both approved and rejected").toEqual([])
      const orders = executed()
      const ordersByClientId = new Map<string, number>()
      for (const o of orders) ordersByClientId.set(o.clientOrderId, (ordersByClientId.get(o.clientOrderId) ?? 0) + 1)
      const doubled = [...ordersByClientId].filter(([, n]) => n > 1).map(([id]) => id)
      expect(doubled, "client order ids executed twice").toEqual([])
      const orderFor = new Map(orders.map((o) => [o.clientOrderId, o]))
      for (const c of expected) {
        const order = orderFor.get(clientOrderIdFor(c.id))
        if (approvedIds.has(c.id)) {
          expect(order, `approved crossover ${c.id} has an exchange order`).toBeDefined()
          expect(order!.side).toBe(c.side === "LONG" ? "BUY" : "SELL")
          expect(order!.status).toBe("FILLED")
        } else {
          expect(order, `rejected crossover ${c.id} has no exchange order`).toBeUndefined()
          expect(["NoPosition", "PositionOpen", "PositionPending"], `${c.id} rejected`).toContain(rejectedBy.get(c.id))
        }
      }
      const knownClientIds = new Set(expected.map((c) => clientOrderIdFor(c.id)))
      expect(orders.filter((o) => !knownClientIds.has(o.clientOrderId)).map((o) => o.clientOrderId), "orders without a crossover").toEqual([])
      // spot, long-only: a risk gate that lost track of a position across the move would buy twice in a row
      for (const symbol of SYMBOLS) {
        const sides = orders.filter((o) => o.symbol === symbol).map((o) => o.side)
        sides.forEach((side, i) => expect(side, `${symbol}: ${sides.join(",")}`).toBe(i % 2 === 0 ? "BUY" : "SELL"))
      }
      // the moves did happen and the new owners rebuilt: windows from market.raw history, state caught up
      expect(logs.some((l) => l.message === "signal state rebuilt" && ["signals-b", "signals-c"].includes(l.instance))).toBe(true)
      expect(logs.some((l) => l.message === "risk state caught up for a symbol" && l.instance === "risk-c")).toBe(true)
      expect(orders.length).toBeGreaterThanOrEqual(12)
      // no instance needed a restart to get there (a rebuild or catch-up that failed would show here)
      expect(logs.filter((l) => l.message === "instance failed; restarting").map((l) => `${l.instance}: ${JSON.stringify(l.fields)}`)).toEqual([])
      console.log(
        `scale-out: ${seen.ticks.length} ticks, ${expected.length} crossovers, ${approvedIds.size} approved, ` +
          `${expected.length - approvedIds.size} rejected, ${orders.length} exchange orders, 0 missed, 0 doubled`
      )
    } finally {
      await Effect.runPromise(Scope.close(scope, Exit.void))
    }
  }, 420_000)
})
