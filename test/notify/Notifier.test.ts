/**
 * The notifier against a Bot API stand-in over real HTTP on loopback, over the in-memory bus.
 * Time is TestClock: coalescing windows, pacing and retry_after only pass when the test moves the clock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Metric } from "effect"
import { TestClock } from "effect/testing"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Alert, Approved, Candidate, Control, OrderEvent, Rejected } from "../../src/domain/Messages.ts"
import { Alerts, ControlTopic, OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected } from "../../src/domain/Topics.ts"
import { runNotifier } from "../../src/notify/Notifier.ts"
import { failedTotal, retriedTotal } from "../../src/notify/Outbox.ts"
import { makeRecorder, Telegram } from "../../src/notify/Telegram.ts"
import { runRisk } from "../../src/risk/RiskService.ts"
import { candidate } from "../support/fixtures.ts"
import { makeBotApiStandIn, refusedApiRoot } from "./BotApiStandIn.ts"
import { captureLogs, collect, startNotifier } from "./support.ts"

const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 1000, maxTradesPerHour: 1000 }

const cand: Candidate = { ...candidate("BTCUSDT", "LONG", 7, 43210.5), ma10: 43200.125, ma30: 43190 }
const approved: Approved = {
  _tag: "Approved",
  id: cand.id,
  candidate: cand,
  action: "OPEN",
  orderSide: "BUY",
  qty: 0.001,
  ts: 8,
  origin: cand.origin
}
const rejected: Rejected = {
  _tag: "Rejected",
  id: cand.id,
  candidate: cand,
  reason: "Paused",
  detail: "trading is paused by an operator",
  ts: 8,
  origin: cand.origin
}
const ref = (clientOrderId: string, side: "BUY" | "SELL", action: "OPEN" | "CLOSE") => ({
  signalId: cand.id,
  clientOrderId,
  symbol: "BTCUSDT",
  side,
  action,
  qty: 0.001,
  ts: 9,
  origin: cand.origin
})
const buyFill: OrderEvent = {
  _tag: "OrderFilled",
  ...ref("at-1", "BUY", "OPEN"),
  orderId: 42,
  status: "FILLED",
  executedQty: 0.001,
  avgPrice: 43210.5,
  quoteQty: 43.2105,
  commission: 0,
  commissionAsset: "USDT",
  fills: []
}
const sellFill: OrderEvent = {
  _tag: "OrderFilled",
  ...ref("at-2", "SELL", "CLOSE"),
  orderId: 43,
  status: "FILLED",
  executedQty: 0.001,
  avgPrice: 44210.5,
  quoteQty: 44.2105,
  commission: 0,
  commissionAsset: "USDT",
  fills: []
}
const exchangeError = `Filter failure: <LOT_SIZE> & "qty" < minQty`

type Case = { readonly name: string; readonly publish: Effect.Effect<void, unknown, Bus>; readonly text: string }

const cases: ReadonlyArray<Case> = [
  {
    name: "candidate",
    publish: Bus.use((bus) => bus.publish(SignalsCandidate, "BTCUSDT", cand)),
    text: "🔔 <b>LONG</b> BTCUSDT @ 43210.5 · MA10 43200.125 / MA30 43190"
  },
  {
    name: "approved",
    publish: Bus.use((bus) => bus.publish(SignalsApproved, "BTCUSDT", approved)),
    text: "✅ <b>Approved</b> OPEN BUY 0.001 BTCUSDT @ 43210.5 · <code>BTCUSDT-7-L</code>"
  },
  {
    name: "rejected",
    publish: Bus.use((bus) => bus.publish(SignalsRejected, "BTCUSDT", rejected)),
    text: "🚫 <b>Rejected</b> LONG BTCUSDT @ 43210.5: Paused (trading is paused by an operator)"
  },
  {
    name: "order submitted",
    publish: Bus.use((bus) => bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderSubmitted", ...ref("at-1", "BUY", "OPEN") })),
    text: "📤 <b>Order sent</b> OPEN BUY 0.001 BTCUSDT · <code>at-1</code>"
  },
  {
    name: "order accepted",
    publish: Bus.use((bus) =>
      bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderAccepted", ...ref("at-1", "BUY", "OPEN"), orderId: 42, status: "NEW" })
    ),
    text: "📥 <b>Order accepted</b> BUY 0.001 BTCUSDT · #42 NEW · <code>at-1</code>"
  },
  {
    name: "order filled (buy)",
    publish: Bus.use((bus) => bus.publish(OrdersEvents, "BTCUSDT", buyFill)),
    text: "💰 <b>Filled</b> OPEN BUY 0.001 BTCUSDT @ 43210.5 · #42 · <code>at-1</code>"
  },
  {
    name: "order filled (sell, with PnL)",
    publish: Bus.use((bus) => bus.publish(OrdersEvents, "BTCUSDT", sellFill)),
    text: "💰 <b>Filled</b> CLOSE SELL 0.001 BTCUSDT @ 44210.5 · #43 · PnL <b>+1 USDT</b> · <code>at-2</code>"
  },
  {
    name: "order rejected (exchange error with <, > and &)",
    publish: Bus.use((bus) =>
      bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderRejected", ...ref("at-3", "BUY", "OPEN"), code: -1013, reason: exchangeError })
    ),
    text: "❌ <b>Order rejected</b> BUY 0.001 BTCUSDT · -1013: Filter failure: &lt;LOT_SIZE&gt; &amp; \"qty\" &lt; minQty · <code>at-3</code>"
  },
  {
    name: "order uncertain",
    publish: Bus.use((bus) =>
      bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderUncertain", ...ref("at-4", "BUY", "OPEN"), reason: "timeout after 5000ms" })
    ),
    text: "⚠️ <b>Order uncertain</b> BUY 0.001 BTCUSDT: timeout after 5000ms · <code>at-4</code>"
  },
  {
    name: "order failed",
    publish: Bus.use((bus) =>
      bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderFailed", ...ref("at-5", "BUY", "OPEN"), code: -1013, reason: "symbol halted" })
    ),
    text: "🛑 <b>Order failed</b> BUY 0.001 BTCUSDT · -1013: symbol halted · <code>at-5</code>"
  },
  {
    name: "alert (error)",
    publish: Bus.use((bus) =>
      bus.publish(Alerts, "orders", { source: "orders", level: "error", message: "exchange said 503 <html>", ts: 10 } satisfies Alert)
    ),
    text: "🚨 <b>Error</b> orders: exchange said 503 &lt;html&gt;"
  },
  {
    name: "control (pause)",
    publish: Bus.use((bus) => bus.publish(ControlTopic, "control", { command: "pause", by: "order-manager", ts: 11 } satisfies Control)),
    text: "⏸ <b>Trading paused</b> by order-manager: new candidates are rejected until /resume"
  }
]

describe("Telegram notifier", () => {
  it.effect("each notification kind produces the expected sendMessage to every chat (chat id, text, HTML)", () =>
    Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      const events = yield* startNotifier(api.apiRoot, api.token, { chatIds: ["111", "-100222"], commands: false })
      let expected = 0
      for (const c of cases) {
        const queuedBefore = events.items.filter((e) => e._tag === "Queued").length
        yield* c.publish
        yield* events.waitForCount(queuedBefore + 2, (e) => e._tag === "Queued")
        // one coalescing window; a group chat paces at 3 s
        yield* TestClock.adjust("3 seconds")
        expected += 2
        const sends = yield* api.sends.waitForCount(expected)
        const last = sends.slice(-2)
        assert.deepStrictEqual(
          last.map((s) => s.chatId).sort(),
          [-100222, 111],
          `${c.name}: one message per chat, chat ids sent as integers`
        )
        for (const s of last) {
          assert.strictEqual(s.text, c.text, c.name)
          assert.strictEqual(s.parseMode, "HTML", c.name)
        }
      }
      // the exchange error reached the chat intact, as a user reads it
      const delivered = api.sends.items.find((s) => s.text.includes("Order rejected"))!
      assert.include(delivered.parsedText, `-1013: ${exchangeError}`)
      // every call was a real Bot API call on the real path
      assert.isTrue(api.calls.items.every((c) => c.method === "sendMessage" && c.status === 200))
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("a burst within the window becomes one message; overflow is summarised, never silently dropped", () =>
    Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      const events = yield* startNotifier(api.apiRoot, api.token, { chatIds: ["111"], commands: false, maxBuffered: 30 })
      const bus = yield* Bus
      // 25 candidates "in the same second": one message with 25 lines
      for (let i = 1; i <= 25; i++) yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "LONG", i, 100 + i))
      yield* events.waitForCount(25, (e) => e._tag === "Queued")
      yield* TestClock.adjust("1 second")
      const [first] = yield* api.sends.waitForCount(1)
      assert.strictEqual(first.text.split("\n").length, 25)
      assert.include(first.text, "@ 101 ·")
      assert.include(first.text, "@ 125 ·")

      // 100 more candidates and one alert: 30 lines kept (the alert among them), the rest counted
      for (let i = 26; i <= 125; i++) yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "LONG", i, 100 + i))
      yield* bus.publish(Alerts, "orders", { source: "orders", level: "error", message: "boom", ts: 1 })
      yield* events.waitForCount(25 + 101, (e) => e._tag === "Queued")
      yield* TestClock.adjust("1 second")
      const sends = yield* api.sends.waitForCount(2)
      const second = sends[1]
      const lines = second.text.split("\n")
      assert.strictEqual(lines.length, 31)
      assert.include(second.text, "🚨 <b>Error</b> orders: boom")
      assert.strictEqual(lines[30], "<i>+71 more: 71 candidates (burst summarised)</i>")
      assert.strictEqual(api.sends.items.length, 2)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("long exchange errors are clipped; no message exceeds 4096 characters or breaks an entity", () =>
    Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      const events = yield* startNotifier(api.apiRoot, api.token, { chatIds: ["111"], commands: false, maxBuffered: 100 })
      const bus = yield* Bus
      const huge = "<&>".repeat(3000)
      for (let i = 0; i < 40; i++) {
        yield* bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderRejected", ...ref(`at-x${i}`, "BUY", "OPEN"), code: -1, reason: huge })
      }
      yield* events.waitForCount(40, (e) => e._tag === "Queued")
      yield* TestClock.adjust("1 second")
      yield* api.sends.waitForCount(1)
      // 40 lines of ~1.9k characters: several messages, paced one per second
      for (let k = 0; k < 40; k++) yield* TestClock.adjust("1 second")
      const sends = yield* api.sends.waitForCount(1, (s) => s.text.includes("at-x39"))
      assert.isTrue(api.calls.items.every((c) => c.status === 200), "Telegram accepted every message")
      for (const s of api.sends.items) assert.isAtMost(s.text.length, 4096)
      assert.isAbove(sends.length, 0)
      assert.strictEqual(api.sends.items.map((s) => s.text.split("\n").length).reduce((a, b) => a + b, 0), 40)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("429 retry_after: delivered after the wait and not before, while the risk gate keeps approving", () =>
    Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      api.rateLimitNext("sendMessage", 1, 5)
      const approvals = yield* collect(SignalsApproved)
      yield* runRisk(limits).pipe(Effect.forkScoped)
      const events = yield* startNotifier(api.apiRoot, api.token, { chatIds: ["111"], commands: false })
      const bus = yield* Bus
      const retriedBefore = (yield* Metric.value(retriedTotal.pipe(Metric.withAttributes({ reason: "rate_limited" })))).count
      yield* bus.publish(OrdersEvents, "BTCUSDT", buyFill)
      yield* events.waitFor((e) => e._tag === "Queued")
      yield* TestClock.adjust("1 second")
      const limited = yield* events.waitFor((e) => e._tag === "RateLimited")
      assert.strictEqual(limited._tag === "RateLimited" && limited.retryAfterMs, 5000)
      assert.strictEqual(api.sends.items.length, 0)

      // meanwhile orders flow: a candidate is approved while the notifier waits out the rate limit
      yield* bus.publish(SignalsCandidate, "ETHUSDT", candidate("ETHUSDT", "LONG", 1, 2000))
      const a = yield* approvals.waitFor((x) => x.id === "ETHUSDT-1-L")
      assert.strictEqual(a.action, "OPEN")

      yield* TestClock.adjust("4999 millis")
      for (let i = 0; i < 50; i++) yield* Effect.yieldNow
      assert.strictEqual(api.sends.items.length, 0, "nothing before retry_after has passed")
      assert.strictEqual(api.calls.items.length, 1, "no call at all while waiting")

      yield* TestClock.adjust("1 millis")
      const [sent] = yield* api.sends.waitForCount(1)
      assert.strictEqual(sent.text, "💰 <b>Filled</b> OPEN BUY 0.001 BTCUSDT @ 43210.5 · #42 · <code>at-1</code>")
      const receipt = yield* events.waitFor((e) => e._tag === "Sent")
      assert.strictEqual(receipt.at - limited.at, 5000, "sent exactly retry_after later (TestClock)")
      const retriedAfter = (yield* Metric.value(retriedTotal.pipe(Metric.withAttributes({ reason: "rate_limited" })))).count
      assert.strictEqual(retriedAfter - retriedBefore, 1)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  it.effect("runs on the in-memory Telegram test layer too (no HTTP)", () =>
    Effect.gen(function*() {
      const telegram = yield* makeRecorder()
      yield* runNotifier({ chatIds: ["111"], commands: false }).pipe(Effect.provide(Telegram.layerTest(telegram)), Effect.forkScoped)
      const bus = yield* Bus
      yield* bus.publish(Alerts, "orders", { source: "orders", level: "warning", message: "a & b", ts: 1 })
      for (let i = 0; i < 20 && (yield* telegram.sent).length === 0; i++) {
        yield* TestClock.adjust("100 millis")
      }
      assert.deepStrictEqual(yield* telegram.sent, [{ chatId: "111", text: "⚠️ <b>Warning</b> orders: a &amp; b", parseMode: "HTML" }])
    }).pipe(Effect.provide(InMemoryBus.layerTest())))

  const downCase = (mode: "refused" | "500" | "reset") =>
    it.effect(`Telegram down (${mode}): trading goes on, the bus is never held back, failures are logged and counted`, () => {
      const { layer, logs } = captureLogs()
      return Effect.gen(function*() {
        const api = yield* makeBotApiStandIn()
        if (mode === "500") api.setDown("500")
        if (mode === "reset") api.setDown("reset")
        const apiRoot = mode === "refused" ? yield* refusedApiRoot() : api.apiRoot
        const decisions = yield* collect(SignalsRejected)
        const approvals = yield* collect(SignalsApproved)
        yield* runRisk(limits).pipe(Effect.forkScoped)
        const events = yield* startNotifier(apiRoot, api.token, { chatIds: ["111"], maxAttempts: 2 })
        const bus = yield* Bus
        const failedBefore = (yield* Metric.value(failedTotal.pipe(Metric.withAttributes({ reason: "unavailable" })))).count
        // warm-up: the risk gate and the collectors are subscribed once these two are decided
        yield* bus.publish(SignalsCandidate, "ETHUSDT", candidate("ETHUSDT", "LONG", 1, 2000))
        yield* bus.publish(SignalsCandidate, "ETHUSDT", candidate("ETHUSDT", "SHORT", 2, 2000))
        yield* approvals.waitFor((a) => a.id === "ETHUSDT-1-L")
        yield* decisions.waitFor((r) => r.id === "ETHUSDT-2-S")
        // 60 candidates through a bus that holds 16 messages per topic: if the notifier did not commit
        // while Telegram is down, the risk gate's publishes (and then these) would block on back-pressure
        for (let i = 1; i <= 60; i++) yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "LONG", i, 100 + i))
        yield* approvals.waitFor((a) => a.id === "BTCUSDT-1-L")
        const rejected = yield* decisions.waitForCount(59, (r) => r.candidate.symbol === "BTCUSDT")
        assert.isTrue(rejected.every((r) => r.reason === "PositionPending"))

        yield* TestClock.adjust("1 second")
        yield* events.waitFor((e) => e._tag === "Retrying")
        yield* TestClock.adjust("1 second")
        const failed = yield* events.waitFor((e) => e._tag === "Failed")
        assert.strictEqual(failed._tag === "Failed" && failed.chatId, "111")
        yield* logs.waitFor((l) => l.message === "Telegram message not delivered" && l.level === "ERROR")
        const failedAfter = (yield* Metric.value(failedTotal.pipe(Metric.withAttributes({ reason: "unavailable" })))).count
        assert.strictEqual(failedAfter - failedBefore, 1)
        assert.strictEqual(api.sends.items.length, 0)
        // the notifier's groups are caught up: Telegram holds nothing back
        for (const [topic, group] of [[SignalsCandidate, "notify-signals.candidate"], [SignalsRejected, "notify-signals.rejected"]] as const) {
          assert.strictEqual(yield* bus.lag(topic, group), 0, group)
        }
        // the token never reaches a log line, whatever grammY put in its errors
        yield* logs.waitFor((l) => l.message.startsWith("Telegram getMe failed"))
        for (const l of logs.items) assert.notInclude(l.raw, api.token.split(":")[1])
      }).pipe(Effect.provide([InMemoryBus.layerTest({ capacity: 16 }), layer]))
    })
  downCase("refused")
  downCase("500")
  downCase("reset")
})

describe("Telegram notifier: at-least-once delivery", () => {
  it.effect("every message delivered twice is told once; a fill redelivered after a restart does not move /status twice", () =>
    Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      const events = yield* startNotifier(api.apiRoot, api.token, { chatIds: ["111"], commands: false })
      const bus = yield* Bus
      const distinct = [
        () => bus.publish(SignalsCandidate, "BTCUSDT", cand),
        () => bus.publish(SignalsApproved, "BTCUSDT", approved),
        () => bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderSubmitted", ...ref("at-1", "BUY", "OPEN") }),
        () => bus.publish(OrdersEvents, "BTCUSDT", buyFill),
        () => bus.publish(OrdersEvents, "BTCUSDT", sellFill),
        () => bus.publish(Alerts, "orders", { source: "orders", level: "error", message: "outcome unknown", ts: 10 }),
        () => bus.publish(ControlTopic, "control", { command: "pause", by: "order-manager", ts: 11, symbol: "BTCUSDT" })
      ]
      for (const publish of distinct) yield* publish()
      for (const publish of distinct) yield* publish() // the redelivery, after everything
      // a last, new message: once it is queued every duplicate before it on its topic has been handled
      yield* bus.publish(OrdersEvents, "BTCUSDT", { _tag: "OrderFailed", ...ref("at-9", "BUY", "OPEN"), code: 0, reason: "halted" })
      yield* events.waitForCount(distinct.length + 1, (e) => e._tag === "Queued")
      yield* TestClock.adjust("2 seconds")
      const [sent] = yield* api.sends.waitForCount(1)
      const lines = sent.text.split("\n")
      assert.strictEqual(lines.length, distinct.length + 1, sent.text)
      assert.strictEqual(lines.filter((l) => l.includes("Filled")).length, 2)
      assert.strictEqual(lines.filter((l) => l.includes("PnL")).length, 1)
      assert.strictEqual(events.items.filter((e) => e._tag === "Queued").length, distinct.length + 1)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))
})
