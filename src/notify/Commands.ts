/**
 * Operator commands over long polling (`getUpdates` with offset/timeout/allowed_updates).
 * Only chats in the allow-list are answered; anything else is logged, counted and otherwise ignored.
 * /pause and /resume publish a `Control` message on the bus, so the risk gate obeys it wherever it runs;
 * the reply only says the request was sent (the "paused by …" notification follows from the bus itself).
 * Telegram failures never end the loop: it backs off (Clock) and polls again.
 */
import { Clock, Effect, Metric, Schedule } from "effect"
import { Bus } from "../bus/Bus.ts"
import { ControlTopic } from "../domain/Topics.ts"
import { formatStatus, HELP, txt } from "./Format.ts"
import type { NotifierEvent, Outbox } from "./Outbox.ts"
import { type StatusView, statusOf } from "./StatusView.ts"
import { type ChatId, describeTelegramError, Telegram, type TelegramError, type Update } from "./Telegram.ts"

export const commandsTotal = Metric.counter("telegram_commands_total", {
  description: "Bot commands received (outcome: handled | ignored)"
})
export const pollFailuresTotal = Metric.counter("telegram_poll_failures_total", {
  description: "getMe/getUpdates calls that failed (retried with backoff)"
})

export interface CommandsOptions {
  readonly allowedChatIds: ReadonlySet<ChatId>
  readonly pollTimeoutSeconds: number
  readonly view: StatusView
  /** Where a reply to `chatId` goes (paced and retried like any message). */
  readonly outboxFor: (chatId: ChatId) => Outbox | undefined
  readonly onEvent: (event: NotifierEvent) => Effect.Effect<void>
}

/** `/cmd` or `/cmd@ThisBot` at the start of a text; a command addressed to another bot is not ours. */
export const parseCommand = (text: string, botUsername: string): string | undefined => {
  const m = /^\/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]+))?(?=\s|$)/.exec(text.trim())
  if (m === null) return undefined
  if (m[2] !== undefined && m[2].toLowerCase() !== botUsername.toLowerCase()) return undefined
  return m[1].toLowerCase()
}

const backoff = Schedule.min([Schedule.exponential("1 second", 2), Schedule.spaced("30 seconds")]).pipe(Schedule.jittered)

const logFailure = (what: string) => (e: TelegramError) =>
  Effect.gen(function*() {
    yield* Metric.update(pollFailuresTotal.pipe(Metric.withAttributes({ method: e.method })), 1)
    yield* Effect.logWarning(`Telegram ${what} failed; retrying`, { error: describeTelegramError(e) })
  })

export const runCommands = (options: CommandsOptions) =>
  Effect.gen(function*() {
    const telegram = yield* Telegram
    const bus = yield* Bus
    const me = yield* telegram.getMe.pipe(Effect.tapError(logFailure("getMe")), Effect.retry(backoff))
    yield* Effect.logInfo("Telegram commands listening", { bot: me.username, allowedChats: [...options.allowedChatIds] })

    const reply = (chatId: ChatId, html: string) => {
      const box = options.outboxFor(chatId)
      return box === undefined ? Effect.void : box.reply(html)
    }

    const handle = (update: Update) =>
      Effect.gen(function*() {
        const message = update.message
        if (message?.text === undefined) return
        const command = parseCommand(message.text, me.username)
        if (command === undefined) return
        const chatId = String(message.chat.id)
        const from = message.from
        const by = from?.username !== undefined ? `telegram:@${from.username}` : `telegram:${from?.id ?? chatId}`
        const now = yield* Clock.currentTimeMillis
        if (!options.allowedChatIds.has(chatId)) {
          yield* Metric.update(commandsTotal.pipe(Metric.withAttributes({ command, outcome: "ignored" })), 1)
          yield* Effect.logWarning("Telegram command from a chat outside the allow-list ignored", { chatId, command, from: by })
          return yield* options.onEvent({ _tag: "Command", chatId, command, accepted: false, at: now })
        }
        yield* Metric.update(commandsTotal.pipe(Metric.withAttributes({ command, outcome: "handled" })), 1)
        yield* Effect.logInfo("Telegram command", { chatId, command, from: by })
        switch (command) {
          case "pause":
          case "resume": {
            const published = yield* Effect.result(bus.publish(ControlTopic, "control", { command, by, ts: now }))
            if (published._tag === "Failure") {
              yield* Effect.logError("could not publish control message", { command, error: published.failure.message })
              yield* reply(chatId, `❗ Could not ${command}: the bus is unavailable (${txt(published.failure.message, 200)}). Try again.`)
            } else {
              yield* reply(
                chatId,
                command === "pause"
                  ? "⏸ <b>Pause sent</b>: the risk gate rejects new candidates until /resume."
                  : "▶️ <b>Resume sent</b>: the risk gate approves candidates again."
              )
            }
            break
          }
          case "status":
            yield* reply(chatId, formatStatus(statusOf(options.view, now)))
            break
          case "help":
          case "start":
            yield* reply(chatId, HELP)
            break
          default:
            yield* reply(chatId, `Unknown command /${txt(command, 40)}.\n\n${HELP}`)
        }
        yield* options.onEvent({ _tag: "Command", chatId, command, accepted: true, at: now })
      })

    let offset = 0
    let webhookCleared = false
    while (true) {
      // real time, only to notice a server that ignores `timeout` and answers at once (then we pace ourselves)
      const asked = performance.now()
      const batch = yield* telegram.getUpdates({ offset, timeoutSeconds: options.pollTimeoutSeconds }).pipe(
        Effect.tapError((e) =>
          e.code === 409 && !webhookCleared
            ? // 409: a webhook is set (or another poller runs); long polling needs the webhook gone
              Effect.logWarning("getUpdates conflict; deleting the webhook", { error: describeTelegramError(e) }).pipe(
                Effect.andThen(telegram.deleteWebhook.pipe(Effect.ignore)),
                Effect.andThen(Effect.sync(() => {
                  webhookCleared = true
                }))
              )
            : logFailure("getUpdates")(e)
        ),
        Effect.retry(backoff)
      )
      if (batch.nextOffset !== undefined) offset = Math.max(offset, batch.nextOffset)
      if (batch.undecodable > 0) yield* Effect.logWarning("Telegram updates that did not decode skipped", { count: batch.undecodable })
      for (const update of batch.updates) yield* handle(update)
      if (batch.updates.length === 0 && options.pollTimeoutSeconds > 0 && performance.now() - asked < 100) {
        yield* Effect.sleep("1 second")
      }
    }
  }).pipe(Effect.annotateLogs({ component: "telegram-commands" }))
