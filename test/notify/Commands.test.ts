/**
 * Operator commands through the Bot API stand-in (long polling over real HTTP) against the real risk gate.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import { ControlTopic, OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected } from "../../src/domain/Topics.ts"
import { runRisk } from "../../src/risk/RiskService.ts"
import { candidate, orderFilled } from "../support/fixtures.ts"
import { makeBotApiStandIn } from "./BotApiStandIn.ts"
import { captureLogs, collect, startNotifier } from "./support.ts"

const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 1000, maxTradesPerHour: 1000 }

describe("Telegram commands", () => {
  it.effect("/pause stops approvals, /resume restores them, a command from an unknown chat does nothing", () => {
    const { layer, logs } = captureLogs()
    return Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      const approvals = yield* collect(SignalsApproved)
      const rejections = yield* collect(SignalsRejected)
      const controls = yield* collect(ControlTopic)
      yield* runRisk(limits).pipe(Effect.forkScoped)
      const events = yield* startNotifier(api.apiRoot, api.token, { chatIds: ["111"], pollTimeoutSeconds: 1 })
      const bus = yield* Bus

      // trading approves before anything is said
      yield* bus.publish(SignalsCandidate, "BTCUSDT", candidate("BTCUSDT", "LONG", 1))
      yield* approvals.waitFor((a) => a.id === "BTCUSDT-1-L")

      // /pause from the allowed chat: a Control message on the bus, the gate rejects with "Paused"
      api.feed({ chatId: 111, text: "/pause", username: "alice" })
      const control = yield* controls.waitFor((c) => c.command === "pause")
      assert.strictEqual(control.by, "telegram:@alice")
      yield* logs.waitFor((l) => l.message === "approvals paused")
      yield* bus.publish(SignalsCandidate, "ETHUSDT", candidate("ETHUSDT", "LONG", 2))
      const paused = yield* rejections.waitFor((r) => r.id === "ETHUSDT-2-L")
      assert.strictEqual(paused.reason, "Paused")
      const reply = yield* api.sends.waitFor((s) => s.chatId === 111 && s.text.includes("Pause sent"))
      assert.strictEqual(reply.parseMode, "HTML")

      // /resume from a chat outside the allow-list: ignored (logged, no Control, no reply)
      api.feed({ chatId: 999, text: "/resume", username: "mallory" })
      const ignored = yield* events.waitFor((e) => e._tag === "Command" && e.chatId === "999")
      assert.isTrue(ignored._tag === "Command" && !ignored.accepted)
      const line = yield* logs.waitFor((l) => l.message === "Telegram command from a chat outside the allow-list ignored")
      assert.strictEqual(line.annotations.chatId ?? JSON.parse(line.raw).message[1].chatId, "999")
      yield* bus.publish(SignalsCandidate, "SOLUSDT", candidate("SOLUSDT", "LONG", 3))
      const stillPaused = yield* rejections.waitFor((r) => r.id === "SOLUSDT-3-L")
      assert.strictEqual(stillPaused.reason, "Paused")
      assert.strictEqual(controls.items.length, 1)

      // /resume@thisbot from the allowed chat: approvals again
      api.feed({ chatId: 111, text: "/resume@autotrader_test_bot", username: "alice" })
      yield* controls.waitFor((c) => c.command === "resume")
      yield* logs.waitFor((l) => l.message === "approvals resumed")
      yield* bus.publish(SignalsCandidate, "XRPUSDT", candidate("XRPUSDT", "LONG", 4))
      const approved = yield* approvals.waitFor((a) => a.id === "XRPUSDT-4-L")
      assert.strictEqual(approved.action, "OPEN")

      // the control changes reach the chat from the bus, paced; nothing ever went to chat 999
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
      yield* api.sends.waitFor((s) => s.text.includes("Trading paused</b> by telegram:@alice"))
      yield* api.sends.waitFor((s) => s.text.includes("Trading resumed</b> by telegram:@alice"))
      assert.isTrue(api.calls.items.every((c) => c.body.chat_id !== 999))
      // long polling per the Bot API: offset confirms what was handled, only messages are asked for
      const polls = api.calls.items.filter((c) => c.method === "getUpdates")
      assert.deepStrictEqual(polls[0].body.allowed_updates, ["message"])
      assert.strictEqual(polls[0].body.timeout, 1)
      assert.isTrue(polls.some((c) => Number(c.body.offset) > 1000))
      assert.isTrue(api.calls.items.some((c) => c.method === "getMe"))
    }).pipe(Effect.provide([InMemoryBus.layerTest(), layer]))
  })

  it.effect("/status shows uptime, symbols, positions, last signals and whether trading is paused; /help lists commands", () =>
    Effect.gen(function*() {
      const api = yield* makeBotApiStandIn()
      const bus = yield* Bus
      const fill = orderFilled({
        signalId: "BTCUSDT-1-L",
        clientOrderId: "at-1",
        side: "BUY",
        action: "OPEN",
        qty: 0.001,
        price: 43210.5,
        quoteQty: 43.2105,
        orderId: 42,
        ts: 1,
        origin: { tickId: "BTCUSDT:1", receivedAt: 1 }
      })
      // history before the notifier starts: positions are rebuilt from it
      yield* bus.publish(OrdersEvents, "BTCUSDT", fill)
      yield* bus.publish(ControlTopic, "control", { command: "pause", by: "order-manager", ts: 1 })
      const events = yield* startNotifier(api.apiRoot, api.token, {
        chatIds: ["111"],
        allowedChatIds: ["111", "222"],
        symbols: ["BTCUSDT", "ETHUSDT"],
        pollTimeoutSeconds: 1
      })
      yield* bus.publish(SignalsCandidate, "ETHUSDT", { ...candidate("ETHUSDT", "SHORT", 9, 2000.5), ts: 3_723_000 })
      yield* events.waitForCount(3, (e) => e._tag === "Queued")
      yield* TestClock.adjust("65 seconds")
      yield* api.sends.waitForCount(1)

      api.feed({ chatId: 222, text: "/status", username: "bob" })
      yield* events.waitFor((e) => e._tag === "Command" && e.command === "status")
      yield* TestClock.adjust("1 second")
      const status = yield* api.sends.waitFor((s) => s.chatId === 222)
      assert.strictEqual(
        status.text,
        [
          "<b>autotrader</b> · up 1m 05s · ⏸ <b>PAUSED</b> by order-manager",
          "Symbols: BTCUSDT, ETHUSDT",
          "<b>Positions</b>",
          "• BTCUSDT 0.001 @ 43210.5 · realized 0 USDT · 1 trade",
          "<b>Last signals</b>",
          "• 01:02:03 SHORT ETHUSDT @ 2000.5"
        ].join("\n")
      )

      api.feed({ chatId: 222, text: "/help", username: "bob" })
      yield* events.waitFor((e) => e._tag === "Command" && e.command === "help")
      yield* TestClock.adjust("1 second")
      const help = yield* api.sends.waitFor((s) => s.chatId === 222 && s.text.includes("/pause"))
      for (const c of ["/status", "/pause", "/resume", "/help"]) assert.include(help.parsedText, c)
    }).pipe(Effect.provide(InMemoryBus.layerTest())))
})
