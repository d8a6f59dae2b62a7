/**
 * One outbox per chat: where notifications wait, get coalesced, paced and retried.
 *
 * - `push` never waits: the bus consumers call it and commit at once, so Telegram never holds back the bus.
 * - Lines arriving within `coalesceMillis` of the first buffered one go out as one message.
 * - The buffer is bounded; on overflow the lowest-priority line (candidates first) is left out and counted,
 *   and the next message ends with "+N more: …", so nothing disappears silently.
 * - Pacing: at most one message per `intervalMillis` (Telegram: ~1/s per chat, 20/min per group).
 * - 429: waits `retry_after` (Clock) before the next call to this chat; other failures retry with backoff,
 *   then the message is given up, logged and counted. Markup Telegram refuses is resent as plain text.
 * All waiting is `Effect.sleep` against absolute deadlines taken from Clock, so TestClock drives it.
 */
import { Clock, Deferred, Duration, Effect, Exit, Metric, Result } from "effect"
import { type BatchLine, formatBatch, htmlToPlain, type Kind, priorityOf } from "./Format.ts"
import { type ChatId, describeTelegramError, Telegram, type TelegramError } from "./Telegram.ts"

export const sentTotal = Metric.counter("telegram_messages_sent_total", { description: "Telegram messages delivered" })
export const failedTotal = Metric.counter("telegram_messages_failed_total", {
  description: "Telegram messages given up after retries (Telegram down, chat refused, …)"
})
export const retriedTotal = Metric.counter("telegram_send_retries_total", {
  description: "sendMessage attempts repeated (reason: rate_limited | error | markup)"
})
export const omittedTotal = Metric.counter("telegram_notifications_summarised_total", {
  description: "Notifications left out of a burst and summarised as +N more"
})

export type NotifierEvent =
  | { readonly _tag: "Queued"; readonly chatId: ChatId; readonly kind: Kind; readonly at: number }
  | { readonly _tag: "Sent"; readonly chatId: ChatId; readonly text: string; readonly at: number }
  | { readonly _tag: "RateLimited"; readonly chatId: ChatId; readonly retryAfterMs: number; readonly at: number }
  | { readonly _tag: "Retrying"; readonly chatId: ChatId; readonly attempt: number; readonly error: string; readonly at: number }
  | { readonly _tag: "Failed"; readonly chatId: ChatId; readonly error: string; readonly at: number }
  | { readonly _tag: "Command"; readonly chatId: ChatId; readonly command: string; readonly accepted: boolean; readonly at: number }

export interface OutboxOptions {
  readonly coalesceMillis: number
  readonly maxBuffered: number
  readonly intervalMillis: number
  /** Attempts for a message when Telegram fails other than 429 (network, 5xx). */
  readonly maxAttempts: number
  /** 429 answers tolerated for one message before it is given up. */
  readonly maxRateLimitWaits: number
  readonly onEvent: (event: NotifierEvent) => Effect.Effect<void>
}

export interface Outbox {
  readonly chatId: ChatId
  /** Buffers a line for the next coalesced message. Never waits. */
  readonly push: (line: BatchLine) => Effect.Effect<void>
  /** A message of its own (a command reply), sent at the next pacing slot. Never waits. */
  readonly reply: (html: string) => Effect.Effect<void>
  /** The sender loop; runs until interrupted. */
  readonly run: Effect.Effect<never, never, Telegram>
}

/** Telegram's per-chat pace: groups and channels (negative ids, @names) 20/min, private chats 1/s. */
export const intervalFor = (chatId: ChatId, privateMillis = 1000, groupMillis = 3000): number =>
  /^\d+$/.test(chatId) ? privateMillis : groupMillis

const MAX_READY = 20

export const makeOutbox = (chatId: ChatId, options: OutboxOptions): Outbox => {
  let buffer: Array<BatchLine> = []
  let omitted = new Map<Kind, number>()
  const ready: Array<string> = []
  let firstAt = 0
  let nextAllowedAt = 0
  let wake = Deferred.makeUnsafe<void>()
  const signal = () => Deferred.doneUnsafe(wake, Exit.void)

  const omit = (kind: Kind) => omitted.set(kind, (omitted.get(kind) ?? 0) + 1)

  const push = (line: BatchLine) =>
    Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const wasEmpty = buffer.length === 0 && omitted.size === 0
      if (wasEmpty) firstAt = now
      if (buffer.length < options.maxBuffered) buffer.push(line)
      else {
        // leave out the oldest of the lowest priority, unless the newcomer is lower still
        let victim = -1
        for (let i = 0; i < buffer.length; i++) {
          if (victim < 0 || priorityOf(buffer[i].kind) < priorityOf(buffer[victim].kind)) victim = i
        }
        if (priorityOf(line.kind) > priorityOf(buffer[victim].kind)) {
          omit(buffer[victim].kind)
          buffer.splice(victim, 1)
          buffer.push(line)
        } else omit(line.kind)
        yield* Metric.update(omittedTotal, 1)
      }
      // only the first line of a batch wakes the sender; later ones just join the window
      if (wasEmpty) signal()
      yield* options.onEvent({ _tag: "Queued", chatId, kind: line.kind, at: now })
    })

  const reply = (html: string) =>
    Effect.gen(function*() {
      if (ready.length >= MAX_READY) {
        ready.shift()
        yield* Effect.logWarning("Telegram replies piling up; oldest dropped", { chatId })
      }
      ready.push(html)
      signal()
    })

  const event = (e: NotifierEvent) => options.onEvent(e)

  const giveUp = (e: TelegramError, attempts: number, now: number) =>
    Effect.gen(function*() {
      const error = describeTelegramError(e)
      nextAllowedAt = Math.max(nextAllowedAt, now + options.intervalMillis)
      const reason = e.code === 429 ? "rate_limited" : e.kind === "network" || (e.code ?? 0) >= 500 ? "unavailable" : "refused"
      yield* Metric.update(failedTotal.pipe(Metric.withAttributes({ reason })), 1)
      yield* Effect.logError("Telegram message not delivered", { chatId, attempts, error })
      yield* event({ _tag: "Failed", chatId, error, at: now })
    })

  const deliver = (telegram: Telegram["Service"], text: string) =>
    Effect.gen(function*() {
      let attempts = 0
      let rateLimited = 0
      let html = true
      while (true) {
        const result = yield* Effect.result(
          telegram.sendMessage(chatId, html ? text : htmlToPlain(text), { parseMode: html ? "HTML" : undefined })
        )
        const now = yield* Clock.currentTimeMillis
        if (Result.isSuccess(result)) {
          nextAllowedAt = now + options.intervalMillis
          yield* Metric.update(sentTotal, 1)
          return yield* event({ _tag: "Sent", chatId, text, at: now })
        }
        const e = result.failure
        if (e.code === 429) {
          rateLimited++
          const waitMs = Math.max(1, e.retryAfter ?? 1) * 1000
          nextAllowedAt = now + waitMs
          if (rateLimited > options.maxRateLimitWaits) return yield* giveUp(e, attempts + rateLimited, now)
          yield* Metric.update(retriedTotal.pipe(Metric.withAttributes({ reason: "rate_limited" })), 1)
          yield* Effect.logWarning("Telegram rate limit: waiting retry_after", { chatId, retryAfterSeconds: waitMs / 1000 })
          yield* event({ _tag: "RateLimited", chatId, retryAfterMs: waitMs, at: now })
          yield* Effect.sleep(Duration.millis(nextAllowedAt - now))
          continue
        }
        if (html && e.code === 400 && /entit|tag/i.test(e.description)) {
          // should not happen (everything is escaped); a plain copy beats a lost message
          html = false
          yield* Metric.update(retriedTotal.pipe(Metric.withAttributes({ reason: "markup" })), 1)
          yield* Effect.logWarning("Telegram refused the markup; resending as plain text", { chatId, error: e.description })
          continue
        }
        attempts++
        const retryable = e.kind === "network" || (e.code ?? 0) >= 500
        if (!retryable || attempts >= options.maxAttempts) return yield* giveUp(e, attempts, now)
        const backoff = Math.min(1000 * 2 ** (attempts - 1), 30_000)
        const error = describeTelegramError(e)
        nextAllowedAt = now + backoff
        yield* Metric.update(retriedTotal.pipe(Metric.withAttributes({ reason: "error" })), 1)
        yield* Effect.logWarning("Telegram send failed; retrying", { chatId, attempt: attempts, retryInMs: backoff, error })
        yield* event({ _tag: "Retrying", chatId, attempt: attempts, error, at: now })
        yield* Effect.sleep(Duration.millis(backoff))
      }
    })

  const run = Effect.gen(function*() {
    const telegram = yield* Telegram
    while (true) {
      // a fresh signal each round: whatever arrives after the checks below still wakes the wait
      wake = Deferred.makeUnsafe<void>()
      if (ready.length === 0 && buffer.length === 0 && omitted.size === 0) {
        yield* Deferred.await(wake)
        continue
      }
      const now = yield* Clock.currentTimeMillis
      if (ready.length === 0) {
        const due = Math.max(firstAt + options.coalesceMillis, nextAllowedAt)
        if (due > now) {
          // a reply must not wait for the coalescing window, so it cuts this wait short
          yield* Effect.raceFirst(Effect.sleep(Duration.millis(due - now)), Deferred.await(wake))
          continue
        }
        const lines = buffer
        const left = omitted
        buffer = []
        omitted = new Map()
        ready.push(...formatBatch(lines, left))
        continue
      }
      if (nextAllowedAt > now) {
        yield* Effect.sleep(Duration.millis(nextAllowedAt - now))
        continue
      }
      yield* deliver(telegram, ready.shift()!)
    }
  }).pipe(Effect.annotateLogs({ chatId })) as Effect.Effect<never, never, Telegram>

  return { chatId, push, reply, run }
}
