import { assert, describe, it } from "@effect/vitest"
import { ConfigProvider, Effect, Exit, Option, Redacted } from "effect"
import { parseCommand } from "../../src/notify/Commands.ts"
import {
  clip,
  escapeHtml,
  formatBatch,
  formatDuration,
  formatOrderEvent,
  htmlToPlain,
  MAX_MESSAGE,
  num,
  truncateHtml
} from "../../src/notify/Format.ts"
import { notifierConfig, parseChatIds } from "../../src/notify/Notifier.ts"
import { apiChatId, scrubToken } from "../../src/notify/Telegram.ts"
import { parseTelegramHtml } from "./BotApiStandIn.ts"

const parses = (html: string) => {
  const r = parseTelegramHtml(html)
  assert.isTrue(r.ok, r.ok ? "" : `${r.error} in ${html.slice(0, 80)}`)
  return r.ok ? r.plain : ""
}

describe("Telegram formatting", () => {
  it("escapes <, > and & so any text survives HTML parse mode intact", () => {
    const raw = `Filter failure: <LOT_SIZE> & "qty" < 0.001 && <b>not bold</b> &amp;`
    assert.strictEqual(escapeHtml(raw), `Filter failure: &lt;LOT_SIZE&gt; &amp; "qty" &lt; 0.001 &amp;&amp; &lt;b&gt;not bold&lt;/b&gt; &amp;amp;`)
    assert.strictEqual(parses(escapeHtml(raw)), raw)
    assert.strictEqual(htmlToPlain(escapeHtml(raw)), raw)
  })

  it("order events with hostile exchange errors always parse", () => {
    const reasons = ["<", ">", "&", "a<b>c", "</code>", "&lt;", "<&>".repeat(500), "😀".repeat(400)]
    for (const reason of reasons) {
      const html = formatOrderEvent({
        _tag: "OrderRejected",
        signalId: "s",
        clientOrderId: "<cid&>",
        symbol: "BTCUSDT",
        side: "BUY",
        action: "OPEN",
        qty: 0.001,
        ts: 1,
        origin: { tickId: "BTCUSDT:1", receivedAt: 1 },
        code: -1013,
        reason
      })
      const plain = parses(html)
      assert.include(plain, "<cid&>")
      assert.isAtMost(html.length, 2000)
    }
  })

  it("clips by code points, never half an emoji", () => {
    const clipped = clip("😀".repeat(10), 5)
    assert.strictEqual(clipped, "😀😀😀😀…")
    assert.strictEqual(clip("short", 5), "short")
  })

  it("truncateHtml never cuts a tag or an entity and closes what it leaves open", () => {
    const html = `<b>${"&amp;&lt;x".repeat(200)}</b> <i>${"y".repeat(100)}</i> <code>${"😀".repeat(50)}</code>`
    for (let max = 10; max < html.length; max += 7) {
      const cut = truncateHtml(html, max)
      assert.isAtMost(cut.length, max, `max ${max}`)
      parses(cut)
    }
    assert.strictEqual(truncateHtml("<b>ok</b>", 100), "<b>ok</b>")
  })

  it("formatBatch packs whole lines into messages of at most 4096 characters and summarises what was left out", () => {
    const lines = Array.from({ length: 100 }, (_, i) => ({ kind: "candidate" as const, html: `<b>line ${i}</b> ${"x".repeat(90)}` }))
    const messages = formatBatch(lines, new Map([["candidate", 12], ["rejected", 1]]))
    assert.isAbove(messages.length, 1)
    for (const m of messages) {
      assert.isAtMost(m.length, MAX_MESSAGE)
      parses(m)
    }
    assert.strictEqual(messages.join("\n").split("\n").length, 101)
    assert.strictEqual(messages.at(-1)!.split("\n").at(-1), "<i>+13 more: 12 candidates, 1 rejection (burst summarised)</i>")
    // one over-long line is cut safely
    const [single] = formatBatch([{ kind: "alert", html: `<b>${"&amp;".repeat(2000)}</b>` }])
    assert.isAtMost(single.length, MAX_MESSAGE)
    parses(single)
  })

  it("numbers and durations", () => {
    assert.strictEqual(num(43210.5), "43210.5")
    assert.strictEqual(num(0.1 + 0.2), "0.3")
    assert.strictEqual(num(-0.000000001), "0")
    assert.strictEqual(formatDuration(65_000), "1m 05s")
    assert.strictEqual(formatDuration(3_723_000), "1h 02m 03s")
    assert.strictEqual(formatDuration(90_000_000), "1d 1h 00m")
  })
})

describe("Telegram protocol details", () => {
  it("commands: /cmd and /cmd@thisbot, not another bot's", () => {
    assert.strictEqual(parseCommand("/pause", "autotrader_bot"), "pause")
    assert.strictEqual(parseCommand("/Status@AutoTrader_Bot now", "autotrader_bot"), "status")
    assert.strictEqual(parseCommand("/pause@other_bot", "autotrader_bot"), undefined)
    assert.strictEqual(parseCommand("pause", "autotrader_bot"), undefined)
    assert.strictEqual(parseCommand("/pause-now", "autotrader_bot"), undefined)
  })

  it("chat ids: integers go out as numbers, @channels as strings", () => {
    assert.strictEqual(apiChatId("123"), 123)
    assert.strictEqual(apiChatId("-1001234567890"), -1001234567890)
    assert.strictEqual(apiChatId("@alerts_channel"), "@alerts_channel")
  })

  it("the token is scrubbed from any text", () => {
    const token = "123456:ABC-def_ghi"
    const msg = `request to http://127.0.0.1:9/bot${token}/sendMessage failed, reason: connect ECONNREFUSED`
    const scrubbed = scrubToken(msg, token)
    assert.notInclude(scrubbed, "ABC-def_ghi")
    assert.include(scrubbed, "bot<redacted>/sendMessage")
    assert.notInclude(scrubToken(`bot987:XYZ/getMe`), "XYZ")
  })

  it.effect("config: off without a token; chat ids required with one; allow-list widened; token redacted", () =>
    Effect.gen(function*() {
      const withEnv = (env: Record<string, string>) => Effect.provide(notifierConfig, ConfigProvider.layer(ConfigProvider.fromEnvRecord(env)))
      assert.isTrue(Option.isNone(yield* withEnv({})))
      assert.isTrue(Option.isNone(yield* withEnv({ TELEGRAM_BOT_TOKEN: "  " })))
      const missing = yield* Effect.exit(withEnv({ TELEGRAM_BOT_TOKEN: "1:x" }))
      assert.isTrue(Exit.isFailure(missing))
      const bad = yield* Effect.exit(withEnv({ TELEGRAM_BOT_TOKEN: "1:x", TELEGRAM_CHAT_ID: "12,abc" }))
      assert.isTrue(Exit.isFailure(bad))
      const config = yield* withEnv({
        TELEGRAM_BOT_TOKEN: "1:secret",
        TELEGRAM_CHAT_ID: "111, -100222",
        TELEGRAM_ALLOWED_CHAT_IDS: "333,111",
        TELEGRAM_API_ROOT: "http://127.0.0.1:8081/"
      }).pipe(Effect.flatMap(Effect.fromOption))
      assert.deepStrictEqual(config.chatIds, ["111", "-100222"])
      assert.deepStrictEqual(config.allowedChatIds, ["111", "-100222", "333"])
      assert.strictEqual(config.apiRoot, "http://127.0.0.1:8081")
      assert.strictEqual(Redacted.value(config.token), "1:secret")
      assert.notInclude(String(config.token), "secret")
      assert.notInclude(JSON.stringify(config), "secret")
      const defaults = yield* withEnv({ TELEGRAM_BOT_TOKEN: "1:secret", TELEGRAM_CHAT_ID: "@ops_channel" }).pipe(Effect.flatMap(Effect.fromOption))
      assert.strictEqual(defaults.apiRoot, "https://api.telegram.org")
      assert.deepStrictEqual(yield* parseChatIds("X", ""), [])
    }))
})
