/**
 * The replay report: ONE self-contained HTML file (uPlot's min.js and css inlined, data as JSON, no network), for
 * a trader deciding something: the parameters and fill assumptions; the summary (% return vs buy-and-hold, Sharpe,
 * Sortino, Calmar, profit factor, expectancy, drawdown with its dates, exposure, fees vs gross PnL); per symbol;
 * every round trip; rejections by reason; the variants side by side (grid, model) and the walk-forward folds;
 * charts with gridlines and UTC time axes: price (min/max per pixel, re-downsampled on zoom) with both MAs and
 * clustered entry/exit markers, equity and drawdown, data gaps drawn as gaps.
 *
 * Recording costs O(1) per tick: prices are kept per time bucket (low, high), the MAs and equity once per bucket.
 */
import { readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import type { OrderFilled, Tick } from "../domain/Messages.ts"
import type { RiskLimits } from "../risk/RiskGate.ts"
import { featuresOf } from "../signals/SignalWorker.ts"
import type { Fold } from "./Grid.ts"
import { type Metrics, periodName, type RankMetric } from "./Metrics.ts"
import type { ReplayPlan, TickListener, VariantReplayer, VariantResult } from "./Replay.ts"

/** Buckets per chart over the whole period (the client re-downsamples them to the pixel width of the view). */
export const CHART_BUCKETS = 20_000
/** No tick for this long (or 20 buckets, if longer) is a gap in the data, drawn as a break in the lines. */
export const GAP_MS = 60_000

interface SymbolSeries {
  readonly t: Array<number>
  readonly lo: Array<number | null>
  readonly hi: Array<number | null>
  /** per variant: fast and slow MA at the bucket's first tick */
  readonly maF: Array<Array<number | null>>
  readonly maS: Array<Array<number | null>>
  bucket: number
  lastTs: number
  first: number
  last: number
}

/** First and last trade price of each symbol (buy-and-hold), and, for a report, the chart series. */
export const makeMarketRecorder = (plan: ReplayPlan, replayers: ReadonlyArray<VariantReplayer>, charts: boolean) => {
  const span = Math.max(1, plan.to - plan.from)
  const width = Math.max(1, Math.ceil(span / CHART_BUCKETS))
  const gap = Math.max(GAP_MS, 20 * width)
  const symbols = new Map<string, SymbolSeries>()
  const eqT: Array<number> = []
  const eq: Array<Array<number | null>> = replayers.map(() => [])
  let eqBucket = -1
  let lastTs = Number.NaN
  const n = replayers.length
  const nan = (x: number) => (Number.isFinite(x) ? x : null)

  const onTick = (tick: Tick): void => {
    const ts = tick.ts
    const price = tick.price
    let s = symbols.get(tick.symbol)
    if (s === undefined) {
      s = { t: [], lo: [], hi: [], maF: replayers.map(() => []), maS: replayers.map(() => []), bucket: -1, lastTs: ts, first: price, last: price }
      symbols.set(tick.symbol, s)
    }
    s.last = price
    if (!charts) return
    const b = Math.floor((ts - plan.from) / width)
    if (b !== s.bucket) {
      if (s.t.length > 0 && ts - s.lastTs > gap) {
        s.t.push(s.lastTs + 1)
        s.lo.push(null)
        s.hi.push(null)
        for (let i = 0; i < n; i++) s.maF[i].push(null), s.maS[i].push(null)
      }
      s.bucket = b
      s.t.push(ts)
      s.lo.push(price)
      s.hi.push(price)
      for (let i = 0; i < n; i++) {
        const f = featuresOf(replayers[i].signal, tick.symbol)
        s.maF[i].push(f === undefined ? null : nan(f.ma10))
        s.maS[i].push(f === undefined ? null : nan(f.ma30))
      }
    } else {
      const k = s.lo.length - 1
      if (price < (s.lo[k] as number)) s.lo[k] = price
      if (price > (s.hi[k] as number)) s.hi[k] = price
    }
    s.lastTs = ts
    const g = Math.floor((ts - plan.from) / width)
    if (g !== eqBucket) {
      if (eqT.length > 0 && ts - lastTs > gap) {
        eqT.push(lastTs + 1)
        for (let i = 0; i < n; i++) eq[i].push(null)
      }
      eqBucket = g
      eqT.push(ts)
      for (let i = 0; i < n; i++) eq[i].push(replayers[i].equity())
    } else {
      const k = eqT.length - 1
      for (let i = 0; i < n; i++) eq[i][k] = replayers[i].equity()
    }
    lastTs = ts
  }

  const buyAndHold = (): Map<string, { readonly first: number; readonly last: number; readonly ret: number }> =>
    new Map([...symbols].sort(([a], [b]) => a.localeCompare(b)).map(([k, s]) => [k, { first: s.first, last: s.last, ret: s.last / s.first - 1 }]))

  return { listener: { onTick } satisfies TickListener, symbols, equity: { t: eqT, eq }, buyAndHold }
}

export type MarketRecorder = ReturnType<typeof makeMarketRecorder>

export interface ReportParams {
  readonly title: string
  readonly source: string
  readonly limits: RiskLimits
  readonly fee: number
  readonly makerFee: number
  readonly slippageBps: number
  readonly latencyMs: number
  readonly startingBalance: number
  readonly quoteAsset: string
  readonly filters: string
  readonly plan: ReplayPlan
  readonly ticks: number
  readonly duplicates: number
  readonly rankBy?: RankMetric
}

export interface ReportVariant {
  readonly result: VariantResult
  readonly metrics: Metrics
}

export interface ReportInput {
  readonly params: ReportParams
  /** The variant detailed in charts and tables (the best-ranked one for a grid). */
  readonly main: number
  /** All variants (one for a plain replay), in rank order when ranked. */
  readonly variants: ReadonlyArray<ReportVariant>
  /** Index of each variant in the recorder's arrays. */
  readonly recorderIndex: ReadonlyArray<number>
  readonly market: MarketRecorder
  readonly folds?: ReadonlyArray<Fold>
  readonly warnings?: ReadonlyArray<string>
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
const iso = (t: number | undefined): string => (t === undefined ? "–" : new Date(t).toISOString().replace("T", " ").replace(".000Z", "Z"))
const pct = (x: number | undefined, d = 2): string => (x === undefined || !Number.isFinite(x) ? "–" : `${(x * 100).toFixed(d)} %`)
const num = (x: number | undefined, d = 2): string => (x === undefined || !Number.isFinite(x) ? "–" : x.toFixed(d))
const amt = (x: number | undefined): string =>
  x === undefined || !Number.isFinite(x) ? "–" : Math.abs(x) >= 100 ? x.toFixed(2) : Math.abs(x) >= 1 ? x.toFixed(4) : x.toPrecision(4)
const px = (x: number): string => (Math.abs(x) >= 1000 ? x.toFixed(2) : Math.abs(x) >= 1 ? x.toFixed(4) : x.toPrecision(6))
const qty = (x: number): string => String(Number(x.toPrecision(10)))
export const duration = (ms: number | undefined): string => {
  if (ms === undefined || !Number.isFinite(ms)) return "–"
  if (ms < 1000) return `${Math.round(ms)} ms`
  const s = ms / 1000
  if (s < 120) return `${s.toFixed(s < 10 ? 1 : 0)} s`
  if (s < 7200) return `${(s / 60).toFixed(1)} min`
  if (s < 172_800) return `${(s / 3600).toFixed(1)} h`
  return `${(s / 86_400).toFixed(1)} d`
}
const cls = (x: number | undefined) => (x === undefined || x === 0 ? "" : x > 0 ? ' class="pos"' : ' class="neg"')

const table = (head: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>, id?: string): string =>
  `<table${id === undefined ? "" : ` id="${id}"`}><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>` +
  rows.map((r) => `<tr>${r.map((c) => (c.startsWith("<td") ? c : `<td>${c}</td>`)).join("")}</tr>`).join("") +
  "</tbody></table>"

let uplot: { js: string; css: string } | undefined
const uplotAssets = () => {
  if (uplot === undefined) {
    const dir = dirname(createRequire(import.meta.url).resolve("uplot"))
    const base = dir.endsWith("dist") ? dir : join(dir, "dist")
    uplot = { js: readFileSync(join(base, "uPlot.iife.min.js"), "utf8"), css: readFileSync(join(base, "uPlot.min.css"), "utf8") }
  }
  return uplot
}

/** JSON safe inside a <script> element. */
const jsonForScript = (x: unknown): string => JSON.stringify(x).replace(/</g, "\\u003c")

const round = (xs: ReadonlyArray<number | null>, digits = 10): Array<number | null> =>
  xs.map((x) => (x === null ? null : Number(x.toPrecision(digits))))

export const renderReport = (input: ReportInput): string => {
  const p = input.params
  const main = input.variants[input.main]
  const m = main.metrics
  const r = main.result
  const ri = input.recorderIndex[input.main]
  const bh = input.market.buyAndHold()
  const bhRets = [...bh.values()].map((b) => b.ret)
  const bhPortfolio = bhRets.length === 0 ? undefined : bhRets.reduce((a, b) => a + b, 0) / bhRets.length
  const q = esc(p.quoteAsset)
  const basis = periodName(p.plan.periodMs)
  const v = r.variant

  const header = table(["parameter", "value"], [
    ["data", esc(p.source)],
    ["period (UTC)", `${iso(p.plan.from)} → ${iso(p.plan.to)} (${duration(p.plan.to - p.plan.from)})`],
    ["ticks", `${p.ticks.toLocaleString("en-US")}${p.duplicates > 0 ? ` (${p.duplicates} duplicates dropped)` : ""}`],
    ["strategy", `MA crossover, fast ${v.windows.fast} / slow ${v.windows.slow} trades${input.variants.length > 1 ? ` (variant “${esc(v.name)}”)` : ""}`],
    ["risk limits", `order qty ${v.limits.orderQty}, max position ${v.limits.maxPosition}, ≤ ${v.limits.maxTradesPerMinute} opens/min, ≤ ${v.limits.maxTradesPerHour} opens/h`],
    ["starting balance", `${amt(p.startingBalance)} ${q}`],
    ["quote asset", q],
    ["fees", `taker ${pct(p.fee, 3)} (every paper order is a MARKET taker order), maker ${pct(p.makerFee, 3)}; paid in ${q}`],
    ["slippage", `${p.slippageBps} bps against each fill`],
    ["latency", p.latencyMs > 0 ? `${p.latencyMs} ms: fill at the first trade at or after signal + latency` : "0: fill at the signal's trade"],
    ["exchange filters", esc(p.filters)]
  ])

  const summary = table(["metric", "value", "note"], [
    ["return", `<td${cls(m.totalReturn)}>${pct(m.totalReturn, 3)}</td>`, `${amt(m.netPnl)} ${q} on ${amt(m.startingBalance)} ${q}; ending equity ${amt(m.endingEquity)}`],
    ["buy &amp; hold", `<td${cls(bhPortfolio)}>${pct(bhPortfolio, 3)}</td>`, `same symbols, first to last trade, equal weights`],
    ["CAGR", pct(m.cagr), m.cagr === undefined ? "only for periods of 30 days or more" : ""],
    ["Sharpe", num(m.sharpe), `${basis} returns (${m.periods}), annualized ×√(periods per 365 d), risk-free 0`],
    ["Sortino", num(m.sortino), `same basis; downside deviation over all periods, target 0`],
    ["Calmar", num(m.calmar), m.calmar === undefined ? "CAGR / max drawdown: only with a CAGR" : "CAGR / max drawdown"],
    ["max drawdown", `<td class="neg">${pct(m.drawdown.fraction, 3)}</td>`, `${amt(m.drawdown.amount)} ${q}, peak ${iso(m.drawdown.peakTs)} → trough ${iso(m.drawdown.troughTs)}`],
    ["round trips", String(m.roundTrips), `${r.summary.candidates} candidates: ${r.summary.approved} approved and sent, ${r.summary.rejected} rejected (risk, filters, balance)`],
    ["win rate", pct(m.winRate, 1), `${m.wins} of ${m.roundTrips}`],
    ["profit factor", num(m.profitFactor), `gross profit ${amt(m.grossProfit)} / gross loss ${amt(m.grossLoss)} ${q} (net of fees)`],
    ["expectancy", amt(m.expectancy), `${q} per round trip, net of fees`],
    ["avg / max trade", `${duration(m.avgTradeMs)} / ${duration(m.maxTradeMs)}`, "entry fill to exit fill"],
    ["exposure", pct(m.exposure, 1), "share of the period with an open position"],
    ["fees", `${amt(m.fees)} ${q}`, m.feesOfGross === undefined ? "" : `${pct(m.feesOfGross, 1)} of |PnL before fees| (${amt(m.netPnl + m.fees)} ${q})`],
    ["open at end", r.unfilled > 0 ? `${r.unfilled} order(s) waiting for latency` : "–", "open positions are marked at the last trade price"]
  ])

  const perSymbol = table(
    ["symbol", "round trips", "wins", "net PnL", "fees", "buy &amp; hold", "first → last price"],
    [...bh].map(([symbol, b]) => {
      const s = r.perSymbol.get(symbol)
      return [esc(symbol), String(s?.roundTrips ?? 0), String(s?.wins ?? 0), `<td${cls(s?.pnl)}>${amt(s?.pnl ?? 0)}</td>`, amt(s?.fees ?? 0), pct(b.ret, 3), `${px(b.first)} → ${px(b.last)}`]
    })
  )

  const trades = table(
    ["#", "symbol", "entry (UTC)", "entry price", "exit (UTC)", "exit price", "qty", "net PnL", "fees", "duration", "signals"],
    r.trades.map((t, i) => [
      String(i + 1),
      esc(t.symbol),
      iso(t.entryTs),
      px(t.entryPrice),
      iso(t.exitTs),
      px(t.exitPrice),
      qty(t.qty),
      `<td${cls(t.pnl)}>${amt(t.pnl)}</td>`,
      amt(t.fees),
      duration(t.exitTs - t.entryTs),
      `${esc(t.entrySignalId)} → ${esc(t.exitSignalId)}`
    ]),
    "trades"
  )

  const rejections = r.rejections.size === 0
    ? "<p>None.</p>"
    : table(["reason", "count"], [...r.rejections].sort((a, b) => b[1] - a[1]).map(([k, n]) => [esc(k), String(n)]))

  const comparison = input.variants.length <= 1 ? "" : `<h2>Variants${p.rankBy === undefined ? "" : ` ranked by ${esc(p.rankBy)}`}</h2>` +
    table(
      ["rank", "variant", "return", "Sharpe", "Sortino", "max DD", "profit factor", "expectancy", "win rate", "round trips", "fees"],
      input.variants.map((x, i) => [
        String(i + 1),
        `${i === input.main ? "<b>" : ""}${esc(x.result.variant.name)}${i === input.main ? "</b>" : ""}`,
        `<td${cls(x.metrics.totalReturn)}>${pct(x.metrics.totalReturn, 3)}</td>`,
        num(x.metrics.sharpe),
        num(x.metrics.sortino),
        pct(x.metrics.drawdown.fraction, 3),
        num(x.metrics.profitFactor),
        amt(x.metrics.expectancy),
        pct(x.metrics.winRate, 1),
        String(x.metrics.roundTrips),
        amt(x.metrics.fees)
      ]),
      "variants"
    )

  const folds = input.folds === undefined || input.folds.length === 0 ? "" : "<h2>Walk-forward</h2>" +
    "<p>Each fold picks the best variant on the in-sample window and scores it on the next window, which it has not seen.</p>" +
    table(
      ["fold", "in sample (UTC)", "best in sample", "in-sample return / Sharpe", "out of sample (UTC)", "out-of-sample return / Sharpe", "its out-of-sample rank"],
      input.folds.map((f) => [
        String(f.index),
        `${iso(f.inSample[0])} → ${iso(f.inSample[1])}`,
        esc(f.best),
        `${pct(f.inSampleMetrics.totalReturn, 3)} / ${num(f.inSampleMetrics.sharpe)}`,
        `${iso(f.outOfSample[0])} → ${iso(f.outOfSample[1])}`,
        `<td${cls(f.outOfSampleMetrics.totalReturn)}>${pct(f.outOfSampleMetrics.totalReturn, 3)} / ${num(f.outOfSampleMetrics.sharpe)}</td>`,
        `${f.outOfSampleRank} of ${input.variants.length}`
      ])
    )

  const markersOf = (fills: ReadonlyArray<OrderFilled>, symbol: string) =>
    fills.filter((f) => f.symbol === symbol).map((f) => [f.ts, Number(f.avgPrice.toPrecision(10)), f.side === "BUY" ? 1 : 0, f.signalId] as const)

  const data = {
    quote: p.quoteAsset,
    windows: [v.windows.fast, v.windows.slow],
    start: p.startingBalance,
    symbols: [...input.market.symbols].sort(([a], [b]) => a.localeCompare(b)).map(([symbol, s]) => ({
      symbol,
      t: s.t,
      lo: round(s.lo),
      hi: round(s.hi),
      maF: round(s.maF[ri] ?? []),
      maS: round(s.maS[ri] ?? []),
      markers: markersOf(r.fills, symbol)
    })),
    equity: {
      t: input.market.equity.t,
      series: input.variants.slice(0, 10).map((x, i) => ({
        name: x.result.variant.name,
        main: i === input.main,
        eq: round(input.market.equity.eq[input.recorderIndex[i]] ?? [], 12)
      }))
    }
  }
  const assets = uplotAssets()
  const warnings = (input.warnings ?? []).map((w) => `<li>${esc(w)}</li>`).join("")

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(p.title)}</title>
<style>${assets.css}</style>
<style>
*{box-sizing:border-box}
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:0 24px 48px;color:#1d2125;background:#fff}
h1{font-size:22px;margin:18px 0 4px} h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #e3e6ea;padding-bottom:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:8px 32px;align-items:start}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{text-align:left;padding:3px 8px;border-bottom:1px solid #eef0f2;vertical-align:top}
th{background:#f6f7f9;font-weight:600;position:sticky;top:0}
td.pos{color:#137333} td.neg{color:#b3261e}
.scroll{max-height:520px;overflow:auto;border:1px solid #eef0f2}
.chart{width:100%;margin:6px 0 18px}
.hint{color:#5f6368;font-size:12px}
.warn{background:#fff8e1;border:1px solid #f3d27a;padding:6px 12px}
</style></head><body>
<h1>${esc(p.title)}</h1>
<p class="hint">Generated by autotrader replay. Times are UTC. Amounts in ${q}. Drag on a chart to zoom, double-click to reset.</p>
${warnings === "" ? "" : `<ul class="warn">${warnings}</ul>`}
<div class="grid"><section><h2>Parameters</h2>${header}</section><section><h2>Summary</h2>${summary}</section></div>
${comparison}
${folds}
<h2>Price, MA${v.windows.fast} and MA${v.windows.slow}, entries ▲ and exits ▼</h2>
<div id="prices"></div>
<h2>Equity and drawdown</h2>
<div id="equity" class="chart"></div><div id="drawdown" class="chart"></div>
<div class="grid"><section><h2>Per symbol</h2>${perSymbol}</section><section><h2>Rejections by reason</h2>${rejections}</section></div>
<h2>Trades (${r.trades.length} round trips)</h2>
<div class="scroll">${trades}</div>
<script>${assets.js}</script>
<script id="report-data" type="application/json">${jsonForScript(data)}</script>
<script>${CLIENT}</script>
</body></html>
`
}

/** The page's own script: builds the charts from the JSON, re-downsamples to the pixel width on zoom. */
const CLIENT = String.raw`
(function () {
  "use strict";
  var D = JSON.parse(document.getElementById("report-data").textContent);
  var tz = function (ts) { return uPlot.tzDate(new Date(ts), "Etc/UTC"); };
  var charts = [];
  var widthOf = function (el) { return Math.max(320, el.clientWidth || document.body.clientWidth - 48); };
  function lowerBound(a, x) { var lo = 0, hi = a.length; while (lo < hi) { var m = (lo + hi) >> 1; if (a[m] < x) lo = m + 1; else hi = m; } return lo; }
  // min/max per pixel column of [x0, x1] over full-resolution columns; "last" for the others; nulls (gaps) kept
  function downsample(cols, kinds, x0, x1, pixels) {
    var t = cols[0], i0 = Math.max(0, lowerBound(t, x0) - 1), i1 = Math.min(t.length, lowerBound(t, x1) + 1);
    var out = cols.map(function () { return []; });
    if (i1 - i0 <= pixels * 2) { for (var c = 0; c < cols.length; c++) out[c] = cols[c].slice(i0, i1); return out; }
    var w = (x1 - x0) / pixels, col = -1, gap = false;
    for (var i = i0; i < i1; i++) {
      var k = Math.floor((t[i] - x0) / w), isGap = cols[1][i] === null;
      if (k !== col || isGap || gap) {
        col = k; gap = isGap;
        for (var c2 = 0; c2 < cols.length; c2++) out[c2].push(cols[c2][i]);
        continue;
      }
      var last = out[0].length - 1;
      for (var c3 = 1; c3 < cols.length; c3++) {
        var v = cols[c3][i]; if (v === null) continue;
        var cur = out[c3][last];
        if (kinds[c3] === "min") { if (cur === null || v < cur) out[c3][last] = v; }
        else if (kinds[c3] === "max") { if (cur === null || v > cur) out[c3][last] = v; }
        else out[c3][last] = v;
      }
    }
    return out;
  }
  function zoomable(cols, kinds) {
    return function (u) {
      var x = u.scales.x; if (x.min == null) return;
      var next = downsample(cols, kinds, x.min, x.max, Math.max(100, Math.round(u.bbox.width / devicePixelRatio)));
      u.setData(next, false);
    };
  }
  function pad(n, w) { var s = String(n); while (s.length < (w || 2)) s = "0" + s; return s; }
  // 24-hour UTC labels whose precision follows the tick spacing
  function fmtTime(v, incr) {
    var d = new Date(v), day = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate());
    var hm = pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
    if (incr >= 86400000) return day;
    if (incr >= 60000) return (d.getUTCHours() === 0 && d.getUTCMinutes() === 0 ? day + " " : "") + hm;
    if (incr >= 1000) return hm + ":" + pad(d.getUTCSeconds());
    return hm + ":" + pad(d.getUTCSeconds()) + "." + pad(d.getUTCMilliseconds(), 3);
  }
  function fmtNum(v) { if (v == null) return "–"; var a = Math.abs(v); return a >= 1000 ? v.toFixed(2) : a >= 1 ? v.toFixed(4) : v.toPrecision(4); }
  // entry/exit markers; those closer than 10 px merge into one with a count
  function markerPlugin(markers) {
    return { hooks: { draw: function (u) {
      var ctx = u.ctx, x0 = u.scales.x.min, x1 = u.scales.x.max, lastOf = {}, groups = [];
      for (var i = 0; i < markers.length; i++) {
        var m = markers[i]; if (m[0] < x0 || m[0] > x1) continue;
        var cx = u.valToPos(m[0], "x", true), cy = u.valToPos(m[1], "y", true), side = m[2], g = lastOf[side];
        if (g && cx - g.x < 10 * devicePixelRatio) { g.n++; continue; }
        g = { x: cx, y: cy, side: side, n: 1 }; lastOf[side] = g; groups.push(g);
      }
      ctx.save();
      for (var j = 0; j < groups.length; j++) {
        var q = groups[j], s = 6 * devicePixelRatio, up = q.side === 1;
        ctx.beginPath();
        if (up) { ctx.moveTo(q.x, q.y + 2); ctx.lineTo(q.x - s, q.y + 2 + 1.6 * s); ctx.lineTo(q.x + s, q.y + 2 + 1.6 * s); }
        else { ctx.moveTo(q.x, q.y - 2); ctx.lineTo(q.x - s, q.y - 2 - 1.6 * s); ctx.lineTo(q.x + s, q.y - 2 - 1.6 * s); }
        ctx.closePath(); ctx.fillStyle = up ? "#188038" : "#c5221f"; ctx.fill();
        if (q.n > 1) { ctx.fillStyle = "#1d2125"; ctx.font = (10 * devicePixelRatio) + "px system-ui"; ctx.fillText("×" + q.n, q.x + s + 2, up ? q.y + 2 + 1.6 * s : q.y - 2 - 0.6 * s); }
      }
      ctx.restore();
    } } };
  }
  function chart(el, title, series, cols, kinds, extra, height) {
    var opts = {
      title: title, width: widthOf(el), height: height || 320, tzDate: tz, ms: 1,
      scales: { x: { time: true } },
      axes: [
        { grid: { show: true, stroke: "#eceff1" }, values: function (u, vs, ax, space, incr) { return vs.map(function (v) { return fmtTime(v, incr); }); } },
        { grid: { show: true, stroke: "#eceff1" }, size: 84, values: function (u, vs) { return vs.map(fmtNum); } }
      ],
      series: [{ label: "time (UTC)" }].concat(series),
      // double-click shows the whole period again (uPlot's own would fit the zoomed, re-downsampled data)
      cursor: { drag: { x: true, y: false }, bind: { dblclick: function () { return null; } } },
      // re-downsample after uPlot has committed the new x range (setData inside the hook would undo it)
      hooks: { setScale: [function (u, key) { if (key === "x") { clearTimeout(u._zoom); u._zoom = setTimeout(function () { zoomable(cols, kinds)(u); }, 0); } }] },
      plugins: extra || []
    };
    var first = downsample(cols, kinds, cols[0][0], cols[0][cols[0].length - 1], widthOf(el));
    var u = new uPlot(opts, first, el);
    u.over.addEventListener("dblclick", function () { u.setScale("x", { min: cols[0][0], max: cols[0][cols[0].length - 1] }); });
    charts.push([u, el]);
    return u;
  }
  var prices = document.getElementById("prices");
  D.symbols.forEach(function (s) {
    if (s.t.length === 0) return;
    var el = document.createElement("div"); el.className = "chart"; prices.appendChild(el);
    chart(el, s.symbol + " (" + D.quote + ")", [
      { label: "low", stroke: "#9aa0a6", width: 1, value: function (u, v) { return fmtNum(v); } },
      { label: "high", stroke: "#9aa0a6", width: 1, value: function (u, v) { return fmtNum(v); } },
      { label: "MA" + D.windows[0], stroke: "#1a73e8", width: 1.5, value: function (u, v) { return fmtNum(v); } },
      { label: "MA" + D.windows[1], stroke: "#e8710a", width: 1.5, dash: [6, 3], value: function (u, v) { return fmtNum(v); } }
    ], [s.t, s.lo, s.hi, s.maF, s.maS], [null, "min", "max", "last", "last"], [markerPlugin(s.markers)], 360);
  });
  if (D.equity.t.length > 0) {
    var eqCols = [D.equity.t], kinds = [null], series = [];
    var palette = ["#5f6368", "#1a73e8", "#e8710a", "#188038", "#a142f4", "#d01884", "#12b5cb", "#f9ab00", "#7cb342", "#795548"];
    D.equity.series.forEach(function (s, i) {
      eqCols.push(s.eq); kinds.push("last");
      series.push({ label: s.name, stroke: s.main ? "#202124" : palette[i % palette.length], width: s.main ? 2 : 1, value: function (u, v) { return fmtNum(v); } });
    });
    chart(document.getElementById("equity"), "Equity (" + D.quote + "): balance + realized + open positions at the last price", series, eqCols, kinds, [], 300);
    var main = D.equity.series.filter(function (s) { return s.main; })[0] || D.equity.series[0];
    var peak = D.start, dd = main.eq.map(function (v) { if (v === null) return null; if (v > peak) peak = v; return peak > 0 ? (v / peak - 1) * 100 : 0; });
    chart(document.getElementById("drawdown"), "Drawdown from the running peak (%)", [
      { label: "drawdown %", stroke: "#c5221f", fill: "rgba(197,34,31,0.12)", width: 1, value: function (u, v) { return v == null ? "–" : v.toFixed(3) + " %"; } }
    ], [D.equity.t, dd], [null, "min"], [], 200);
  }
  window.reportCharts = charts.map(function (c) { return c[0]; }); // for inspection (and the browser test)
  var pending = 0;
  window.addEventListener("resize", function () {
    clearTimeout(pending);
    pending = setTimeout(function () { charts.forEach(function (c) { c[0].setSize({ width: widthOf(c[1]), height: c[0].height }); }); }, 100);
  });
})();
`
