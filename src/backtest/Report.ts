/**
 * The replay report: one self-contained HTML page (inline SVG, no scripts, no network) with, per symbol, the
 * price, MA10, MA30 and the entries/exits, then the equity curve and the summary. Series are downsampled while
 * recording (keep every k-th point, doubling k when full), so memory stays bounded however long the replay.
 */
import type { OrderFilled, Tick } from "../domain/Messages.ts"
import { featuresOf, type SignalState } from "../signals/SignalWorker.ts"
import type { ReplayObserver, ReplaySummary } from "./Replay.ts"
import { formatSummary } from "./Replay.ts"

class Sampled<P> {
  readonly points: Array<P> = []
  private stride = 1
  private seen = 0
  private readonly max: number
  constructor(max: number) {
    this.max = max
  }
  offer(make: () => P): void {
    if (this.seen++ % this.stride !== 0) return
    this.points.push(make())
    if (this.points.length >= 2 * this.max) {
      let j = 0
      for (let i = 0; i < this.points.length; i += 2) this.points[j++] = this.points[i]
      this.points.length = j
      this.stride *= 2
    }
  }
}

interface Marker {
  readonly ts: number
  readonly price: number
  readonly side: "BUY" | "SELL"
  readonly id: string
}

export const makeReportRecorder = (maxPoints = 1500) => {
  const prices = new Map<string, Sampled<readonly [number, number, number, number]>>()
  const equity = new Sampled<readonly [number, number]>(maxPoints)
  const markers = new Map<string, Array<Marker>>()

  const observer: ReplayObserver = {
    onTick: (tick: Tick, signal: SignalState, eq: number) => {
      let series = prices.get(tick.symbol)
      if (series === undefined) prices.set(tick.symbol, (series = new Sampled(maxPoints)))
      series.offer(() => {
        const f = featuresOf(signal, tick.symbol)
        return [tick.ts, tick.price, f?.ma10 ?? Number.NaN, f?.ma30 ?? Number.NaN] as const
      })
      equity.offer(() => [tick.ts, eq] as const)
    },
    onFill: (fill: OrderFilled) => {
      let list = markers.get(fill.symbol)
      if (list === undefined) markers.set(fill.symbol, (list = []))
      list.push({ ts: fill.ts, price: fill.avgPrice, side: fill.side, id: fill.signalId })
    }
  }

  const render = (summary: ReplaySummary, title = "autotrader replay"): string =>
    renderReport({ title, summary, prices, equity: equity.points, markers })

  return { observer, render }
}

const W = 960
const H = 300
const PAD = { l: 70, r: 16, t: 16, b: 28 }

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const fmt = (x: number): string => (Math.abs(x) >= 1000 ? x.toFixed(2) : Math.abs(x) >= 1 ? x.toFixed(4) : x.toPrecision(4))
const iso = (t: number): string => new Date(t).toISOString().replace("T", " ").slice(0, 19)

interface Scale {
  readonly x: (t: number) => number
  readonly y: (v: number) => number
  readonly t0: number
  readonly t1: number
  readonly v0: number
  readonly v1: number
}

const scaleOf = (ts: ReadonlyArray<number>, values: ReadonlyArray<number>): Scale => {
  const t0 = Math.min(...ts)
  const t1 = Math.max(...ts)
  let v0 = Number.POSITIVE_INFINITY
  let v1 = Number.NEGATIVE_INFINITY
  for (const v of values) {
    if (Number.isFinite(v)) {
      if (v < v0) v0 = v
      if (v > v1) v1 = v
    }
  }
  if (!Number.isFinite(v0)) (v0 = 0), (v1 = 1)
  if (v1 === v0) (v0 -= 1), (v1 += 1)
  const x = (t: number) => PAD.l + ((t - t0) / Math.max(1, t1 - t0)) * (W - PAD.l - PAD.r)
  const y = (v: number) => PAD.t + (1 - (v - v0) / (v1 - v0)) * (H - PAD.t - PAD.b)
  return { x, y, t0, t1, v0, v1 }
}

const polyline = (s: Scale, points: ReadonlyArray<readonly [number, number]>, color: string, width = 1.2): string => {
  const segments: Array<string> = []
  let current: Array<string> = []
  for (const [t, v] of points) {
    if (Number.isFinite(v)) current.push(`${s.x(t).toFixed(1)},${s.y(v).toFixed(1)}`)
    else if (current.length > 0) segments.push(current.join(" ")), (current = [])
  }
  if (current.length > 0) segments.push(current.join(" "))
  return segments.map((p) => `<polyline fill="none" stroke="${color}" stroke-width="${width}" points="${p}"/>`).join("")
}

const axes = (s: Scale): string =>
  `<rect x="${PAD.l}" y="${PAD.t}" width="${W - PAD.l - PAD.r}" height="${H - PAD.t - PAD.b}" fill="none" stroke="#ccc"/>` +
  `<text x="${PAD.l - 6}" y="${PAD.t + 10}" text-anchor="end">${fmt(s.v1)}</text>` +
  `<text x="${PAD.l - 6}" y="${H - PAD.b}" text-anchor="end">${fmt(s.v0)}</text>` +
  `<text x="${PAD.l}" y="${H - 8}">${iso(s.t0)}</text>` +
  `<text x="${W - PAD.r}" y="${H - 8}" text-anchor="end">${iso(s.t1)}</text>`

const legend = (items: ReadonlyArray<readonly [string, string]>): string =>
  `<p class="legend">${items.map(([c, l]) => `<span style="color:${c}">■</span> ${esc(l)}`).join(" &nbsp; ")}</p>`

export const renderReport = (input: {
  readonly title: string
  readonly summary: ReplaySummary
  readonly prices: ReadonlyMap<string, { readonly points: ReadonlyArray<readonly [number, number, number, number]> }>
  readonly equity: ReadonlyArray<readonly [number, number]>
  readonly markers: ReadonlyMap<string, ReadonlyArray<Marker>>
}): string => {
  const sections: Array<string> = []
  for (const [symbol, series] of [...input.prices].sort(([a], [b]) => a.localeCompare(b))) {
    const pts = series.points
    if (pts.length === 0) continue
    const marks = input.markers.get(symbol) ?? []
    const s = scaleOf(
      [...pts.map((p) => p[0]), ...marks.map((m) => m.ts)],
      [...pts.map((p) => p[1]), ...marks.map((m) => m.price)]
    )
    const markerSvg = marks
      .map((m) => {
        const x = s.x(m.ts)
        const y = s.y(m.price)
        const path = m.side === "BUY" ? `M${x},${y - 7} l6,11 h-12 z` : `M${x},${y + 7} l6,-11 h-12 z`
        return `<path d="${path}" fill="${m.side === "BUY" ? "#1a9850" : "#d73027"}"><title>${esc(`${m.side} ${m.id} @ ${fmt(m.price)} ${iso(m.ts)}`)}</title></path>`
      })
      .join("")
    sections.push(
      `<h2>${esc(symbol)}</h2>` +
        legend([["#888", "price"], ["#2166ac", "MA10"], ["#f46d43", "MA30"], ["#1a9850", "entry (BUY)"], ["#d73027", "exit (SELL)"]]) +
        `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(symbol)} price">${axes(s)}` +
        polyline(s, pts.map((p) => [p[0], p[1]] as const), "#888", 1) +
        polyline(s, pts.map((p) => [p[0], p[2]] as const), "#2166ac") +
        polyline(s, pts.map((p) => [p[0], p[3]] as const), "#f46d43") +
        markerSvg +
        "</svg>"
    )
  }
  if (input.equity.length > 0) {
    const s = scaleOf(input.equity.map((p) => p[0]), [0, ...input.equity.map((p) => p[1])])
    sections.push(
      "<h2>Equity (realized + open positions at the last price)</h2>" +
        `<svg viewBox="0 0 ${W} ${H}" role="img" aria-label="equity">${axes(s)}` +
        `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${s.y(0)}" y2="${s.y(0)}" stroke="#bbb" stroke-dasharray="4 3"/>` +
        polyline(s, input.equity, "#4d4d4d", 1.5) +
        "</svg>"
    )
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(input.title)}</title>
<style>
body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1000px}
svg{width:100%;height:auto;background:#fff;border:1px solid #eee}
svg text{font:11px system-ui,sans-serif;fill:#555}
pre{background:#f6f6f6;padding:12px}
.legend{margin:4px 0;color:#444}
</style></head><body>
<h1>${esc(input.title)}</h1>
<pre>${esc(formatSummary(input.summary))}</pre>
${sections.join("\n")}
</body></html>
`
}
