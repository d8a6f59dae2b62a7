/**
 * Where a tick's milliseconds go on its way to an order: with LATENCY_TRACE=<file>, each stage marks the tick (by its
 * tick id) when it takes and hands it on, and when the order request is written to the socket the tick's marks are
 * appended to the file as one JSON line `{ tickId, marks: { point: epoch ms (µs precision) } }`. The tick → order
 * benchmark joins these lines with the simulator's send/receive times (bench/tickToOrder.ts).
 *
 * Off (the default) every call is one boolean test. The times are performance.timeOrigin + performance.now(), not
 * Effect's Clock: a diagnostic of sub-millisecond hops across processes, never an input to any decision.
 */
import { appendFileSync, readFileSync } from "node:fs"
import { monitorEventLoopDelay } from "node:perf_hooks"

let file: string | undefined

/** The calling thread's CPU time and run-queue wait, ns (/proc/thread-self/schedstat; undefined off Linux). */
const schedstat = (): { readonly cpu?: number; readonly wait?: number } => {
  try {
    const [cpu, wait] = readFileSync("/proc/thread-self/schedstat", "utf8").split(" ").map(Number)
    return { cpu, wait }
  } catch {
    return {}
  }
}
/**
 * Per process (`autotrader service`, one stage per process): every mark is appended as `[tickId, point, at]`, in one
 * write every 200 ms, to `<file>.<pid>`; the reader joins the processes' lines by tick id. In one process (`run`)
 * only the marks of ticks that became an order are written, when the request is (below).
 */
let perProcess: { readonly path: string; lines: Array<string> } | undefined
/** tick id → point → time; bounded (oldest dropped): most ticks never become an order. */
const marks = new Map<string, Record<string, number>>()
/** client order id → tick id, for the request written by the exchange layer. */
const links = new Map<string, string>()
const MAX_TRACKED = 20_000

export const enableLatencyTrace = (path: string, options: { readonly perProcess?: boolean } = {}): void => {
  file = path
  if (options.perProcess !== true || perProcess !== undefined) return
  const out = { path: `${path}.${process.pid}`, lines: [] as Array<string> }
  perProcess = out
  // the event loop's delay in each 200 ms, as a line of its own: ["~loop", pid, p50 ms, p99 ms, max ms, at, wall ms,
  // run-queue wait ms, CPU ms]; the last three from the main thread's schedstat (Linux; null elsewhere): the time it
  // was runnable but had no core, against the time it ran, tells a stall spent waiting for a core from our own work
  const delay = monitorEventLoopDelay({ resolution: 1 })
  delay.enable()
  let last = { at: traceNow(), ...schedstat() }
  const flush = () => {
    if (delay.count > 0) {
      const now = { at: traceNow(), ...schedstat() }
      const ran = now.cpu === undefined || last.cpu === undefined ? null : (now.cpu - last.cpu) / 1e6
      const waited = now.wait === undefined || last.wait === undefined ? null : (now.wait - last.wait) / 1e6
      out.lines.push(`${JSON.stringify(["~loop", process.pid, delay.percentile(50) / 1e6, delay.percentile(99) / 1e6, delay.max / 1e6, now.at, now.at - last.at, waited, ran])}\n`)
      last = now
      delay.reset()
    }
    if (out.lines.length === 0) return
    const text = out.lines.join("")
    out.lines = []
    appendFileSync(out.path, text)
  }
  setInterval(flush, 200).unref()
  process.once("exit", flush)
}

export const latencyTraceOn = (): boolean => file !== undefined

export const traceNow = (): number => performance.timeOrigin + performance.now()

const bound = <V>(map: Map<string, V>): void => {
  if (map.size > MAX_TRACKED) {
    const oldest = map.keys().next().value
    if (oldest !== undefined) map.delete(oldest)
  }
}

/** Marks `point` for the tick `tickId` (now, or at `at`). */
export const traceMark = (tickId: string, point: string, at?: number): void => {
  if (file === undefined) return
  if (perProcess !== undefined) {
    perProcess.lines.push(`${JSON.stringify([tickId, point, at ?? traceNow()])}\n`)
    return
  }
  let m = marks.get(tickId)
  if (m === undefined) {
    m = {}
    marks.set(tickId, m)
    bound(marks)
  }
  m[point] ??= at ?? traceNow()
}

/** The order `clientOrderId` carries the tick `tickId` (marked `point` now). */
export const traceLink = (clientOrderId: string, tickId: string, point: string): void => {
  if (file === undefined) return
  links.set(clientOrderId, tickId)
  bound(links)
  traceMark(tickId, point)
}

/** The request of `clientOrderId` is written: its tick's marks go to the file. */
export const traceWritten = (clientOrderId: string): void => {
  if (file === undefined) return
  const tickId = links.get(clientOrderId)
  if (tickId === undefined) return
  links.delete(clientOrderId)
  if (perProcess !== undefined) return traceMark(tickId, "written")
  const m = marks.get(tickId)
  if (m === undefined) return
  m.written = traceNow()
  marks.delete(tickId)
  appendFileSync(file, `${JSON.stringify({ tickId, marks: m })}\n`)
}

/** The tick a bus message descends from (a Tick itself, or anything carrying its `origin`), for the bus's own marks. */
export const traceTickOf = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null) return undefined
  const v = value as { readonly origin?: { readonly tickId?: unknown }; readonly symbol?: unknown; readonly tradeId?: unknown }
  if (typeof v.origin?.tickId === "string") return v.origin.tickId
  return typeof v.symbol === "string" && typeof v.tradeId === "number" ? `${v.symbol}:${v.tradeId}` : undefined
}

/** The topic's own name without a deployment prefix (`bench.1.x.market.raw` → `market.raw`), for mark names. */
export const traceTopic = (name: string, known: ReadonlyArray<string>): string => known.find((k) => name.endsWith(k)) ?? name
