/**
 * The Telegram Bot API as a service: the few methods the notifier and the commands use.
 *
 * Owns: the HTTP calls (grammY's `Api`, `POST {apiRoot}/bot{token}/{method}` with JSON), decoding updates at
 * the boundary, and turning every failure into a `TelegramError` whose text never contains the token.
 * Does not own: retries, pacing, rate limits (the notifier decides), nor what to send.
 */
import { Bot, GrammyError, HttpError } from "grammy"
import { Context, Effect, Exit, Layer, Redacted, Ref, Schema } from "effect"

export class TelegramError extends Schema.TaggedError<TelegramError>()("TelegramError", {
  method: Schema.String,
  /** "api": Telegram answered `ok: false`; "network": no usable answer (refused, reset, timeout, not JSON). */
  kind: Schema.Literals(["api", "network"]),
  code: Schema.optional(Schema.Number),
  /** Token-free description. */
  description: Schema.String,
  /** Seconds to wait before the next call (429 `parameters.retry_after`). */
  retryAfter: Schema.optional(Schema.Number)
}) {}

/** One line for logs: method, code, token-free description. */
export const describeTelegramError = (e: TelegramError): string =>
  `${e.method} failed${e.code === undefined ? "" : ` (${e.code})`}: ${e.description}`

/** A chat id as configured: a number (users, groups: -100…) or an "@channel" name. */
export type ChatId = string

/** What the Bot API expects in `chat_id`: Integer when numeric, String otherwise. */
export const apiChatId = (id: ChatId): number | string => (/^-?\d+$/.test(id) ? Number(id) : id)

// only what commands need is required, so a lean (self-hosted or stand-in) server's updates still decode
const UpdateSchema = Schema.Struct({
  update_id: Schema.Int,
  message: Schema.optional(
    Schema.Struct({
      message_id: Schema.optional(Schema.Int),
      date: Schema.optional(Schema.Number),
      chat: Schema.Struct({ id: Schema.Number, type: Schema.optional(Schema.String) }),
      from: Schema.optional(Schema.Struct({ id: Schema.Number, username: Schema.optional(Schema.String) })),
      text: Schema.optional(Schema.String)
    })
  )
})
export type Update = typeof UpdateSchema.Type
const decodeUpdate = Schema.decodeUnknownExit(UpdateSchema)

export interface BotIdentity {
  readonly id: number
  readonly username: string
}

export interface SendOptions {
  /** "HTML" (default) or none for plain text. */
  readonly parseMode?: "HTML" | undefined
}

export interface TelegramShape {
  readonly getMe: Effect.Effect<BotIdentity, TelegramError>
  /** Needed once if a webhook was set: long polling answers 409 while one is. */
  readonly deleteWebhook: Effect.Effect<void, TelegramError>
  readonly sendMessage: (chatId: ChatId, text: string, options?: SendOptions) => Effect.Effect<{ readonly messageId: number }, TelegramError>
  /** Long poll; updates that do not decode are dropped (their ids still count for the offset). */
  readonly getUpdates: (params: { readonly offset: number; readonly timeoutSeconds: number }) => Effect.Effect<
    { readonly updates: ReadonlyArray<Update>; readonly nextOffset: number | undefined; readonly undecodable: number },
    TelegramError
  >
}

export class Telegram extends Context.Service<Telegram, TelegramShape>()("autotrader/notify/Telegram") {
  /** grammY's `Api` against `apiRoot` (Telegram's, or a self-hosted Bot API server). */
  static readonly layer = (config: TelegramClientConfig) => Layer.sync(Telegram, () => makeGrammy(config))

  /** In memory: records sends, answers getUpdates from `pushUpdate`. For tests that need no HTTP. */
  static readonly layerTest = (recorder: TelegramRecorder) => Layer.succeed(Telegram, recorder.service)
}

export interface TelegramClientConfig {
  readonly token: Redacted.Redacted<string>
  /** Without trailing slash, e.g. https://api.telegram.org */
  readonly apiRoot: string
  /** Upper bound of one HTTP call (long polls included), seconds. */
  readonly timeoutSeconds?: number
}

export const DEFAULT_API_ROOT = "https://api.telegram.org"

/** Removes the token (and anything shaped like `bot<id>:<secret>`) from a text meant for logs or errors. */
export const scrubToken = (text: string, token?: string): string => {
  let out = token !== undefined && token.length > 0 ? text.replaceAll(token, "<redacted>") : text
  out = out.replace(/bot\d+:[A-Za-z0-9_-]+/g, "bot<redacted>")
  return out
}

const toTelegramError = (method: string, token: string) => (e: unknown): TelegramError => {
  if (e instanceof GrammyError) {
    const retryAfter = e.parameters.retry_after
    return new TelegramError({
      method,
      kind: "api",
      code: e.error_code,
      description: scrubToken(e.description, token),
      ...(retryAfter === undefined ? {} : { retryAfter })
    })
  }
  if (e instanceof HttpError) {
    const inner = e.error instanceof Error ? `: ${e.error.message}` : ""
    return new TelegramError({ method, kind: "network", description: scrubToken(`${e.message}${inner}`, token) })
  }
  return new TelegramError({ method, kind: "network", description: scrubToken(e instanceof Error ? e.message : String(e), token) })
}

const decodeUpdates = (raw: ReadonlyArray<unknown>) => {
  const updates: Array<Update> = []
  let nextOffset: number | undefined
  let undecodable = 0
  for (const r of raw) {
    const id = (r as { update_id?: unknown } | null)?.update_id
    if (typeof id === "number") nextOffset = Math.max(nextOffset ?? 0, id + 1)
    const decoded = decodeUpdate(r)
    if (Exit.isSuccess(decoded)) updates.push(decoded.value)
    else undecodable++
  }
  return { updates, nextOffset, undecodable }
}

export const makeGrammy = (config: TelegramClientConfig): TelegramShape => {
  const token = Redacted.value(config.token)
  const bot = new Bot(token, {
    client: { apiRoot: config.apiRoot.replace(/\/+$/, ""), timeoutSeconds: config.timeoutSeconds ?? 60 }
  })
  const api = bot.api
  // grammY types its signal with the abort-controller shim; at run time it only listens for "abort"
  type GrammySignal = NonNullable<Parameters<typeof api.getMe>[0]>
  const call = <A>(method: string, f: (signal: GrammySignal) => Promise<A>) =>
    Effect.tryPromise({ try: (signal) => f(signal as unknown as GrammySignal), catch: toTelegramError(method, token) })
  return Telegram.of({
    getMe: call("getMe", (signal) => api.getMe(signal)).pipe(
      Effect.map((me) => ({ id: me.id, username: me.username })),
      Effect.withSpan("Telegram.getMe")
    ),
    deleteWebhook: call("deleteWebhook", (signal) => api.deleteWebhook({}, signal)).pipe(
      Effect.asVoid,
      Effect.withSpan("Telegram.deleteWebhook")
    ),
    sendMessage: (chatId, text, options) =>
      call("sendMessage", (signal) =>
        api.sendMessage(apiChatId(chatId), text, (options?.parseMode ?? "HTML") === "HTML" ? { parse_mode: "HTML" as const } : {}, signal)
      ).pipe(
        Effect.map((m) => ({ messageId: m.message_id })),
        Effect.withSpan("Telegram.sendMessage")
      ),
    getUpdates: ({ offset, timeoutSeconds }) =>
      call("getUpdates", (signal) =>
        api.getUpdates({ offset, timeout: timeoutSeconds, allowed_updates: ["message"] }, signal)
      ).pipe(
        Effect.map((raw) => decodeUpdates(raw as ReadonlyArray<unknown>)),
        Effect.withSpan("Telegram.getUpdates")
      )
  })
}

export interface SentRecord {
  readonly chatId: ChatId
  readonly text: string
  readonly parseMode: "HTML" | undefined
}

export interface TelegramRecorder {
  readonly service: TelegramShape
  readonly sent: Effect.Effect<ReadonlyArray<SentRecord>>
  readonly pushUpdate: (update: Update) => Effect.Effect<void>
}

/** An in-memory Telegram: every send succeeds and is recorded; getUpdates returns what was pushed. */
export const makeRecorder = (username = "autotrader_test_bot"): Effect.Effect<TelegramRecorder> =>
  Effect.gen(function*() {
    const sent = yield* Ref.make<ReadonlyArray<SentRecord>>([])
    const updates = yield* Ref.make<ReadonlyArray<Update>>([])
    let messageId = 0
    const service = Telegram.of({
      getMe: Effect.succeed({ id: 1, username }),
      deleteWebhook: Effect.void,
      sendMessage: (chatId, text, options) =>
        Ref.update(sent, (xs) => [...xs, { chatId, text, parseMode: options?.parseMode ?? "HTML" }]).pipe(
          Effect.as({ messageId: ++messageId })
        ),
      getUpdates: ({ offset }) =>
        Ref.modify(updates, (xs) => {
          const ready = xs.filter((u) => u.update_id >= offset)
          return [ready, xs.filter((u) => u.update_id >= offset)] as const
        }).pipe(
          Effect.flatMap((ready) => (ready.length === 0 ? Effect.sleep("1 second").pipe(Effect.as(ready)) : Effect.succeed(ready))),
          Effect.map((ready) => ({
            updates: ready,
            nextOffset: ready.length === 0 ? undefined : Math.max(...ready.map((u) => u.update_id)) + 1,
            undecodable: 0
          }))
        )
    })
    return {
      service,
      sent: Ref.get(sent),
      pushUpdate: (update) => Ref.update(updates, (xs) => [...xs, update])
    }
  })
