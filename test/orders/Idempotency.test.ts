/**
 * Applying an `OrderEvent` twice has the effect of applying it once, for every state built from `orders.events`:
 * the position book (and so replay, which uses it through the risk gate), the risk gate, the /status view and the
 * order manager's rebuild. Property tests: random histories of two symbols, every event delivered twice (the copy at a
 * random later position, as a redelivery would), and the symbols' streams interleaved in any order (per-key order is
 * the only order the bus guarantees; approvals and order events are separate topics, so their relative order is free).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import fc from "fast-check"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import type { Approved, OrderEvent } from "../../src/domain/Messages.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { applyControl as viewControl, applyOrder as viewOrder, makeView } from "../../src/notify/StatusView.ts"
import { defaultOrderManagerOptions, makeOrderManager } from "../../src/orders/OrderManager.ts"
import { clientOrderIdFor } from "../../src/orders/OrderPrep.ts"
import { buildBook } from "../../src/orders/PositionBook.ts"
import { applyApproved, applyControl, applyOrder, initialRiskState, type RiskState } from "../../src/risk/RiskGate.ts"
import { candidate, orderFilled } from "../support/fixtures.ts"

const SYMBOLS = ["BTCUSDT", "ETHUSDT"] as const

type Outcome = "filled" | "failed-unsent" | "rejected" | "in-flight"

const orderSpec = fc.record({
  qty: fc.constantFrom(0.1, 0.25, 0.5),
  price: fc.integer({ min: 90, max: 110 }),
  fee: fc.constantFrom("none", "quote", "base"),
  retried: fc.boolean(),
  uncertain: fc.boolean(),
  outcome: fc.constantFrom<Outcome>("filled", "filled", "filled", "failed-unsent", "rejected", "in-flight")
})

/** One symbol's history: open/close round trips; an order that does not fill ends the history (as the gate would). */
const symbolHistory = (symbol: string, specs: ReadonlyArray<typeof orderSpec extends fc.Arbitrary<infer T> ? T : never>, t0: number) => {
  const approvals: Array<Approved> = []
  const events: Array<OrderEvent> = []
  let ts = t0
  for (let i = 0; i < specs.length; i++) {
    const s = specs[i]
    const side = i % 2 === 0 ? "BUY" : "SELL"
    const c = candidate(symbol, side === "BUY" ? "LONG" : "SHORT", i + 1, s.price)
    const action = side === "BUY" ? "OPEN" : "CLOSE"
    approvals.push({ _tag: "Approved", id: c.id, candidate: c, action, orderSide: side, qty: s.qty, ts: (ts += 10), origin: c.origin })
    const ref = { signalId: c.id, clientOrderId: clientOrderIdFor(c.id), symbol, side, action, qty: s.qty, origin: c.origin } as const
    events.push({ _tag: "OrderSubmitted", ...ref, ts: (ts += 1), signedAt: ts, recvWindowMs: 5000 })
    if (s.retried) events.push({ _tag: "OrderAttempt", ...ref, ts: (ts += 1), signedAt: ts, recvWindowMs: 5000, attempt: 2 })
    if (s.uncertain) events.push({ _tag: "OrderUncertain", ...ref, ts: (ts += 1), reason: "timeout" })
    if (s.outcome === "in-flight") break
    if (s.outcome === "failed-unsent") {
      events.push({ _tag: "OrderFailed", ...ref, ts: (ts += 1), code: 0, reason: "not sent: ECONNREFUSED", reachedExchange: false })
      break
    }
    if (s.outcome === "rejected") {
      events.push({ _tag: "OrderRejected", ...ref, ts: (ts += 1), code: -2010, reason: "insufficient balance" })
      break
    }
    const base = symbol.replace("USDT", "")
    events.push(orderFilled({
      ...ref,
      price: s.price,
      ts: (ts += 1),
      orderId: 1000 * (i + 1) + symbol.length,
      commission: s.fee === "none" ? 0 : s.fee === "quote" ? s.qty * s.price * 0.001 : s.qty * 0.001,
      commissionAsset: s.fee === "base" ? base : "USDT",
      withFills: s.fee === "base"
    }))
  }
  return { approvals, events }
}

const histories = fc.record({
  btc: fc.array(orderSpec, { maxLength: 6 }),
  eth: fc.array(orderSpec, { maxLength: 6 })
}).map(({ btc, eth }) => {
  const a = symbolHistory(SYMBOLS[0], btc, 1_000)
  const b = symbolHistory(SYMBOLS[1], eth, 5_000)
  return { streams: [a.events, b.events, a.approvals, b.approvals] as const }
})

/** Interleaves streams keeping each one's own order; `picks` says which stream goes next. */
const interleave = <A>(streams: ReadonlyArray<ReadonlyArray<A>>, picks: ReadonlyArray<number>): Array<A> => {
  const at = streams.map(() => 0)
  const out: Array<A> = []
  let p = 0
  const total = streams.reduce((n, s) => n + s.length, 0)
  while (out.length < total) {
    let k = (picks[p++ % Math.max(1, picks.length)] ?? 0) % streams.length
    while (at[k] >= streams[k].length) k = (k + 1) % streams.length
    out.push(streams[k][at[k]++])
  }
  return out
}

/** Every item twice: the copy `later[i]` positions after the original (a redelivery comes after what it repeats). */
const twice = <A>(items: ReadonlyArray<A>, later: ReadonlyArray<number>): Array<A> => {
  const keyed = items.flatMap((a, i) => [
    { key: i * 10, a },
    { key: (i + 1 + (later[i % Math.max(1, later.length)] ?? 0)) * 10 + 5, a }
  ])
  return keyed.sort((x, y) => x.key - y.key).map((x) => x.a)
}

const deliveries = fc.record({
  history: histories,
  picks: fc.array(fc.nat({ max: 3 }), { minLength: 1, maxLength: 40 }),
  later: fc.array(fc.nat({ max: 6 }), { minLength: 1, maxLength: 40 })
})

type Message = OrderEvent | Approved
const isOrder = (m: Message): m is OrderEvent => m._tag !== "Approved"

const bookOf = (events: ReadonlyArray<OrderEvent>) =>
  [...buildBook(events).entries()].sort(([a], [b]) => (a < b ? -1 : 1))

const riskOf = (messages: ReadonlyArray<Message>) => {
  const s: RiskState = initialRiskState()
  for (const m of messages) {
    if (m._tag === "Approved") applyApproved(s, m)
    else applyOrder(s, m)
  }
  const sorted = <K, V>(m: ReadonlyMap<K, V>) => [...m.entries()].sort(([a], [b]) => (String(a) < String(b) ? -1 : 1))
  return {
    positions: sorted(s.positions),
    pending: sorted(s.pending),
    pendingById: sorted(s.pendingById),
    opens: [...s.opens],
    finalized: [...s.finalized].sort(),
    neverSent: [...s.neverSent].sort()
  }
}

const viewOf = (events: ReadonlyArray<OrderEvent>) => {
  const v = makeView(0, [...SYMBOLS])
  for (const e of events) viewOrder(v, e)
  return {
    positions: [...v.positions.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
    fills: [...v.fills.entries()].sort(([a], [b]) => (a < b ? -1 : 1))
  }
}

describe("idempotent state: each event twice (and streams interleaved) ends as each event once", () => {
  it("position book (what replay and the risk gate build on)", () => {
    fc.assert(
      fc.property(deliveries, ({ history, picks, later }) => {
        const [btc, eth] = history.streams
        const once = bookOf([...btc, ...eth])
        assert.deepStrictEqual(bookOf(twice(interleave([btc, eth], picks), later)), once)
        assert.deepStrictEqual(bookOf(interleave([twice(btc, later), twice(eth, picks)], picks)), once)
      }),
      { numRuns: 300 }
    )
  })

  it("a duplicated fill does not double a position (the issue's case: CLOSE then asked for more than the balance)", () => {
    const origin = { tickId: "BTCUSDT:1", receivedAt: 0 }
    const buy = orderFilled({ signalId: "s1", clientOrderId: "at-s1", side: "BUY", action: "OPEN", qty: 0.1, price: 100, origin })
    const book = buildBook([buy, buy])
    assert.strictEqual(book.get("BTCUSDT")?.qty, 0.1)
    assert.strictEqual(book.get("BTCUSDT")?.trades, 1)
  })

  it("risk gate: approvals and order events in any interleaving, each twice", () => {
    fc.assert(
      fc.property(deliveries, ({ history, picks, later }) => {
        const [btc, eth, btcA, ethA] = history.streams
        // the canonical rebuild (RiskService): approvals, then order events
        const once = riskOf([...btcA, ...ethA, ...btc, ...eth])
        const streams: ReadonlyArray<ReadonlyArray<Message>> = [btc, eth, btcA, ethA]
        assert.deepStrictEqual(riskOf(twice(interleave(streams, picks), later)), once)
      }),
      { numRuns: 300 }
    )
  })

  it("risk gate: an open that never reached the exchange gives its trade-cap slot back", () => {
    const s = initialRiskState()
    const c = candidate("BTCUSDT", "LONG", 1)
    const a: Approved = { _tag: "Approved", id: c.id, candidate: c, action: "OPEN", orderSide: "BUY", qty: 0.1, ts: 10, origin: c.origin }
    const ref = { signalId: c.id, clientOrderId: clientOrderIdFor(c.id), symbol: "BTCUSDT", side: "BUY", action: "OPEN", qty: 0.1, ts: 11, origin: c.origin } as const
    applyApproved(s, a)
    assert.strictEqual(s.opens.length, 1)
    const failed: OrderEvent = { _tag: "OrderFailed", ...ref, code: 0, reason: "not sent: ECONNREFUSED", reachedExchange: false }
    applyOrder(s, failed)
    applyOrder(s, failed)
    applyApproved(s, a) // redelivered approval
    assert.strictEqual(s.opens.length, 0)
    assert.strictEqual(s.pending.size, 0)
    // one that reached the exchange and was refused still counts
    const c2 = candidate("BTCUSDT", "LONG", 2)
    applyApproved(s, { ...a, id: c2.id, candidate: c2 })
    applyOrder(s, { _tag: "OrderRejected", ...ref, signalId: c2.id, code: -2010, reason: "insufficient balance" })
    assert.strictEqual(s.opens.length, 1)
  })

  it("risk gate: a per-symbol pause holds that symbol only; a resume of all lifts it", () => {
    const s = initialRiskState()
    applyControl(s, { command: "pause", by: "order-manager", ts: 1, symbol: "BTCUSDT" })
    applyControl(s, { command: "pause", by: "order-manager", ts: 1, symbol: "BTCUSDT" })
    assert.isFalse(s.paused)
    assert.deepStrictEqual([...s.pausedSymbols], ["BTCUSDT"])
    applyControl(s, { command: "resume", by: "telegram", ts: 2 })
    assert.strictEqual(s.pausedSymbols.size, 0)
  })

  it("/status view", () => {
    fc.assert(
      fc.property(deliveries, ({ history, picks, later }) => {
        const [btc, eth] = history.streams
        const once = viewOf([...btc, ...eth])
        assert.deepStrictEqual(viewOf(twice(interleave([btc, eth], picks), later)), once)
      }),
      { numRuns: 200 }
    )
    const v = makeView(0, [...SYMBOLS])
    viewControl(v, { command: "pause", by: "order-manager", ts: 1, symbol: "BTCUSDT" })
    assert.isFalse(v.paused, "a symbol's pause is not a pause of everything")
  })

  it.effect("order manager rebuild", () =>
    Effect.gen(function*() {
      const samples = fc.sample(deliveries, { numRuns: 60, seed: 9 })
      for (const { history, picks, later } of samples) {
        const [btc, eth] = history.streams
        const snapshot = (events: ReadonlyArray<Message>) =>
          Effect.scoped(Effect.gen(function*() {
            const m = yield* makeOrderManager(defaultOrderManagerOptions([...SYMBOLS]))
            m.rebuild(events.filter(isOrder))
            const final = new Set(["filled", "rejected", "failed"])
            // the order of non-final events across a redelivery may differ; in flight is in flight
            return (yield* m.snapshot).map((r) => ({ ...r, status: final.has(r.status) ? r.status : "in flight" }))
          }))
        const once = yield* snapshot([...btc, ...eth])
        assert.deepStrictEqual(yield* snapshot(twice(interleave([btc, eth], picks), later)), once)
      }
    }).pipe(Effect.provide(Layer.merge(InMemoryBus.layerTest(), Layer.mock(Exchange, {})))))
})
