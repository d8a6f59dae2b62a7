/**
 * The notifier stage: tells operators on Telegram what the pipeline does, and takes their commands.
 *
 * It is its own consumer (groups `notify-<topic>`): it reads `signals.candidate`, `signals.approved`,
 * `signals.rejected`, `orders.events`, `control` and `alerts`, hands each message to the chats' outboxes
 * (which never wait) and commits at once. So a slow, failing or absent Telegram never holds back the bus, and
 * therefore never delays ingest, signals, risk or orders. Coalescing, pacing, 429s and retries live in `Outbox`.
 */
import { Clock, Config, Effect, Option, Redacted, Stream } from "effect"
import { Bus, commitBatch, replayThenLive } from "../bus/Bus.ts"
import { ConfigError } from "../domain/Errors.ts"
import { Alerts, ControlTopic, OrdersEvents, SignalsApproved, SignalsCandidate, SignalsRejected, type Topic } from "../domain/Topics.ts"
import type { StageRun } from "../runtime/Supervisor.ts"
import { runCommands } from "./Commands.ts"
import {
  type BatchLine,
  formatAlert,
  formatApproved,
  formatCandidate,
  formatControl,
  formatOrderEvent,
  formatRejected,
  orderKind
} from "./Format.ts"
import { intervalFor, makeOutbox, type NotifierEvent, type Outbox } from "./Outbox.ts"
import { applyControl, applyOrder, makeSeen, makeView, orderEventKey, recordCandidate, recordDecision } from "./StatusView.ts"
import { type ChatId, DEFAULT_API_ROOT, Telegram } from "./Telegram.ts"

export { type NotifierEvent } from "./Outbox.ts"

export const NOTIFY_GROUP = "notify"

export interface NotifierConfig {
  readonly token: Redacted.Redacted<string>
  readonly apiRoot: string
  /** Where notifications go (TELEGRAM_CHAT_ID). */
  readonly chatIds: ReadonlyArray<ChatId>
  /** Who may command the bot: the notification chats plus TELEGRAM_ALLOWED_CHAT_IDS. */
  readonly allowedChatIds: ReadonlyArray<ChatId>
  readonly coalesceMillis: number
}

const CHAT_ID = /^(-?\d+|@[A-Za-z][A-Za-z0-9_]{3,})$/

export const parseChatIds = (name: string, raw: string): Effect.Effect<ReadonlyArray<ChatId>, ConfigError> => {
  const ids = raw.split(",").map((s) => s.trim()).filter((s) => s.length > 0)
  const bad = ids.filter((s) => !CHAT_ID.test(s))
  if (bad.length > 0) {
    return Effect.fail(new ConfigError({ message: `${name} must be comma-separated chat ids like 12345,-1001234567890 (bad: ${bad.join(", ")})` }))
  }
  return Effect.succeed([...new Set(ids)])
}

/**
 * Telegram settings from env; `None` when TELEGRAM_BOT_TOKEN is unset or empty (the notifier is off).
 * With a token, TELEGRAM_CHAT_ID is required: a bot that cannot tell anyone anything is a mistake, said at start-up.
 */
export const notifierConfig = Effect.gen(function*() {
  const token = yield* Config.option(Config.Redacted("TELEGRAM_BOT_TOKEN"))
  if (Option.isNone(token) || Redacted.value(token.value).trim().length === 0) return Option.none<NotifierConfig>()
  const chatIds = yield* parseChatIds("TELEGRAM_CHAT_ID", yield* Config.String("TELEGRAM_CHAT_ID").pipe(Config.withDefault("")))
  if (chatIds.length === 0) {
    return yield* new ConfigError({ message: "TELEGRAM_CHAT_ID must list at least one chat id when TELEGRAM_BOT_TOKEN is set" })
  }
  const extra = yield* parseChatIds(
    "TELEGRAM_ALLOWED_CHAT_IDS",
    yield* Config.String("TELEGRAM_ALLOWED_CHAT_IDS").pipe(Config.withDefault(""))
  )
  const apiRoot = (yield* Config.String("TELEGRAM_API_ROOT").pipe(Config.withDefault(DEFAULT_API_ROOT))).trim().replace(/\/+$/, "")
  const coalesceMillis = yield* Config.Int("TELEGRAM_COALESCE_MS").pipe(Config.withDefault(1000))
  return Option.some<NotifierConfig>({
    token: Redacted.make(Redacted.value(token.value).trim()),
    apiRoot,
    chatIds,
    allowedChatIds: [...new Set([...chatIds, ...extra])],
    coalesceMillis
  })
})

export interface NotifierOptions {
  readonly chatIds: ReadonlyArray<ChatId>
  /** Default: `chatIds`. */
  readonly allowedChatIds?: ReadonlyArray<ChatId>
  readonly symbols?: ReadonlyArray<string>
  /** Window from the first buffered line to its message (default 1000). */
  readonly coalesceMillis?: number
  /** Lines one coalesced message may carry before the rest is summarised (default 30). */
  readonly maxBuffered?: number
  readonly privateIntervalMillis?: number
  readonly groupIntervalMillis?: number
  readonly maxAttempts?: number
  readonly maxRateLimitWaits?: number
  /** Long-poll for commands (default true). */
  readonly commands?: boolean
  readonly pollTimeoutSeconds?: number
  /** Where a new consumer group starts (default "earliest", the bus default: nothing is lost). */
  readonly start?: "earliest" | "latest"
  /** Receipts of what the notifier did, for tests and diagnostics. */
  readonly onEvent?: (event: NotifierEvent) => Effect.Effect<void>
}

export const runNotifier = (options: NotifierOptions) =>
  Effect.scoped(
    Effect.gen(function*() {
      const bus = yield* Bus
      const onEvent = options.onEvent ?? (() => Effect.void)
      const startedAt = yield* Clock.currentTimeMillis
      const view = makeView(startedAt, options.symbols ?? [])
      const orders = yield* replayThenLive(OrdersEvents, `${NOTIFY_GROUP}-view`)
      const control = yield* replayThenLive(ControlTopic, `${NOTIFY_GROUP}-view`)
      for (const e of orders.history) applyOrder(view, e)
      for (const c of control.history) applyControl(view, c)

      const outboxes = new Map<ChatId, Outbox>()
      for (const chatId of [...options.chatIds, ...(options.allowedChatIds ?? [])]) {
        if (outboxes.has(chatId)) continue
        outboxes.set(
          chatId,
          makeOutbox(chatId, {
            coalesceMillis: options.coalesceMillis ?? 1000,
            maxBuffered: options.maxBuffered ?? 30,
            intervalMillis: intervalFor(chatId, options.privateIntervalMillis, options.groupIntervalMillis),
            maxAttempts: options.maxAttempts ?? 4,
            maxRateLimitWaits: options.maxRateLimitWaits ?? 10,
            onEvent
          })
        )
      }
      const targets = options.chatIds.map((id) => outboxes.get(id)!)
      const notify = (line: BatchLine) => Effect.forEach(targets, (box) => box.push(line), { discard: true })
      // At-least-once delivery (a restart before the commit, a producer retry) must not tell the chat twice:
      // every message is keyed by its identity and told once.
      const seen = makeSeen()
      const once = (key: string, line: () => BatchLine) => Effect.suspend(() => (seen(key) ? notify(line()) : Effect.void))

      const consume = <A>(topic: Topic<A>, handle: (a: A) => Effect.Effect<void>) =>
        bus.subscribe(topic, { group: `${NOTIFY_GROUP}-${topic.name}`, start: options.start ?? "earliest", observer: true }).pipe(
          Stream.runForEachArray((deliveries) =>
            Effect.forEach(deliveries, (d) => handle(d.value), { discard: true }).pipe(Effect.andThen(commitBatch(deliveries)))
          )
        )

      const allowed = new Set(options.allowedChatIds ?? options.chatIds)
      yield* Effect.logInfo("Telegram notifier running", {
        chats: options.chatIds.length,
        allowedChats: allowed.size,
        commands: options.commands ?? true,
        positionsRebuiltFrom: orders.history.length,
        paused: view.paused
      })

      yield* Effect.all(
        [
          ...[...outboxes.values()].map((box) => box.run),
          // the view follows the whole history; fills are applied once whichever reader sees them first
          orders.live.pipe(Stream.runForEach((e) => Effect.sync(() => applyOrder(view, e)))),
          control.live.pipe(Stream.runForEach((c) => Effect.sync(() => applyControl(view, c)))),
          consume(SignalsCandidate, (c) =>
            Effect.suspend(() => {
              recordCandidate(view, c)
              return once(`candidate/${c.id}`, () => ({ kind: "candidate", html: formatCandidate(c) }))
            })),
          consume(SignalsApproved, (a) =>
            Effect.suspend(() => {
              recordDecision(view, a)
              return once(`approved/${a.id}`, () => ({ kind: "approved", html: formatApproved(a) }))
            })),
          consume(SignalsRejected, (r) =>
            Effect.suspend(() => {
              recordDecision(view, r)
              return once(`rejected/${r.id}`, () => ({ kind: "rejected", html: formatRejected(r) }))
            })),
          consume(OrdersEvents, (e) =>
            Effect.suspend(() => {
              const pnl = applyOrder(view, e)
              return once(`order/${orderEventKey(e)}`, () => ({ kind: orderKind(e), html: formatOrderEvent(e, pnl) }))
            })),
          consume(ControlTopic, (c) =>
            once(`control/${c.command}/${c.by}/${c.symbol ?? "*"}/${c.ts}`, () => ({ kind: "control", html: formatControl(c) }))),
          consume(Alerts, (a) => once(`alert/${a.source}/${a.ts}/${a.message}`, () => ({ kind: "alert", html: formatAlert(a) }))),
          ...(options.commands === false
            ? []
            : [
              runCommands({
                allowedChatIds: allowed,
                pollTimeoutSeconds: options.pollTimeoutSeconds ?? 25,
                view,
                outboxFor: (chatId) => outboxes.get(chatId),
                onEvent
              })
            ])
        ],
        { concurrency: "unbounded", discard: true }
      )
    })
  ).pipe(Effect.annotateLogs({ stage: "notifier" }))

/** `autotrader run`'s notifier stage: grammY against `config.apiRoot`, notifications to `config.chatIds`. */
export const notifierStage = (config: NotifierConfig, symbols: ReadonlyArray<string>): StageRun<Bus> => ({
  name: "notifier",
  run: runNotifier({
    chatIds: config.chatIds,
    allowedChatIds: config.allowedChatIds,
    symbols,
    coalesceMillis: config.coalesceMillis
  }).pipe(Effect.provide(Telegram.layer({ token: config.token, apiRoot: config.apiRoot })))
})
