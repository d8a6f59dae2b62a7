/**
 * Tick → order, measured by the simulator (its own process): trade sent → order placement received, for the floor
 * (children/bare-client.ts) and for autotrader on the same simulator, embedded (`autotrader run`) or as separate
 * processes over Kafka (`autotrader service ingest|signals|risk|orders`).
 */
import type { ChildProcess } from "node:child_process"
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Kafka, logLevel } from "kafkajs"
import { cli, cliBefore, forkChild, nextMessage, pct, procStat, sleep, sorted, startCli, stop } from "./lib.ts"

export interface LatencyRun {
  readonly p50: number
  readonly p99: number
  readonly max: number
  readonly orders: number
  readonly trades: number
  /** CPU of the client process(es), % of one core over the measured window. */
  readonly cpuPct: number
  readonly rssMb: number
  /** Over Kafka: trades sent − ticks on market.raw + the signals group's lag, at the end of the window. */
  readonly backlog?: number
  /** embedded-traced: per hop of the path, the median of its ms over the measured orders (see HOPS). */
  readonly hops?: ReadonlyArray<{ readonly hop: string; readonly p50: number }>
}

/**
 * The points a tick passes on its way to an order, in order: the simulator's send and receive, and the marks of
 * LATENCY_TRACE (src/observability/LatencyTrace.ts) in between. Each hop is named for what happens in it.
 */
export const HOPS: ReadonlyArray<readonly [from: string, to: string, what: string]> = [
  ["sent", "frame", "simulator → WebSocket frame in our process (loopback, ws parsing)"],
  ["frame", "decoded", "decode of the Binance frame (JSON, Schema) → Tick"],
  ["decoded", "ingest", "hand-off to the ingest fiber (Stream.callback queue)"],
  ["ingest", "signal", "ingest sequencing, publish on market.raw, bus hop → signal stage"],
  ["signal", "candidate", "MA step, candidate built"],
  ["candidate", "risk", "publish signals.candidate, bus hop → risk stage"],
  ["risk", "approved", "risk decision"],
  ["approved", "orders", "publish signals.approved, bus hop → order stage"],
  ["orders", "lane", "hand-off to the symbol's order lane"],
  ["lane", "submit", "order manager: record, exchange rules, decimal quantity"],
  ["submit", "post", "OrderSubmitted made durable (orders.events) before the request leaves"],
  ["post", "written", "HMAC signing, HTTP request written (marked when `end` returns; see the note below the table)"],
  ["written", "received", "loopback → simulator's HTTP handler (read with the hop above)"]
]

/** Per-hop medians of the orders the simulator timed, joined by trade id with the LATENCY_TRACE lines. */
const hopMedians = (file: string, timeline: ReadonlyArray<readonly [number, number, number]>) => {
  const traced = new Map<number, Record<string, number>>()
  if (existsSync(file)) {
    for (const line of readFileSync(file, "utf8").split("\n")) {
      if (line === "") continue
      const { tickId, marks } = JSON.parse(line) as { tickId: string; marks: Record<string, number> }
      traced.set(Number(tickId.slice(tickId.indexOf(":") + 1)), marks)
    }
  }
  const per = HOPS.map(() => [] as Array<number>)
  for (const [tradeId, sent, received] of timeline) {
    const marks = traced.get(tradeId)
    if (marks === undefined) continue
    const at: Record<string, number> = { ...marks, sent, received }
    HOPS.forEach(([from, to], i) => {
      if (at[from] !== undefined && at[to] !== undefined) per[i].push(at[to] - at[from])
    })
  }
  return HOPS.map(([from, to], i) => ({ hop: `${from} → ${to}`, p50: pct(sorted(per[i]), 50) }))
}

/** Ticks not yet through ingest and signals at the end of a Kafka run (see LatencyRun.backlog). */
const kafkaBacklog = async (prefix: string, trades: number): Promise<number> => {
  const admin = new Kafka({ clientId: "bench-lag", brokers: (process.env.KAFKA_BROKERS ?? "127.0.0.1:19092").split(","), logLevel: logLevel.NOTHING }).admin()
  await admin.connect()
  try {
    const topic = `${prefix}market.raw`
    const ends = await admin.fetchTopicOffsets(topic)
    const [committed] = await admin.fetchOffsets({ groupId: `${prefix}signals`, topics: [topic] })
    const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, Math.max(0, Number(p.offset))]))
    let published = 0
    let lag = 0
    for (const e of ends) {
      published += Number(e.high)
      lag += Number(e.high) - (at.get(e.partition) ?? 0)
    }
    return Math.max(0, trades - published) + lag
  } finally {
    await admin.disconnect()
  }
}

export type Client = "floor" | "embedded" | "embedded-traced" | "embedded-before" | "kafka" | "kafka-before"

/** Risk limits that let every crossing through (the latency of every order is the point here, not the strategy). */
const openLimits = {
  SYMBOLS: "BTCUSDT",
  RISK_MAX_TRADES_PER_MINUTE: "1000000",
  RISK_MAX_TRADES_PER_HOUR: "1000000",
  RISK_MAX_POSITION: "1000",
  HTTP_PORT: "0",
  STORE_ENABLED: "false"
}

const startClient = (client: Client, ws: string, rest: string, prefix: string, traceFile: string): Array<ChildProcess> => {
  const exchange = { ...openLimits, EXCHANGE_WS_URL: ws, EXCHANGE_REST_URL: rest }
  switch (client) {
    case "floor":
      return [forkChild("bare-client.ts", [ws, rest])]
    case "embedded":
      return [startCli(["run"], { ...exchange, BUS: "memory" })]
    case "embedded-traced":
      return [startCli(["run"], { ...exchange, BUS: "memory", LATENCY_TRACE: traceFile })]
    case "embedded-before":
      return [startCli(["run"], { ...exchange, BUS: "memory" }, cliBefore)]
    case "kafka":
    case "kafka-before":
      return ["orders", "risk", "signals", "ingest"].map((stage) =>
        startCli(["service", stage], { ...exchange, BUS: "kafka", KAFKA_TOPIC_PREFIX: prefix }, client === "kafka" ? cli : cliBefore)
      )
  }
}

let runCounter = 0

/** One run: a fresh simulator and a fresh client at `rate` trades/s; `warmup` s not counted, then `seconds` measured. */
export const tickToOrderRun = async (client: Client, rate: number, seconds: number, warmup: number): Promise<LatencyRun> => {
  const sim = forkChild("sim.ts", [String(rate), String(warmup), String(seconds)])
  const procs: Array<ChildProcess> = []
  const prefix = `bench.${process.pid}.${Date.now().toString(36)}.${runCounter++}.`
  const traceDir = mkdtempSync(join(tmpdir(), "tick-trace-"))
  const traceFile = join(traceDir, "latency.jsonl")
  try {
    const { ws, rest } = await nextMessage<{ type: "ready"; ws: string; rest: string }>(sim, "ready")
    procs.push(...startClient(client, ws, rest, prefix, traceFile))
    // a client that exits before it connects (bad config, crash) fails the run at once, with its exit code
    const exited = new Promise<never>((_, reject) => {
      for (const p of procs) p.once("exit", (code) => reject(new Error(`${client} process exited early (code ${code})`)))
    })
    exited.catch(() => undefined)
    await Promise.race([nextMessage(sim, "connected", 90_000), exited])
    await sleep(client.startsWith("kafka") ? 4_000 : 1_000) // consumer groups join; start-up work settles
    const result = nextMessage<{ type: "result"; latencies: Array<number>; timeline: Array<[number, number, number]>; trades: number; sent: number; orders: number }>(sim, "result", (warmup + seconds + 30) * 1000)
    sim.send({ type: "go" })
    await sleep(warmup * 1000)
    const before = procs.map((p) => procStat(p.pid ?? 0))
    const from = performance.now()
    const r = await result
    const backlog = client.startsWith("kafka") ? await kafkaBacklog(prefix, r.sent) : undefined
    const wall = (performance.now() - from) / 1000
    const after = procs.map((p) => procStat(p.pid ?? 0))
    let cpu = 0
    let rss = 0
    after.forEach((a, i) => {
      cpu += (a?.cpuSec ?? 0) - (before[i]?.cpuSec ?? 0)
      rss += a?.rssMb ?? 0
    })
    const l = sorted(r.latencies)
    return { p50: pct(l, 50), p99: pct(l, 99), max: l[l.length - 1] ?? Number.NaN, orders: l.length, trades: r.trades, cpuPct: (100 * cpu) / wall, rssMb: rss, ...(backlog === undefined ? {} : { backlog }), ...(client === "embedded-traced" ? { hops: hopMedians(traceFile, r.timeline) } : {}) }
  } finally {
    await Promise.all(procs.map(stop))
    await stop(sim)
    rmSync(traceDir, { recursive: true, force: true })
  }
}
