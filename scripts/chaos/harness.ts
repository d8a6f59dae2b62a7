/**
 * Chaos harness: the stages as separate processes (`autotrader service <stage>`) over a Kafka broker of its own,
 * trading against the simulator (in this process) while it
 * - SIGKILLs a random stage at random moments (the order manager most often, half of those aimed at an order in
 *   flight) and restarts it,
 * - stops and restarts its broker mid-run,
 * - injects a REST fault storm into order placements (5xx with and without execution, responses lost after
 *   execution, responses slower than the client's timeout, 429/418 with Retry-After).
 * Then it stops the source, lets the pipeline settle and checks, from the outside (the simulator's order list and
 * the topics read with a client of its own):
 * - exactly one exchange order per approved signal (no duplicate, no order without an approval),
 * - every approval has a final OrderEvent (nothing lost),
 * - no two BUYs (or two SELLs) in a row for a symbol at the exchange,
 * - the positions the order events add up to equal the simulator's balances,
 * - orders resumed after every broker restart.
 * Every loop is bounded by the run's deadline; processes and the broker are cleaned up on exit and on failure.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { createWriteStream, mkdtempSync, rmSync, type WriteStream } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Kafka, logLevel } from "kafkajs"
import { signedQuery } from "../../src/exchange/BinanceSigning.ts"
import { SIM_API_KEY, SIM_API_SECRET, type SimExchange, type SimFault, startSimExchange } from "../../src/sim/SimExchange.ts"

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)))

export const STAGES = ["ingest", "signals", "risk", "orders", "store"] as const
export type StageName = (typeof STAGES)[number]

export interface ChaosOptions {
  /** Chaos phase length (kills, broker restarts, faults), before the settle phase. */
  readonly durationMs: number
  /** End the chaos phase after this many kills (durationMs still bounds it). */
  readonly kills?: number
  readonly symbols?: ReadonlyArray<string>
  /** Simulated trades per second per symbol. */
  readonly ticksPerSecond?: number
  readonly seed?: number
  /** Gap between two kills: uniform in [min, max] ms. */
  readonly killGapMs?: readonly [number, number]
  /** Which stages may be killed, with weights (default: orders 50%, the others share the rest). */
  readonly killWeights?: Partial<Record<StageName, number>>
  readonly brokerRestarts?: number
  /** Broker down time per restart (ms), after its stop completed. */
  readonly brokerOutageMs?: number
  /** Chance that an order placement meets a fault (0 = no storm). */
  readonly faultRate?: number
  /** Order manager's HTTP timeout (ms); "slow" faults answer later than this. */
  readonly httpTimeoutMs?: number
  /** Longest settle phase (ms) after the chaos: the pipeline must reach a final state for every approval by then. */
  readonly settleMs?: number
  /** Orders must resume within this long after each broker restart (ms). */
  readonly resumeWithinMs?: number
  /** Use this broker instead of starting one (then brokerRestarts must be 0). */
  readonly brokers?: string
  /** Keep the run directory (service logs) even when every check passed. */
  readonly keep?: boolean
  readonly log?: (line: string) => void
}

export interface Violation {
  readonly check: string
  readonly detail: string
}

export interface ChaosReport {
  readonly seed: number
  readonly minutes: number
  readonly runDir: string
  readonly kills: Record<string, number>
  readonly killsInFlight: number
  readonly brokerRestarts: number
  readonly resumeAfterBrokerMs: ReadonlyArray<number | null>
  readonly faultsInjected: Record<string, number>
  readonly faultsHit: number
  readonly approvals: number
  readonly finalEvents: Record<string, number>
  readonly exchangeOrders: number
  readonly duplicates: number
  readonly lost: number
  readonly violations: ReadonlyArray<Violation>
}

// ---------------------------------------------------------------------------------------------------------------
// small utilities

/** mulberry32: a seeded PRNG, so a run's choices (not its timings) repeat with the same seed. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)))

const portFree = (port: number) =>
  new Promise<boolean>((resolve) => {
    const server = createServer()
    server.once("error", () => resolve(false))
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)))
  })

/** A free port P with P+1 free too (the broker's controller listens on P+1). */
const freeBrokerPort = async (random: () => number): Promise<number> => {
  for (let i = 0; i < 50; i++) {
    const port = 20000 + 2 * Math.floor(random() * 9000)
    if ((await portFree(port)) && (await portFree(port + 1))) return port
  }
  throw new Error("no free port pair for the chaos broker in 20000-38000")
}

const num = (x: unknown): number => (typeof x === "number" ? x : Number(x))

// ---------------------------------------------------------------------------------------------------------------
// the broker (scripts/kafka.sh with a port and data dir of its own; never the shared one)

class Broker {
  readonly port: number
  readonly dataDir: string
  readonly log: (line: string) => void
  constructor(port: number, dataDir: string, log: (line: string) => void) {
    this.port = port
    this.dataDir = dataDir
    this.log = log
  }
  running = false
  /** Asynchronous on purpose: the simulator lives in this process and must keep answering meanwhile. */
  #run(command: "start" | "stop"): Promise<number> {
    const t0 = Date.now()
    return new Promise((resolve, reject) => {
      const child = spawn("bash", [join(ROOT, "scripts/kafka.sh"), command], {
        env: { ...process.env, KAFKA_PORT: String(this.port), KAFKA_DATA_DIR: this.dataDir },
        stdio: ["ignore", "ignore", "pipe"]
      })
      let stderr = ""
      child.stderr!.on("data", (d: Buffer) => (stderr += d))
      const timer = setTimeout(() => child.kill("SIGKILL"), 180_000)
      child.on("exit", (code) => {
        clearTimeout(timer)
        if (code === 0) resolve(Date.now() - t0)
        else reject(new Error(`kafka.sh ${command} (port ${this.port}) failed (exit ${code}): ${stderr}`))
      })
    })
  }
  async start() {
    const ms = await this.#run("start")
    this.running = true
    this.log(`broker up on 127.0.0.1:${this.port} (${ms} ms)`)
  }
  async stop() {
    const ms = await this.#run("stop")
    this.running = false
    this.log(`broker stopped (${ms} ms)`)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the stage processes

interface Service {
  readonly stage: StageName
  readonly child: ChildProcess
  readonly exited: Promise<void>
  alive: boolean
  port?: number
  tail: string
}

class Services {
  readonly running = new Map<StageName, Service>()
  readonly #logs = new Map<StageName, WriteStream>()
  readonly starts: Record<string, number> = {}
  readonly env: Record<string, string>
  readonly runDir: string
  constructor(env: Record<string, string>, runDir: string) {
    this.env = env
    this.runDir = runDir
  }

  start(stage: StageName): Service {
    let log = this.#logs.get(stage)
    if (log === undefined) {
      log = createWriteStream(join(this.runDir, `${stage}.log`), { flags: "a" })
      this.#logs.set(stage, log)
    }
    this.starts[stage] = (this.starts[stage] ?? 0) + 1
    log.write(`\n===== chaos: start #${this.starts[stage]} of ${stage} at ${new Date().toISOString()}\n`)
    const child = spawn(process.execPath, [join(ROOT, "bin/autotrader.js"), "service", stage], {
      cwd: ROOT,
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    const service: Service = {
      stage,
      child,
      alive: true,
      tail: "",
      exited: new Promise((resolve) =>
        child.on("exit", (code, signal) => {
          service.alive = false
          log.write(`\n===== chaos: ${stage} exited (code ${code}, signal ${signal}) at ${new Date().toISOString()}\n`)
          resolve()
        })
      )
    }
    const onData = (d: Buffer) => {
      log.write(d)
      service.tail = (service.tail + d.toString()).slice(-4000)
      if (service.port === undefined) {
        const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(service.tail)
        if (m !== null) service.port = Number(m[1])
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    this.running.set(stage, service)
    return service
  }

  async kill(stage: StageName, signal: NodeJS.Signals = "SIGKILL") {
    const s = this.running.get(stage)
    if (s === undefined) return
    if (s.alive) s.child.kill(signal)
    await Promise.race([s.exited, sleep(30_000)])
    if (s.alive) {
      s.child.kill("SIGKILL")
      await s.exited
    }
  }

  /** Restarts any stage whose process died by itself (a crash is a finding too: it is counted). */
  restartDead(onCrash: (stage: StageName, tail: string) => void) {
    for (const [stage, s] of this.running) {
      if (!s.alive) {
        onCrash(stage, s.tail)
        this.start(stage)
      }
    }
  }

  killAllNow() {
    for (const s of this.running.values()) if (s.alive) s.child.kill("SIGKILL")
  }

  async closeLogs() {
    await Promise.all([...this.#logs.values()].map((l) => new Promise<void>((r) => l.end(r))))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the fault storm (faults are consumed FIFO, one per order placement; a fault is queued only when none is pending,
// so each one meets the next placement)

const faultKind = (f: SimFault): string => {
  switch (f.kind) {
    case "httpStatus":
      return `http${f.status}${f.executed ? "-executed" : ""}`
    case "rateLimited":
      return `rateLimited${f.status}`
    case "executeThenDelay":
      return "slowPastTimeout"
    default:
      return f.kind
  }
}

class Storm {
  readonly injected: Record<string, number> = {}
  pending = 0
  hit = 0
  placements = 0
  lastPlacementAt = 0
  #seen = 0
  readonly sim: SimExchange
  readonly random: () => number
  readonly httpTimeoutMs: number
  constructor(sim: SimExchange, random: () => number, httpTimeoutMs: number) {
    this.sim = sim
    this.random = random
    this.httpTimeoutMs = httpTimeoutMs
  }

  /** Accounts for the placements since the last call (each one consumed a pending fault, if any). */
  observe() {
    const requests = this.sim.requests()
    for (let i = this.#seen; i < requests.length; i++) {
      const r = requests[i]
      if (r.method === "POST" && r.path === "/api/v3/order") {
        this.placements++
        this.lastPlacementAt = Date.now()
        if (this.pending > 0) {
          this.pending--
          this.hit++
        }
      }
    }
    this.#seen = requests.length
  }

  #pick(): SimFault {
    const r = this.random()
    const statuses = [500, 502, 503, 504] as const
    const status = statuses[Math.floor(this.random() * statuses.length)]
    if (r < 0.2) return { kind: "httpStatus", status, executed: true }
    if (r < 0.35) return { kind: "httpStatus", status, executed: false }
    if (r < 0.55) return { kind: "executeThenDrop" }
    if (r < 0.7) return { kind: "executeThenDelay", ms: this.httpTimeoutMs + 500 + Math.floor(this.random() * 2000) }
    if (r < 0.9) return { kind: "rateLimited", status: 429, retryAfterSec: 1 + Math.floor(this.random() * 3) }
    return { kind: "rateLimited", status: 418, retryAfterSec: 1 + Math.floor(this.random() * 2) }
  }

  maybeInject(rate: number) {
    this.observe()
    if (this.pending > 0 || this.random() >= rate) return
    const fault = this.#pick()
    this.sim.injectFault(fault)
    this.pending++
    const kind = faultKind(fault)
    this.injected[kind] = (this.injected[kind] ?? 0) + 1
  }
}

// ---------------------------------------------------------------------------------------------------------------
// reading the topics from outside (a client of the harness's own, not the project's bus)

interface TopicDump {
  readonly approvals: ReadonlyArray<any>
  readonly events: ReadonlyArray<any>
}

let readerGroup = 0

const readTopics = async (brokers: string, prefix: string, timeoutMs = 60_000): Promise<TopicDump> => {
  const kafka = new Kafka({ brokers: [brokers], clientId: "chaos-checker", logLevel: logLevel.NOTHING, retry: { retries: 3 } })
  const admin = kafka.admin()
  const topics = [`${prefix}signals.approved`, `${prefix}orders.events`]
  await admin.connect()
  const ends = new Map<string, number>() // `${topic}:${partition}` → high watermark
  try {
    const existing = new Set(await admin.listTopics())
    for (const topic of topics) {
      if (!existing.has(topic)) continue
      for (const p of await admin.fetchTopicOffsets(topic)) {
        if (Number(p.high) > Number(p.low)) ends.set(`${topic}:${p.partition}`, Number(p.high))
      }
    }
  } finally {
    await admin.disconnect()
  }
  const approvals: Array<any> = []
  const events: Array<any> = []
  if (ends.size === 0) return { approvals, events }
  const consumer = kafka.consumer({ groupId: `${prefix}chaos-checker-${process.pid}-${readerGroup++}`, maxWaitTimeInMs: 100 })
  await consumer.connect()
  try {
    const remaining = new Set(ends.keys())
    let done!: () => void
    const finished = new Promise<void>((r) => (done = r))
    await consumer.subscribe({ topics: [...new Set([...ends.keys()].map((k) => k.slice(0, k.lastIndexOf(":"))))], fromBeginning: true })
    await consumer.run({
      eachMessage: async ({ topic, partition, message }) => {
        const key = `${topic}:${partition}`
        const end = ends.get(key)
        if (end === undefined || Number(message.offset) >= end) return
        const value = JSON.parse(message.value!.toString())
        if (topic.endsWith("signals.approved")) approvals.push(value)
        else events.push({ ...value, _partition: partition, _offset: Number(message.offset) })
        if (Number(message.offset) + 1 >= end) {
          remaining.delete(key)
          if (remaining.size === 0) done()
        }
      }
    })
    if (remaining.size > 0) {
      const timedOut = await Promise.race([finished.then(() => false), sleep(timeoutMs).then(() => true)])
      if (timedOut) throw new Error(`reading the topics timed out; partitions not read to the end: ${[...remaining].join(", ")}`)
    }
  } finally {
    await consumer.disconnect()
  }
  return { approvals, events }
}

// ---------------------------------------------------------------------------------------------------------------
// the checks

const FINAL = new Set(["OrderFilled", "OrderRejected", "OrderFailed"])

interface Balances {
  readonly [asset: string]: number
}

const simBalances = async (sim: SimExchange): Promise<Balances> => {
  const query = signedQuery({ timestamp: Date.now(), recvWindow: 60000 }, SIM_API_SECRET)
  const res = await fetch(`${sim.restBaseUrl}/api/v3/account?${query}`, { headers: { "X-MBX-APIKEY": SIM_API_KEY } })
  const body = (await res.json()) as { balances: ReadonlyArray<{ asset: string; free: string; locked: string }> }
  return Object.fromEntries(body.balances.map((b) => [b.asset, Number(b.free) + Number(b.locked)]))
}

export const check = (
  dump: TopicDump,
  orders: ReturnType<SimExchange["orders"]>,
  balances: Balances,
  symbols: ReadonlyArray<string>
) => {
  const violations: Array<Violation> = []
  const approvals = new Map<string, any>()
  for (const a of dump.approvals) {
    if (approvals.has(a.id)) continue // a redelivered approval is the same approval
    approvals.set(a.id, a)
  }
  // exchange orders per signal: the client order id starts with `at-<signal id>` (hashed ids are matched exactly)
  const bySignal = new Map<string, Array<(typeof orders)[number]>>()
  const clientIdToSignal = new Map<string, string>()
  for (const e of dump.events) if (e.clientOrderId !== undefined) clientIdToSignal.set(e.clientOrderId, e.signalId)
  let orphans = 0
  for (const o of orders) {
    const signal = clientIdToSignal.get(o.clientOrderId) ?? [...approvals.keys()].find((id) => o.clientOrderId.startsWith(`at-${id}`))
    if (signal === undefined || !approvals.has(signal)) {
      orphans++
      violations.push({ check: "one exchange order per approval", detail: `exchange order ${o.orderId} (${o.clientOrderId} ${o.side} ${o.symbol}) has no approval` })
      continue
    }
    const list = bySignal.get(signal) ?? []
    list.push(o)
    bySignal.set(signal, list)
  }
  let duplicates = orphans
  for (const [signal, list] of bySignal) {
    if (list.length > 1) {
      duplicates += list.length - 1
      violations.push({
        check: "one exchange order per approval",
        detail: `signal ${signal}: ${list.length} exchange orders (${list.map((o) => `#${o.orderId} ${o.clientOrderId} ${o.side} ${o.status}`).join("; ")})`
      })
    }
  }
  // every approval ends with a final event; its outcome agrees with the exchange
  const lastFinal = new Map<string, any>()
  const finalEvents: Record<string, number> = {}
  for (const e of dump.events) if (FINAL.has(e._tag)) lastFinal.set(e.signalId, e)
  let lost = 0
  for (const [id, a] of approvals) {
    const final = lastFinal.get(id)
    const atExchange = bySignal.get(id) ?? []
    if (final === undefined) {
      lost++
      const tags = dump.events.filter((e) => e.signalId === id).map((e) => e._tag)
      violations.push({ check: "every approval has a final OrderEvent", detail: `${id} (${a.orderSide}): events [${tags.join(", ")}], exchange orders ${atExchange.length}` })
      continue
    }
    finalEvents[final._tag] = (finalEvents[final._tag] ?? 0) + 1
    if (final._tag === "OrderFilled" && atExchange.length === 0) {
      violations.push({ check: "one exchange order per approval", detail: `${id}: OrderFilled but no order at the exchange` })
    }
    if (final._tag !== "OrderFilled" && atExchange.some((o) => o.executedQty > 0)) {
      lost++
      violations.push({
        check: "every approval has a final OrderEvent",
        detail: `${id}: final event ${final._tag} (${final.reason ?? ""}) but the exchange executed ${atExchange.map((o) => `#${o.orderId} ${o.status}`).join(", ")}`
      })
    }
  }
  // the exchange's order sequence per symbol alternates BUY, SELL, BUY, …
  for (const symbol of symbols) {
    const sides = orders.filter((o) => o.symbol === symbol && o.executedQty > 0).sort((a, b) => a.orderId - b.orderId)
    for (let i = 1; i < sides.length; i++) {
      if (sides[i].side === sides[i - 1].side) {
        violations.push({
          check: "no two BUYs in a row",
          detail: `${symbol}: ${sides[i - 1].side} #${sides[i - 1].orderId} (${sides[i - 1].clientOrderId}) then ${sides[i].side} #${sides[i].orderId} (${sides[i].clientOrderId})`
        })
      }
    }
    if (sides.length > 0 && sides[0].side !== "BUY") {
      violations.push({ check: "no two BUYs in a row", detail: `${symbol}: first exchange order is a ${sides[0].side}` })
    }
  }
  // positions from the fills on orders.events equal the exchange's balances
  const filled = new Map<string, any>()
  for (const e of dump.events) if (e._tag === "OrderFilled") filled.set(e.clientOrderId, e)
  for (const symbol of symbols) {
    const base = symbol.replace(/(USDT|BUSD|USDC|BTC)$/, "")
    let position = 0
    for (const e of filled.values()) {
      if (e.symbol !== symbol) continue
      const qty = num(e.executedQty)
      const commission = e.commissionAsset === base ? num(e.commission) : 0
      position += e.side === "BUY" ? qty - commission : -qty
    }
    const balance = balances[base] ?? 0
    if (Math.abs(position - balance) > 1e-9) {
      violations.push({ check: "positions equal the exchange balances", detail: `${symbol}: orders.events add up to ${position} ${base}, the exchange holds ${balance}` })
    }
  }
  return { violations, approvals: approvals.size, duplicates, lost, finalEvents }
}

// ---------------------------------------------------------------------------------------------------------------
// the run

export const runChaos = async (options: ChaosOptions): Promise<ChaosReport> => {
  const seed = options.seed ?? Math.floor(Math.random() * 2 ** 31)
  const random = prng(seed)
  const log = options.log ?? ((line: string) => console.log(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}`))
  const symbols = options.symbols ?? ["BTCUSDT", "ETHUSDT"]
  const httpTimeoutMs = options.httpTimeoutMs ?? 2000
  const brokerRestarts = options.brokers === undefined ? options.brokerRestarts ?? 3 : 0
  const runDir = mkdtempSync(join(tmpdir(), "autotrader-chaos-"))
  const prefix = `chaos${Date.now().toString(36)}.`
  log(`seed ${seed}; logs in ${runDir}; topics ${prefix}*`)

  let broker: Broker | undefined
  let sim: SimExchange | undefined
  let services: Services | undefined
  const onExit = () => {
    services?.killAllNow()
    if (broker?.running) spawnSync("bash", [join(ROOT, "scripts/kafka.sh"), "stop"], { env: { ...process.env, KAFKA_PORT: String(broker.port) } })
  }
  process.on("exit", onExit)
  let passed = false
  try {
    let brokers = options.brokers
    if (brokers === undefined) {
      broker = new Broker(await freeBrokerPort(random), join(runDir, "kafka-data"), log)
      await broker.start()
      brokers = `127.0.0.1:${broker.port}`
    }
    sim = await startSimExchange({ symbols, ticksPerSecond: options.ticksPerSecond ?? 50, seed: seed % 100000 })
    services = new Services(
      {
        BUS: "kafka",
        KAFKA_BROKERS: brokers,
        KAFKA_TOPIC_PREFIX: prefix,
        SYMBOLS: symbols.join(","),
        EXCHANGE_WS_URL: sim.wsBaseUrl,
        EXCHANGE_REST_URL: sim.restBaseUrl,
        EXCHANGE_HTTP_TIMEOUT: `${httpTimeoutMs} millis`,
        HTTP_PORT: "0",
        DATA_DIR: join(runDir, "data"),
        ORDER_QTY: "0.01",
        RISK_MAX_POSITION: "1000",
        RISK_MAX_TRADES_PER_MINUTE: "100000",
        RISK_MAX_TRADES_PER_HOUR: "1000000",
        TELEGRAM_BOT_TOKEN: "",
        NODE_OPTIONS: "--disable-warning=TimeoutNegativeWarning"
      },
      runDir
    )
    for (const stage of STAGES) services.start(stage)
    const live = services

    // first orders before the chaos starts, so the run measures recovery, not start-up
    const startDeadline = Date.now() + 120_000
    while (sim.orders().length < 2) {
      if (Date.now() > startDeadline) throw new Error(`no order at the exchange within 120 s of start; logs in ${runDir}`)
      live.restartDead((stage) => log(`${stage} exited by itself during start-up; restarted`))
      await sleep(200)
    }
    log(`pipeline trading (${sim.orders().length} orders); chaos for ${Math.round(options.durationMs / 1000)} s`)

    const storm = new Storm(sim, random, httpTimeoutMs)
    const kills: Record<string, number> = {}
    const crashes: Record<string, number> = {}
    let killsInFlight = 0
    const violations: Array<Violation> = []
    const weights = options.killWeights ?? { orders: 5, risk: 1.5, signals: 1.5, ingest: 1, store: 1 }
    const killable = STAGES.filter((s) => (weights[s] ?? 0) > 0)
    const totalWeight = killable.reduce((sum, s) => sum + (weights[s] ?? 0), 0)
    const pickStage = (): StageName => {
      let r = random() * totalWeight
      for (const s of killable) {
        r -= weights[s] ?? 0
        if (r < 0) return s
      }
      return killable[killable.length - 1]
    }
    const [gapMin, gapMax] = options.killGapMs ?? [3000, 9000]
    const chaosStart = Date.now()
    const chaosEnd = chaosStart + options.durationMs
    const brokerAt = Array.from({ length: brokerRestarts }, (_, i) => Date.now() + ((i + 1) * options.durationMs) / (brokerRestarts + 1))
    const resumeAfterBrokerMs: Array<number | null> = []
    const resumeWithin = options.resumeWithinMs ?? 60_000
    let brokerDone = 0

    // the storm runs beside the kill loop until the chaos ends
    let stormOn = (options.faultRate ?? 0.5) > 0
    const stormLoop = (async () => {
      while (stormOn && Date.now() < chaosEnd) {
        storm.maybeInject(options.faultRate ?? 0.5)
        await sleep(50)
      }
    })()

    const onCrash = (stage: StageName, tail: string) => {
      crashes[stage] = (crashes[stage] ?? 0) + 1
      log(`${stage} exited by itself (not killed); restarting. Last output:\n${tail.slice(-800)}`)
    }

    let nextKill = Date.now() + gapMin + random() * (gapMax - gapMin)
    const killCount = () => Object.values(kills).reduce((a, b) => a + b, 0)
    while (Date.now() < chaosEnd && (options.kills === undefined || killCount() < options.kills)) {
      live.restartDead(onCrash)
      if (brokerDone < brokerAt.length && Date.now() >= brokerAt[brokerDone] && broker !== undefined) {
        brokerDone++
        log(`broker restart ${brokerDone}/${brokerAt.length}`)
        await broker.stop()
        await sleep(options.brokerOutageMs ?? 10_000)
        await broker.start()
        const back = Date.now()
        const before = sim.orders().length
        // measured while the chaos goes on (kills included): the first new order at the exchange
        void (async () => {
          const index = resumeAfterBrokerMs.push(null) - 1
          while (Date.now() - back < resumeWithin && sim!.orders().length === before) await sleep(200)
          if (sim!.orders().length > before) resumeAfterBrokerMs[index] = Date.now() - back
        })()
        nextKill = Date.now() + gapMin
        continue
      }
      if (Date.now() >= nextKill) {
        const stage = pickStage()
        let aimed = false
        if (stage === "orders" && random() < 0.5) {
          // aim at an order in flight: wait for the next placement, then kill within 0–400 ms of it
          const seen = storm.placements
          const waitUntil = Math.min(chaosEnd, Date.now() + 8000)
          while (storm.placements === seen && Date.now() < waitUntil) {
            storm.observe()
            await sleep(10)
          }
          if (storm.placements > seen) {
            aimed = true
            await sleep(random() * 400)
          }
        }
        await live.kill(stage, "SIGKILL")
        kills[stage] = (kills[stage] ?? 0) + 1
        if (aimed) killsInFlight++
        const down = random() * 3000
        log(`SIGKILL ${stage}${aimed ? " (order in flight)" : ""}; restart in ${Math.round(down)} ms`)
        await sleep(down)
        const restarted = live.start(stage)
        // the next gap starts once the restarted stage is up (bounded), so a slow start on a busy machine still
        // leaves the pipeline time to trade between two kills
        const upBy = Math.min(chaosEnd, Date.now() + 90_000)
        while (restarted.port === undefined && restarted.alive && Date.now() < upBy) await sleep(100)
        nextKill = Date.now() + gapMin + random() * (gapMax - gapMin)
      }
      await sleep(100)
    }
    stormOn = false
    await stormLoop
    const chaosMs = Date.now() - chaosStart
    storm.observe()
    log(`chaos over: kills ${JSON.stringify(kills)} (${killsInFlight} aimed at orders in flight), broker restarts ${brokerDone}, faults ${JSON.stringify(storm.injected)} (${storm.hit} hit an order placement)`)

    // settle: stop the source, restart anything dead, wait until every approval is final and nothing moves
    await live.kill("ingest", "SIGTERM")
    live.running.delete("ingest")
    const settleDeadline = Date.now() + (options.settleMs ?? 180_000)
    let dump: TopicDump = { approvals: [], events: [] }
    let stableSince = 0
    let lastSignature = ""
    while (Date.now() < settleDeadline) {
      live.restartDead(onCrash)
      try {
        dump = await readTopics(brokers, prefix)
      } catch (e) {
        log(`reading topics failed (${e}); retrying`)
        await sleep(2000)
        continue
      }
      const finals = new Set(dump.events.filter((e) => FINAL.has(e._tag)).map((e) => e.signalId))
      const open = [...new Set(dump.approvals.map((a) => a.id))].filter((id) => !finals.has(id))
      const signature = `${dump.approvals.length}/${dump.events.length}/${sim.orders().length}`
      if (signature !== lastSignature) {
        lastSignature = signature
        stableSince = Date.now()
      }
      if (open.length === 0 && Date.now() - stableSince >= 5000) break
      log(`settling: ${dump.approvals.length} approvals, ${open.length} without a final event, ${sim.orders().length} exchange orders`)
      await sleep(3000)
    }
    await sleep(1000) // a request still in transit lands before the exchange is read
    dump = await readTopics(brokers, prefix)
    const orders = sim.orders()
    const result = check(dump, orders, await simBalances(sim), symbols)
    violations.push(...result.violations)
    resumeAfterBrokerMs.forEach((ms, i) => {
      if (ms === null) violations.push({ check: "orders resume after a broker restart", detail: `restart ${i + 1}: no new exchange order within ${resumeWithin / 1000} s of the broker's return` })
    })
    for (const [stage, n] of Object.entries(crashes)) {
      violations.push({ check: "no stage exits by itself", detail: `${stage} exited ${n} time(s) without being killed (see ${stage}.log)` })
    }
    const report: ChaosReport = {
      seed,
      minutes: Math.round((chaosMs / 60000) * 100) / 100,
      runDir,
      kills,
      killsInFlight,
      brokerRestarts: brokerDone,
      resumeAfterBrokerMs,
      faultsInjected: storm.injected,
      faultsHit: storm.hit,
      approvals: result.approvals,
      finalEvents: result.finalEvents,
      exchangeOrders: orders.length,
      duplicates: result.duplicates,
      lost: result.lost,
      violations
    }
    passed = violations.length === 0
    return report
  } finally {
    services?.killAllNow()
    if (services !== undefined) {
      await Promise.all([...services.running.values()].map((s) => Promise.race([s.exited, sleep(5000)])))
      await services.closeLogs()
    }
    await sim?.close()
    if (broker?.running) {
      try {
        await broker.stop()
      } catch (e) {
        log(`stopping the chaos broker failed: ${e}`)
      }
    }
    process.off("exit", onExit)
    if (passed && options.keep !== true) {
      // keep the broker log next to the others only when something failed
      rmSync(runDir, { recursive: true, force: true })
    } else {
      log(`run directory kept: ${runDir}`)
    }
  }
}

export const formatReport = (r: ChaosReport): string => {
  const total = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0)
  const lines = [
    `chaos run: ${r.minutes} min of chaos, seed ${r.seed}`,
    `  kills (SIGKILL):        ${total(r.kills)} ${JSON.stringify(r.kills)}, ${r.killsInFlight} aimed at an order in flight`,
    `  broker restarts:        ${r.brokerRestarts} (orders resumed after ${r.resumeAfterBrokerMs.map((ms) => (ms === null ? "never" : `${(ms / 1000).toFixed(1)} s`)).join(", ") || "-"})`,
    `  REST faults injected:   ${total(r.faultsInjected)} ${JSON.stringify(r.faultsInjected)}, ${r.faultsHit} hit an order placement`,
    `  approvals checked:      ${r.approvals} (final events ${JSON.stringify(r.finalEvents)})`,
    `  exchange orders:        ${r.exchangeOrders}`,
    `  duplicates:             ${r.duplicates}`,
    `  lost:                   ${r.lost}`,
    r.violations.length === 0 ? "  all checks passed" : `  VIOLATIONS (${r.violations.length}):`,
    ...r.violations.slice(0, 50).map((v) => `    [${v.check}] ${v.detail}`),
    ...(r.violations.length > 50 ? [`    … ${r.violations.length - 50} more`] : [])
  ]
  return lines.join("\n")
}
