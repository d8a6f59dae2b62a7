/**
 * A Telegram Bot API stand-in over real HTTP on loopback (port 0), written from core.telegram.org/bots/api:
 * `POST /bot<token>/<method>` with a JSON body, answers `{ok:true,result}` or `{ok:false,error_code,description,parameters}`.
 *
 * - sendMessage: validates HTML parse mode like Telegram (only its tags, `<`, `>` and `&` must be escaped,
 *   balanced tags, at most 4096 characters after entity parsing) and records the call with the parsed text;
 * - getUpdates: long polling over fed updates (`offset` confirms, `timeout` holds the request);
 * - getMe, deleteWebhook;
 * - faults: the next N calls of a method answer 429 with `retry_after` (or any error), or the whole API is
 *   down (HTTP 500, or the connection is reset).
 */
import { Effect } from "effect"
import type { Scope } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"

export interface SendCall {
  readonly chatId: number | string
  readonly text: string
  readonly parseMode: string | undefined
  /** The text as a Telegram user sees it (entities decoded, tags removed). */
  readonly parsedText: string
  readonly body: Record<string, unknown>
}

export interface CallRecord {
  readonly method: string
  readonly status: number
  readonly body: Record<string, unknown>
}

type Fault = { readonly status: number; readonly body: unknown }

/** Values that arrive over time; effects wait for a condition on them without timers. */
export class Recorder<A> {
  readonly items: Array<A> = []
  private waiters: Array<() => boolean> = []
  push(a: A): void {
    this.items.push(a)
    // a waiter resumed here may register the next one synchronously: it goes to the new list, not the one we filter
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) if (!w()) this.waiters.push(w)
  }
  /** Resolves with the first item (after `from`) matching `pred`. */
  waitFor(pred: (a: A) => boolean, from = 0): Effect.Effect<A> {
    return Effect.callback<A>((resume) => {
      const check = () => {
        const found = this.items.slice(from).find(pred)
        if (found === undefined) return false
        resume(Effect.succeed(found))
        return true
      }
      if (!check()) this.waiters.push(check)
      return Effect.sync(() => {
        this.waiters = this.waiters.filter((w) => w !== check)
      })
    })
  }
  /** Resolves once `n` items match `pred`. */
  waitForCount(n: number, pred: (a: A) => boolean = () => true): Effect.Effect<ReadonlyArray<A>> {
    return Effect.callback<ReadonlyArray<A>>((resume) => {
      const check = () => {
        const matching = this.items.filter(pred)
        if (matching.length < n) return false
        resume(Effect.succeed(matching))
        return true
      }
      if (!check()) this.waiters.push(check)
      return Effect.sync(() => {
        this.waiters = this.waiters.filter((w) => w !== check)
      })
    })
  }
}

const TAGS = new Set(["b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a", "tg-emoji", "code", "pre", "blockquote"])

/** Telegram's HTML parse mode, strictly: returns the plain text or the error Telegram would give. */
export const parseTelegramHtml = (html: string): { readonly ok: true; readonly plain: string } | { readonly ok: false; readonly error: string } => {
  const stack: Array<string> = []
  let plain = ""
  let i = 0
  while (i < html.length) {
    const ch = html[i]
    if (ch === "<") {
      const end = html.indexOf(">", i)
      if (end < 0) return { ok: false, error: `Can't find end of the tag starting at byte offset ${i}` }
      const inner = html.slice(i + 1, end)
      const m = /^(\/?)([a-zA-Z][a-zA-Z0-9-]*)(\s[^<]*)?$/.exec(inner)
      if (m === null) return { ok: false, error: `Unsupported start tag "${inner.slice(0, 20)}" at byte offset ${i}` }
      const name = m[2].toLowerCase()
      if (!TAGS.has(name)) return { ok: false, error: `Unsupported start tag "${name}" at byte offset ${i}` }
      if (m[1] === "/") {
        if (stack.pop() !== name) return { ok: false, error: `Can't find end tag corresponding to start tag "${name}"` }
      } else stack.push(name)
      i = end + 1
    } else if (ch === "&") {
      const m = /^&(lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);/.exec(html.slice(i, i + 12))
      if (m === null) return { ok: false, error: `Character '&' is reserved and must be escaped, at byte offset ${i}` }
      const e = m[1]
      plain += e === "lt" ? "<" : e === "gt" ? ">" : e === "amp" ? "&" : e === "quot" ? "\"" : String.fromCodePoint(
        e.startsWith("#x") ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)
      )
      i += m[0].length
    } else if (ch === ">") {
      return { ok: false, error: `Character '>' is reserved and must be escaped, at byte offset ${i}` }
    } else {
      plain += ch
      i++
    }
  }
  if (stack.length > 0) return { ok: false, error: `Can't find end tag corresponding to start tag "${stack[stack.length - 1]}"` }
  return { ok: true, plain }
}

export interface FedMessage {
  readonly chatId: number
  readonly text: string
  readonly fromId?: number
  readonly username?: string
  readonly chatType?: string
}

export interface BotApiStandIn {
  /** The `apiRoot` to give grammY (no trailing slash). */
  readonly apiRoot: string
  readonly token: string
  readonly username: string
  /** Accepted sendMessage calls. */
  readonly sends: Recorder<SendCall>
  /** Every call, answered or not (status 0: connection reset). */
  readonly calls: Recorder<CallRecord>
  /** The next `n` calls of `method` get `fault` instead of an answer. */
  readonly failNext: (method: string, n: number, fault: Fault) => void
  readonly rateLimitNext: (method: string, n: number, retryAfterSeconds: number) => void
  /** "500": every call answers HTTP 500; "reset": connections are destroyed; false: up. */
  readonly setDown: (mode: "500" | "reset" | false) => void
  /** Adds a message update for getUpdates; returns its update_id. */
  readonly feed: (message: FedMessage) => number
}

export const makeBotApiStandIn = (
  options: { readonly token?: string; readonly username?: string } = {}
): Effect.Effect<BotApiStandIn, never, Scope.Scope> =>
  Effect.gen(function*() {
    const token = options.token ?? "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw-secret"
    const username = options.username ?? "autotrader_test_bot"
    const sends = new Recorder<SendCall>()
    const calls = new Recorder<CallRecord>()
    const faults = new Map<string, Array<Fault>>()
    let down: "500" | "reset" | false = false
    const updates: Array<{ update_id: number; message: unknown }> = []
    let nextUpdateId = 1000
    let nextMessageId = 1
    let pollers: Array<() => void> = []

    const json = (res: ServerResponse, status: number, body: unknown) => {
      res.writeHead(status, { "content-type": "application/json" })
      res.end(JSON.stringify(body))
    }
    const error = (res: ServerResponse, code: number, description: string, parameters?: Record<string, unknown>) =>
      json(res, code, { ok: false, error_code: code, description, ...(parameters === undefined ? {} : { parameters }) })

    const readBody = (req: IncomingMessage): Promise<Record<string, unknown>> =>
      new Promise((resolve) => {
        const chunks: Array<Buffer> = []
        req.on("data", (c: Buffer) => chunks.push(c))
        req.on("end", () => {
          const raw = Buffer.concat(chunks).toString("utf8")
          const type = req.headers["content-type"] ?? ""
          try {
            if (raw.length === 0) resolve({})
            else if (type.includes("application/json")) resolve(JSON.parse(raw) as Record<string, unknown>)
            else resolve(Object.fromEntries(new URLSearchParams(raw)))
          } catch {
            resolve({})
          }
        })
      })

    const pending = (offset: number) => updates.filter((u) => u.update_id >= offset)

    const handle = async (req: IncomingMessage, res: ServerResponse) => {
      const url = new URL(req.url ?? "/", "http://localhost")
      const m = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec(url.pathname)
      const body = { ...Object.fromEntries(url.searchParams), ...(await readBody(req)) }
      const method = m?.[2] ?? ""
      if (down === "reset") {
        calls.push({ method, status: 0, body })
        req.socket.destroy()
        return
      }
      if (down === "500") {
        calls.push({ method, status: 500, body })
        return error(res, 500, "Internal Server Error")
      }
      if (m === null) {
        calls.push({ method, status: 404, body })
        return error(res, 404, "Not Found")
      }
      if (m[1] !== token) {
        calls.push({ method, status: 401, body })
        return error(res, 401, "Unauthorized")
      }
      const queued = faults.get(method.toLowerCase())
      const fault = queued?.shift()
      if (fault !== undefined) {
        calls.push({ method, status: fault.status, body })
        return json(res, fault.status, fault.body)
      }
      switch (method.toLowerCase()) {
        case "getme":
          calls.push({ method, status: 200, body })
          return json(res, 200, {
            ok: true,
            result: { id: 4242, is_bot: true, first_name: "Autotrader Test", username, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false }
          })
        case "deletewebhook":
          calls.push({ method, status: 200, body })
          return json(res, 200, { ok: true, result: true, description: "Webhook is already deleted" })
        case "sendmessage": {
          const chatId = body.chat_id as number | string | undefined
          const text = typeof body.text === "string" ? body.text : ""
          const parseMode = typeof body.parse_mode === "string" ? body.parse_mode : undefined
          if (chatId === undefined || chatId === "") {
            calls.push({ method, status: 400, body })
            return error(res, 400, "Bad Request: chat not found")
          }
          let plain = text
          if (parseMode !== undefined) {
            if (parseMode !== "HTML") {
              calls.push({ method, status: 400, body })
              return error(res, 400, `Bad Request: unsupported parse_mode in this stand-in: ${parseMode}`)
            }
            const parsed = parseTelegramHtml(text)
            if (!parsed.ok) {
              calls.push({ method, status: 400, body })
              return error(res, 400, `Bad Request: can't parse entities: ${parsed.error}`)
            }
            plain = parsed.plain
          }
          if (plain.trim().length === 0) {
            calls.push({ method, status: 400, body })
            return error(res, 400, "Bad Request: message text is empty")
          }
          if (Array.from(plain).length > 4096) {
            calls.push({ method, status: 400, body })
            return error(res, 400, "Bad Request: message is too long")
          }
          calls.push({ method, status: 200, body })
          sends.push({ chatId, text, parseMode, parsedText: plain, body })
          const id = Number(chatId)
          return json(res, 200, {
            ok: true,
            result: {
              message_id: nextMessageId++,
              date: Math.floor(Date.now() / 1000),
              chat: { id: Number.isFinite(id) ? id : 0, type: Number.isFinite(id) && id > 0 ? "private" : "group" },
              text: plain
            }
          })
        }
        case "getupdates": {
          const offset = Number(body.offset ?? 0)
          for (const u of updates.filter((u) => u.update_id < offset)) updates.splice(updates.indexOf(u), 1)
          const timeout = Math.max(0, Number(body.timeout ?? 0))
          const answer = () => {
            calls.push({ method, status: 200, body })
            json(res, 200, { ok: true, result: pending(offset) })
          }
          if (pending(offset).length > 0 || timeout === 0) return answer()
          let done = false
          const finish = () => {
            if (done) return
            done = true
            clearTimeout(timer)
            pollers = pollers.filter((p) => p !== wake)
            if (!res.writableEnded && !res.destroyed) answer()
          }
          const wake = () => {
            if (pending(offset).length > 0) finish()
          }
          const timer = setTimeout(finish, timeout * 1000)
          pollers.push(wake)
          res.on("close", () => {
            done = true
            clearTimeout(timer)
            pollers = pollers.filter((p) => p !== wake)
          })
          return
        }
        default:
          calls.push({ method, status: 404, body })
          return error(res, 404, "Not Found: method not found")
      }
    }

    const server = createServer((req, res) => {
      handle(req, res).catch(() => {
        if (!res.headersSent) error(res, 500, "Internal Server Error")
      })
    })
    const port = yield* Effect.acquireRelease(
      Effect.callback<number>((resume) => {
        server.listen(0, "127.0.0.1", () => resume(Effect.succeed((server.address() as AddressInfo).port)))
      }),
      () =>
        Effect.callback<void>((resume) => {
          for (const p of pollers) p()
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    )

    return {
      apiRoot: `http://127.0.0.1:${port}`,
      token,
      username,
      sends,
      calls,
      failNext: (method, n, fault) => {
        const list = faults.get(method.toLowerCase()) ?? []
        for (let k = 0; k < n; k++) list.push(fault)
        faults.set(method.toLowerCase(), list)
      },
      rateLimitNext: (method, n, retryAfterSeconds) => {
        const list = faults.get(method.toLowerCase()) ?? []
        for (let k = 0; k < n; k++) {
          list.push({
            status: 429,
            body: { ok: false, error_code: 429, description: `Too Many Requests: retry after ${retryAfterSeconds}`, parameters: { retry_after: retryAfterSeconds } }
          })
        }
        faults.set(method.toLowerCase(), list)
      },
      setDown: (mode) => {
        down = mode
      },
      feed: (message) => {
        const update_id = nextUpdateId++
        updates.push({
          update_id,
          message: {
            message_id: nextMessageId++,
            date: Math.floor(Date.now() / 1000),
            chat: { id: message.chatId, type: message.chatType ?? (message.chatId > 0 ? "private" : "group") },
            from: { id: message.fromId ?? message.chatId, is_bot: false, first_name: "Op", ...(message.username === undefined ? {} : { username: message.username }) },
            text: message.text,
            ...(message.text.startsWith("/") ? { entities: [{ type: "bot_command", offset: 0, length: message.text.split(/\s/)[0].length }] } : {})
          }
        })
        for (const p of [...pollers]) p()
        return update_id
      }
    }
  })

/** A loopback URL nothing listens on: connections are refused. */
export const refusedApiRoot = (): Effect.Effect<string> =>
  Effect.callback<string>((resume) => {
    const s = createServer()
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as AddressInfo).port
      s.close(() => resume(Effect.succeed(`http://127.0.0.1:${port}`)))
    })
  })
