/**
 * What an operator sees of a running process: per symbol the ticks, the last price, the position and its PnL
 * (from `orders.events` through the PositionBook, the same view Telegram's /status shows), the last signals with
 * their decisions, and what happened since the last look. It feeds `GET /status`, the console's status line every
 * STATUS_EVERY and the summary printed when the process stops (after the drain, so every fill is in it).
 *
 * It reads the bus like any consumer: order events and control from the start (positions and pause are state),
 * ticks, candidates and decisions from now on.
 */
import { Clock, Config, Context, Duration, Effect, Layer, Scope, Stream } from "effect"
import { HttpRouter, HttpServerResponse } from "effect/http"
import { Bus, commitBatch, replayThenLive } from "../bus/Bus.ts"
import type { Approved, Candidate, Control, OrderEvent, Rejected } from "../domain/Messages.ts"
import { ControlTopic, MarketRaw, OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected } from "../domain/Topics.ts"
import { applyControl, applyOrder, makeView, recordCandidate, recordDecision, type StatusView } from "../notify/StatusView.ts"
import { type Position, positionOf } from "../orders/PositionBook.ts"

export interface Tally {
  ticks: number
  candidates: number
  approvals: number
  rejections: Record<string, number>
  /** Orders sent to the exchange (OrderSubmitted). */
  orders: number
  fills: number
  ordersRejected: number
}

const emptyTally = (): Tally => ({ ticks: 0, candidates: 0, approvals: 0, rejections: {}, orders: 0, fills: 0, ordersRejected: 0 })

export interface PositionStatus {
  readonly symbol: string
  readonly qty: number
  /** Effective entry price (fees included); 0 when flat. */
  readonly entry: number
  readonly lastPrice: number | undefined
  /** qty × last − cost (fees paid on entry included), in the quote asset; 0 when flat or no price yet. */
  readonly unrealizedPnl: number
  readonly realizedPnl: number
  readonly fees: number
  readonly trades: number
}

export interface StatusReport {
  readonly uptimeSeconds: number
  readonly symbols: ReadonlyArray<string>
  readonly paused: boolean
  readonly pausedBy?: string
  readonly positions: ReadonlyArray<PositionStatus>
  readonly lastSignals: ReadonlyArray<{ readonly id: string; readonly symbol: string; readonly side: string; readonly price: number; readonly ts: number; readonly outcome?: string }>
  /** Since the process started. */
  readonly counts: Readonly<Record<string, Tally>>
}

export interface OperatorViewShape {
  readonly status: Effect.Effect<StatusReport>
}

export class OperatorView extends Context.Service<OperatorView, OperatorViewShape>()("autotrader/observability/OperatorView") {}

/** `GET /status`: the operator view as JSON (positions and PnL in the quote asset, last signals, paused). */
export const statusRoute = HttpRouter.add(
  "GET",
  "/status",
  Effect.gen(function*() {
    const view = yield* Effect.serviceOption(OperatorView)
    if (view._tag === "None") return HttpServerResponse.jsonUnsafe({ error: "no operator view in this process" }, { status: 404 })
    return HttpServerResponse.jsonUnsafe(yield* view.value.status)
  })
)

/** The position of `symbol` marked to `lastPrice`. Pure: the tests check it by hand. */
export const markToMarket = (p: Position, lastPrice: number | undefined): PositionStatus => ({
  symbol: p.symbol,
  qty: p.qty,
  entry: p.avgEntry,
  lastPrice,
  unrealizedPnl: p.qty > 0 && lastPrice !== undefined ? p.qty * lastPrice - p.cost : 0,
  realizedPnl: p.realizedPnl,
  fees: p.fees,
  trades: p.trades
})

const add = (into: Tally, key: keyof Omit<Tally, "rejections">, n = 1) => {
  into[key] += n
}

export interface OperatorViewOptions {
  readonly symbols: ReadonlyArray<string>
  /** The process's name (consumer groups are per process). */
  readonly service: string
  /** Print a status line per symbol every STATUS_EVERY and a summary at the end (`run`). */
  readonly console: boolean
}

const STATUS_GROUP = "operator-view"

export const layer = (options: OperatorViewOptions): Layer.Layer<OperatorView, never, Bus> =>
  Layer.effect(
    OperatorView,
    Effect.gen(function*() {
      const bus = yield* Bus
      const statusEvery = yield* Config.Duration("STATUS_EVERY").pipe(Config.withDefault(Duration.seconds(10)), Effect.orDie)
      const started = yield* Clock.currentTimeMillis
      const view: StatusView = makeView(started, options.symbols)
      const lastPrice = new Map<string, number>()
      const total = new Map<string, Tally>()
      let sinceLine = new Map<string, Tally>()
      let lineAt = started
      let orderEventsSeen = 0
      const tallies = (symbol: string): [Tally, Tally] => {
        let t = total.get(symbol)
        if (t === undefined) total.set(symbol, (t = emptyTally()))
        let s = sinceLine.get(symbol)
        if (s === undefined) sinceLine.set(symbol, (s = emptyTally()))
        return [t, s]
      }
      const count = (symbol: string, key: keyof Omit<Tally, "rejections">, n = 1) => {
        for (const t of tallies(symbol)) add(t, key, n)
      }
      const onOrder = (e: OrderEvent, live: boolean) => {
        orderEventsSeen++
        applyOrder(view, e)
        if (!live) return
        if (e._tag === "OrderSubmitted") count(e.symbol, "orders")
        else if (e._tag === "OrderFilled") count(e.symbol, "fills")
        else if (e._tag === "OrderRejected") count(e.symbol, "ordersRejected")
      }
      const onDecision = (d: Approved | Rejected) => {
        recordDecision(view, d)
        const symbol = d.candidate.symbol
        if (d._tag === "Approved") count(symbol, "approvals")
        else for (const t of tallies(symbol)) t.rejections[d.reason] = (t.rejections[d.reason] ?? 0) + 1
      }

      const scope = yield* Scope.Scope
      const subscribe = Effect.gen(function*() {
        const group = `${STATUS_GROUP}-${options.service}`
        const orders = yield* replayThenLive(OrdersEvents, `${group}-orders`).pipe(Effect.orDie)
        for (const e of orders.history) onOrder(e, false)
        const control = yield* replayThenLive(ControlTopic, `${group}-control`).pipe(Effect.orDie)
        for (const c of control.history) applyControl(view, c)
        const forever = <A, E>(stream: Stream.Stream<A, E>, f: (a: A) => void) =>
          stream.pipe(Stream.runForEach((a) => Effect.sync(() => f(a))), Effect.ignore, Effect.forkScoped)
        yield* forever(orders.live, (e) => onOrder(e, true))
        yield* forever(control.live, (c: Control) => applyControl(view, c))
        // one consumer group per topic (a Kafka group shares one subscription among its members)
        const groupFor = (topic: { readonly name: string }) => `${group}-${topic.name}`
        // every tick only where the console shows ticks/s (`run`); a lone service marks to the last candidate's price
        if (options.console) {
          yield* bus.subscribe(MarketRaw, { group: groupFor(MarketRaw), start: "latest", observer: true }).pipe(
            Stream.runForEachArray((deliveries) =>
              Effect.suspend(() => {
                for (const d of deliveries) {
                  lastPrice.set(d.value.symbol, d.value.price)
                  count(d.value.symbol, "ticks")
                }
                return commitBatch(deliveries)
              })
            ),
            Effect.ignore,
            Effect.forkScoped
          )
        }
        yield* bus.subscribe(SignalsCandidate, { group: groupFor(SignalsCandidate), start: "latest", observer: true }).pipe(
          Stream.runForEachArray((deliveries) =>
            Effect.suspend(() => {
              for (const d of deliveries) {
                recordCandidate(view, d.value as Candidate)
                count(d.value.symbol, "candidates")
                if (!options.console) lastPrice.set(d.value.symbol, d.value.price)
              }
              return commitBatch(deliveries)
            })
          ),
          Effect.ignore,
          Effect.forkScoped
        )
        for (const topic of [SignalsApproved, SignalsRejected] as const) {
          yield* bus.subscribe<Approved | Rejected>(topic as typeof SignalsApproved, { group: groupFor(topic), start: "latest", observer: true }).pipe(
            Stream.runForEachArray((deliveries) =>
              Effect.suspend(() => {
                for (const d of deliveries) onDecision(d.value)
                return commitBatch(deliveries)
              })
            ),
            Effect.ignore,
            Effect.forkScoped
          )
        }
      }).pipe(Effect.provideService(Scope.Scope, scope), Effect.provideService(Bus, bus))
      // `run` shows the console from the start; a lone service reads the bus for /status only once asked
      // (six services each adding consumers would slow every start-up and rebalance for a page nobody opened)
      const subscribed: Effect.Effect<void> = options.console ? yield* subscribe.pipe(Effect.as(Effect.void)) : yield* Effect.cached(subscribe)

      const positions = () => options.symbols.map((s) => markToMarket(positionOf(view.positions, s), lastPrice.get(s)))

      const status = Effect.gen(function*() {
        yield* subscribed
        const now = yield* Clock.currentTimeMillis
        return {
          uptimeSeconds: Math.round((now - started) / 1000),
          symbols: options.symbols,
          paused: view.paused,
          ...(view.pausedBy === undefined ? {} : { pausedBy: view.pausedBy }),
          positions: positions(),
          lastSignals: view.lastSignals.map((s) => ({
            id: s.candidate.id,
            symbol: s.candidate.symbol,
            side: s.candidate.side,
            price: s.candidate.price,
            ts: s.candidate.ts,
            ...(s.outcome === undefined ? {} : { outcome: s.outcome })
          })),
          counts: Object.fromEntries(options.symbols.map((s) => [s, { ...tallies(s)[0] }]))
        } satisfies StatusReport
      })

      if (options.console) {
        const statusLines = Effect.gen(function*() {
          const now = yield* Clock.currentTimeMillis
          const seconds = Math.max(0.001, (now - lineAt) / 1000)
          const since = sinceLine
          sinceLine = new Map()
          lineAt = now
          for (const p of positions()) {
            const t = since.get(p.symbol) ?? emptyTally()
            yield* Effect.logInfo("status", {
              symbol: p.symbol,
              ticksPerSecond: Math.round((t.ticks / seconds) * 10) / 10,
              last: p.lastPrice,
              position: p.qty,
              entry: p.entry,
              unrealizedPnl: p.unrealizedPnl,
              realizedPnl: p.realizedPnl,
              orders: t.orders,
              fills: t.fills,
              candidates: t.candidates,
              rejections: t.rejections,
              ...(view.paused ? { paused: true } : {})
            })
          }
        })
        yield* Effect.sleep(statusEvery).pipe(Effect.andThen(statusLines), Effect.forever, Effect.forkScoped)

        // at the end, once the drain is over: wait (bounded) until every order event on the bus is applied
        yield* Effect.addFinalizer(() =>
          Effect.gen(function*() {
            const caughtUp = Effect.gen(function*() {
              const ends = yield* bus.endOffsets(OrdersEvents).pipe(Effect.orElseSucceed(() => new Map<number, number>()))
              let end = 0
              for (const n of ends.values()) end += n
              return orderEventsSeen >= end
            })
            for (let i = 0; i < 150 && !(yield* caughtUp); i++) yield* Effect.sleep("20 millis")
            const now = yield* Clock.currentTimeMillis
            const all = [...total.values()]
            const sum = (k: keyof Omit<Tally, "rejections">) => all.reduce((a, t) => a + t[k], 0)
            const rejections: Record<string, number> = {}
            for (const t of all) for (const [r, n] of Object.entries(t.rejections)) rejections[r] = (rejections[r] ?? 0) + n
            const ps = positions()
            yield* Effect.logInfo("summary", {
              durationSeconds: Math.round((now - started) / 100) / 10,
              ticks: sum("ticks"),
              candidates: sum("candidates"),
              approvals: sum("approvals"),
              rejections,
              orders: sum("orders"),
              fills: sum("fills"),
              realizedPnl: ps.reduce((a, p) => a + p.realizedPnl, 0),
              fees: ps.reduce((a, p) => a + p.fees, 0),
              unrealizedPnl: ps.reduce((a, p) => a + p.unrealizedPnl, 0),
              open: ps.filter((p) => p.qty > 0).map((p) => ({ symbol: p.symbol, qty: p.qty, entry: p.entry, last: p.lastPrice, unrealizedPnl: p.unrealizedPnl }))
            })
          })
        )
      }
      return OperatorView.of({ status })
    })
  )
