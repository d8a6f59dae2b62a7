/**
 * Telegram messages as HTML (parse_mode "HTML"). Pure: no I/O, no time, no Layer.
 *
 * Every dynamic text goes through `escapeHtml` (after `clip`), so an exchange error like
 * `Filter failure: <LOT_SIZE> & co` can never make Telegram answer "can't parse entities".
 * Only tags Telegram supports are produced (b, i, code). Messages never exceed `MAX_MESSAGE` characters:
 * lines are packed whole, and a single over-long line is cut by `truncateHtml`, which never splits a tag,
 * an entity or a surrogate pair and closes the tags it leaves open.
 */
import type { Alert, Approved, Candidate, Control, OrderEvent, Rejected } from "../domain/Messages.ts"
import type { Position } from "../orders/PositionBook.ts"

/** Telegram's limit for a message text (we count the HTML source, which is never shorter than the parsed text). */
export const MAX_MESSAGE = 4096

/** Longest dynamic text (an exchange error, an alert) shown in one line. */
export const MAX_FIELD = 300

export const escapeHtml = (text: string): string =>
  text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")

/** At most `max` code points of `text` (never half a surrogate pair), with "…" when cut. */
export const clip = (text: string, max = MAX_FIELD): string => {
  const points = Array.from(text)
  return points.length <= max ? text : points.slice(0, Math.max(0, max - 1)).join("") + "…"
}

/** Escaped, clipped dynamic text. */
export const txt = (text: string, max = MAX_FIELD): string => escapeHtml(clip(text, max))

/** A number without float noise: at most `decimals` decimals, trailing zeros trimmed. */
export const num = (n: number, decimals = 8): string => {
  if (!Number.isFinite(n)) return String(n)
  const fixed = n.toFixed(decimals)
  const trimmed = fixed.includes(".") ? fixed.replace(/\.?0+$/, "") : fixed
  return trimmed === "-0" ? "0" : trimmed
}

export const signed = (n: number, decimals = 4): string => (n > 0 ? `+${num(n, decimals)}` : num(n, decimals))

const QUOTES = ["FDUSD", "USDT", "USDC", "BUSD", "TUSD", "EUR", "TRY", "BTC", "ETH", "BNB"]
export const quoteAsset = (symbol: string): string | undefined =>
  QUOTES.find((q) => symbol.endsWith(q) && symbol.length > q.length)

const code = (text: string): string => `<code>${txt(text, 80)}</code>`

/** What a line is about: decides what survives when a burst overflows the buffer. */
export type Kind = "candidate" | "approved" | "rejected" | "order" | "fill" | "orderProblem" | "control" | "alert"

/** Higher survives longer. Candidates are the most frequent and the least actionable. */
export const priorityOf = (kind: Kind): number => {
  switch (kind) {
    case "candidate":
      return 0
    case "rejected":
      return 1
    case "approved":
    case "order":
      return 2
    case "fill":
      return 3
    case "control":
    case "orderProblem":
    case "alert":
      return 4
  }
}

const plural: Record<Kind, [string, string]> = {
  candidate: ["candidate", "candidates"],
  approved: ["approval", "approvals"],
  rejected: ["rejection", "rejections"],
  order: ["order update", "order updates"],
  fill: ["fill", "fills"],
  orderProblem: ["order problem", "order problems"],
  control: ["control change", "control changes"],
  alert: ["alert", "alerts"]
}

export const describeCount = (kind: Kind, n: number): string => `${n} ${plural[kind][n === 1 ? 0 : 1]}`

export const formatCandidate = (c: Candidate): string =>
  `🔔 <b>${c.side}</b> ${txt(c.symbol)} @ ${num(c.price)} · MA10 ${num(c.ma10, 4)} / MA30 ${num(c.ma30, 4)}` +
  (c.probability === undefined ? "" : ` · P(up) ${c.probability.toFixed(2)}`)

export const formatApproved = (a: Approved): string =>
  `✅ <b>Approved</b> ${a.action} ${a.orderSide} ${num(a.qty)} ${txt(a.candidate.symbol)} @ ${num(a.candidate.price)} · ${code(a.id)}`

export const formatRejected = (r: Rejected): string =>
  `🚫 <b>Rejected</b> ${r.candidate.side} ${txt(r.candidate.symbol)} @ ${num(r.candidate.price)}: ${r.reason} (${txt(r.detail)})`

const orderHead = (e: OrderEvent): string => `${e.side} ${num(e.qty)} ${txt(e.symbol)}`

/** `pnl`: realized PnL of this fill in the quote asset, when it closed (part of) a position. */
export const formatOrderEvent = (e: OrderEvent, pnl?: number): string => {
  switch (e._tag) {
    case "OrderSubmitted":
      return `📤 <b>Order sent</b> ${e.action} ${orderHead(e)} · ${code(e.clientOrderId)}`
    case "OrderAttempt":
      return `🔁 <b>Order resent</b> (attempt ${e.attempt}) ${e.action} ${orderHead(e)} · ${code(e.clientOrderId)}`
    case "OrderAccepted":
      return `📥 <b>Order accepted</b> ${orderHead(e)} · #${e.orderId} ${txt(e.status, 40)} · ${code(e.clientOrderId)}`
    case "OrderFilled": {
      const quote = quoteAsset(e.symbol)
      const pnlText = pnl === undefined ? "" : ` · PnL <b>${signed(pnl)}${quote === undefined ? "" : ` ${quote}`}</b>`
      return `💰 <b>Filled</b> ${e.action} ${e.side} ${num(e.executedQty)} ${txt(e.symbol)} @ ${num(e.avgPrice)} · #${e.orderId}${pnlText} · ${code(e.clientOrderId)}`
    }
    case "OrderRejected":
      return `❌ <b>Order rejected</b> ${orderHead(e)} · ${e.code}: ${txt(e.reason)} · ${code(e.clientOrderId)}`
    case "OrderUncertain":
      return `⚠️ <b>Order uncertain</b> ${orderHead(e)}: ${txt(e.reason)} · ${code(e.clientOrderId)}`
    case "OrderFailed":
      return `🛑 <b>Order failed</b> ${orderHead(e)} · ${e.code}: ${txt(e.reason)} · ${code(e.clientOrderId)}`
  }
}

export const orderKind = (e: OrderEvent): Kind =>
  e._tag === "OrderFilled"
    ? "fill"
    : e._tag === "OrderRejected" || e._tag === "OrderUncertain" || e._tag === "OrderFailed"
    ? "orderProblem"
    : "order"

export const formatAlert = (a: Alert): string =>
  `${a.level === "error" ? "🚨" : "⚠️"} <b>${a.level === "error" ? "Error" : "Warning"}</b> ${txt(a.source, 40)}: ${txt(a.message)}`

export const formatControl = (c: Control): string =>
  c.symbol !== undefined
    ? c.command === "pause"
      ? `⏸ <b>${txt(c.symbol)} paused</b> by ${txt(c.by, 60)}: its orders are held until /resume`
      : `▶️ <b>${txt(c.symbol)} resumed</b> by ${txt(c.by, 60)}`
    : c.command === "pause"
    ? `⏸ <b>Trading paused</b> by ${txt(c.by, 60)}: new candidates are rejected until /resume`
    : `▶️ <b>Trading resumed</b> by ${txt(c.by, 60)}`

/**
 * Cuts `html` to at most `max` characters without splitting a tag, an entity or a surrogate pair,
 * appending "…" and closing every tag left open.
 */
export const truncateHtml = (html: string, max = MAX_MESSAGE): string => {
  if (html.length <= max) return html
  const token = /<\/?([a-zA-Z][a-zA-Z0-9-]*)[^>]*>|&#?[a-zA-Z0-9]+;|[\s\S]/gu
  const open: Array<string> = []
  let out = ""
  const closers = () => open.map((t) => `</${t}>`).reverse().join("")
  for (const m of html.matchAll(token)) {
    const piece = m[0]
    const name = m[1]
    const isClose = piece.startsWith("</")
    const closeLen = closers().length
    // room for this piece, the ellipsis and the closers (a new open tag also needs its own closer)
    const extra = name !== undefined && !isClose ? name.length + 3 : 0
    if (out.length + piece.length + 1 + closeLen + extra > max) break
    out += piece
    if (name !== undefined) {
      if (isClose) {
        const i = open.lastIndexOf(name.toLowerCase())
        if (i >= 0) open.splice(i, 1)
      } else open.push(name.toLowerCase())
    }
  }
  return out + "…" + closers()
}

/** Plain text of our HTML (tags dropped, entities decoded): the fallback when Telegram refuses the markup. */
export const htmlToPlain = (html: string): string =>
  html
    .replace(/<[^>]*>/g, "")
    .replaceAll("&lt;", "<")
    .replaceAll("&gt;", ">")
    .replaceAll("&quot;", "\"")
    .replaceAll("&amp;", "&")

export interface BatchLine {
  readonly kind: Kind
  readonly html: string
}

/**
 * One coalesced batch → message texts, each at most `max` characters. Lines are kept whole and in order;
 * what the buffer had to leave out (`omitted`, by kind) is summarised as a last line "+N more: …".
 */
export const formatBatch = (
  lines: ReadonlyArray<BatchLine>,
  omitted: ReadonlyMap<Kind, number> = new Map(),
  max = MAX_MESSAGE
): Array<string> => {
  const texts = lines.map((l) => truncateHtml(l.html, max))
  const totalOmitted = [...omitted.values()].reduce((a, b) => a + b, 0)
  if (totalOmitted > 0) {
    const parts = [...omitted.entries()].filter(([, n]) => n > 0).map(([k, n]) => describeCount(k, n))
    texts.push(`<i>+${totalOmitted} more: ${parts.join(", ")} (burst summarised)</i>`)
  }
  const messages: Array<string> = []
  let current = ""
  for (const t of texts) {
    if (current.length === 0) current = t
    else if (current.length + 1 + t.length <= max) current += "\n" + t
    else {
      messages.push(current)
      current = t
    }
  }
  if (current.length > 0) messages.push(current)
  return messages
}

const pad = (n: number) => String(n).padStart(2, "0")

export const formatDuration = (ms: number): string => {
  const s = Math.max(0, Math.floor(ms / 1000))
  const d = Math.floor(s / 86_400)
  const h = Math.floor((s % 86_400) / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  return d > 0 ? `${d}d ${h}h ${pad(m)}m` : h > 0 ? `${h}h ${pad(m)}m ${pad(sec)}s` : `${m}m ${pad(sec)}s`
}

/** `HH:MM:SS` UTC of an epoch-ms time. */
export const clockTime = (ms: number): string => {
  const d = new Date(ms)
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`
}

export interface SignalSummary {
  readonly candidate: Candidate
  /** "approved", "rejected: Paused", … once the risk gate decided. */
  readonly outcome?: string
}

export interface StatusInput {
  readonly uptimeMs: number
  readonly symbols: ReadonlyArray<string>
  readonly paused: boolean
  readonly pausedBy?: string
  readonly positions: ReadonlyArray<Position>
  readonly lastSignals: ReadonlyArray<SignalSummary>
}

export const formatStatus = (s: StatusInput): string => {
  const lines: Array<string> = []
  lines.push(
    `<b>autotrader</b> · up ${formatDuration(s.uptimeMs)} · ${
      s.paused ? `⏸ <b>PAUSED</b>${s.pausedBy === undefined ? "" : ` by ${txt(s.pausedBy, 60)}`}` : "▶️ trading"
    }`
  )
  lines.push(`Symbols: ${s.symbols.map((x) => txt(x, 20)).join(", ") || "none"}`)
  const open = s.positions.filter((p) => p.qty > 0 || p.realizedPnl !== 0)
  lines.push("<b>Positions</b>")
  if (open.length === 0) lines.push("• none")
  for (const p of open.slice(0, 20)) {
    const quote = quoteAsset(p.symbol)
    const unit = quote === undefined ? "" : ` ${quote}`
    const held = p.qty > 0 ? `${num(p.qty)} @ ${num(p.avgEntry)}` : "flat"
    lines.push(`• ${txt(p.symbol, 20)} ${held} · realized ${signed(p.realizedPnl)}${unit} · ${p.trades} ${p.trades === 1 ? "trade" : "trades"}`)
  }
  lines.push("<b>Last signals</b>")
  if (s.lastSignals.length === 0) lines.push("• none yet")
  for (const sig of s.lastSignals) {
    const c = sig.candidate
    lines.push(`• ${clockTime(c.ts)} ${c.side} ${txt(c.symbol, 20)} @ ${num(c.price)}${sig.outcome === undefined ? "" : ` → ${txt(sig.outcome, 80)}`}`)
  }
  return truncateHtml(lines.join("\n"))
}

export const HELP = [
  "<b>autotrader bot</b>",
  "/status: uptime, symbols, positions, last signals, paused or not",
  "/pause: the risk gate stops approving new trades",
  "/resume: the risk gate approves again",
  "/help: this message"
].join("\n")
