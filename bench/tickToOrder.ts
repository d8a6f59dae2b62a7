/**
 * Tick → order, measured by the simulator (its own process): trade sent → order placement received, for the floor
 * (children/bare-client.ts) and for autotrader on the same simulator, embedded (`autotrader run`) or as separate
 * processes over Kafka (`autotrader service ingest|signals|risk|orders`).
 */
import type { ChildProcess } from "node:child_process"
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

export type Client = "floor" | "embedded" | "embedded-before" | "kafka" | "kafka-before"

/** Risk limits that let every crossing through (the latency of every order is the point here, not the strategy). */
const openLimits = {
  SYMBOLS: "BTCUSDT",
  RISK_MAX_TRADES_PER_MINUTE: "1000000",
  RISK_MAX_TRADES_PER_HOUR: "1000000",
  RISK_MAX_POSITION: "1000",
  HTTP_PORT: "0",
  STORE_ENABLED: "false"
}

const startClient = (client: Client, ws: string, rest: string, prefix: string): Array<ChildProcess> => {
  const exchange = { ...openLimits, EXCHANGE_WS_URL: ws, EXCHANGE_REST_URL: rest }
  switch (client) {
    case "floor":
      return [forkChild("bare-client.ts", [ws, rest])]
    case "embedded":
      return [startCli(["run"], { ...exchange, BUS: "memory" })]
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
  try {
    const { ws, rest } = await nextMessage<{ type: "ready"; ws: string; rest: string }>(sim, "ready")
    procs.push(...startClient(client, ws, rest, prefix))
    // a client that exits before it connects (bad config, crash) fails the run at once, with its exit code
    const exited = new Promise<never>((_, reject) => {
      for (const p of procs) p.once("exit", (code) => reject(new Error(`${client} process exited early (code ${code})`)))
    })
    exited.catch(() => undefined)
    await Promise.race([nextMessage(sim, "connected", 90_000), exited])
    await sleep(client.startsWith("kafka") ? 4_000 : 1_000) // consumer groups join; start-up work settles
    const result = nextMessage<{ type: "result"; latencies: Array<number>; trades: number; sent: number; orders: number }>(sim, "result", (warmup + seconds + 30) * 1000)
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
    return { p50: pct(l, 50), p99: pct(l, 99), max: l[l.length - 1] ?? Number.NaN, orders: l.length, trades: r.trades, cpuPct: (100 * cpu) / wall, rssMb: rss, ...(backlog === undefined ? {} : { backlog }) }
  } finally {
    await Promise.all(procs.map(stop))
    await stop(sim)
  }
}
