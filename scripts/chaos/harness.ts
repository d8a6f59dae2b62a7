/**
 * Chaos harness: the stages as separate processes (`autotrader service <stage>`) over a Kafka broker of its own,
 * trading against the simulator (in this process); with `instances: 2` (`--instances 2`) signals, risk and orders run
 * twice in the same consumer groups, so every kill of one of them moves partitions to the other. Meanwhile it
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
import { createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders } from "node:http"
import { type AddressInfo, createServer } from "node:net"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { Kafka, logLevel } from "kafkajs"
import { signedQuery } from "../../src/exchange/BinanceSigning.ts"
import { SIM_API_KEY, SIM_API_SECRET, type SimExchange, type SimFault, startSimExchange } from "../../src/sim/SimExchange.ts"

const ROOT = resolve(fileURLToPath(new URL("../..", import.meta.url)))

export const STAGES = ["ingest", "signals", "risk", "orders", "store"] as const
export type StageName = (typeof STAGES)[number]
/** A process of the run: a stage, or the second instance of a scaled stage (`signals#2`, `risk#2`, `orders#2`). */
export type InstanceId = StageName | `${StageName}#2`
/** The stages `instances: 2` runs twice, in the same consumer groups (scale-out). */
export const SCALED_STAGES = ["signals", "risk", "orders"] as const satisfies ReadonlyArray<StageName>
export const stageOf = (id: InstanceId): StageName => id.split("#")[0] as StageName

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
  /**
   * 2: two instances each of signals, risk and orders in the same consumer groups (partitions split between them,
   * and every kill moves partitions); default 1. A stage's kill weight is shared by its instances.
   */
  readonly instances?: 1 | 2
  readonly brokerRestarts?: number
  /** Broker down time per restart (ms), after its stop completed. */
  readonly brokerOutageMs?: number
  /** Chance that an order placement meets a fault (0 = no storm). */
  readonly faultRate?: number
  /**
   * Share of the storm's faults that are the "429, then the retry held in transit past a crash" scenario: the
   * placement answers 429 (Retry-After 3 s), the order manager's retry is held by a proxy until just before its
   * recvWindow runs out, and the order manager is SIGKILLed 200 ms into the hold and restarted (default 0.2).
   */
  readonly heldRetryShare?: number
  /** recvWindow of the order manager's signed requests (EXCHANGE_RECV_WINDOW, default 5000). */
  readonly recvWindowMs?: number
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
  /** Retries after a 429 held in transit, and how many of those holds had the order manager killed in them. */
  readonly heldRetries: number
  readonly killsInHold: number
  readonly brokerRestarts: number
  /** Stages that exited by themselves while the broker was down (start-up gave up, exit 1), restarted. */
  readonly exitsDuringBrokerOutage: Record<string, number>
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
  /** From the moment a stop begins until a start has completed. */
  down = true
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
    this.down = false
    this.log(`broker up on 127.0.0.1:${this.port} (${ms} ms)`)
  }
  async stop() {
    this.down = true
    const ms = await this.#run("stop")
    this.running = false
    this.log(`broker stopped (${ms} ms)`)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// the stage processes

interface Service {
  readonly stage: InstanceId
  readonly child: ChildProcess
  readonly exited: Promise<void>
  alive: boolean
  port?: number
  tail: string
}

class Services {
  readonly running = new Map<InstanceId, Service>()
  /** Every process ever started (for the clean-up: one being killed may be out of `running` for a moment). */
  readonly all = new Set<Service>()
  readonly #logs = new Map<InstanceId, WriteStream>()
  readonly starts: Record<string, number> = {}
  readonly env: Record<string, string>
  readonly runDir: string
  readonly stageEnv: Partial<Record<StageName, Record<string, string>>>
  constructor(env: Record<string, string>, runDir: string, stageEnv: Partial<Record<StageName, Record<string, string>>> = {}) {
    this.env = env
    this.runDir = runDir
    this.stageEnv = stageEnv
  }

  start(stage: InstanceId): Service {
    let log = this.#logs.get(stage)
    if (log === undefined) {
      log = createWriteStream(join(this.runDir, `${stage.replace("#", "-")}.log`), { flags: "a" })
      this.#logs.set(stage, log)
    }
    this.starts[stage] = (this.starts[stage] ?? 0) + 1
    log.write(`\n===== chaos: start #${this.starts[stage]} of ${stage} at ${new Date().toISOString()}\n`)
    const child = spawn(process.execPath, [join(ROOT, "bin/autotrader.js"), "service", stageOf(stage)], {
      cwd: ROOT,
      env: { ...process.env, ...this.env, ...this.stageEnv[stageOf(stage)] },
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
    this.all.add(service)
    void service.exited.then(() => this.all.delete(service))
    return service
  }

  async kill(stage: InstanceId, signal: NodeJS.Signals = "SIGKILL") {
    const s = this.running.get(stage)
    if (s === undefined) return
    // out of the map first: a killed stage is not a crash for restartDead, and the caller restarts it
    this.running.delete(stage)
    if (s.alive) s.child.kill(signal)
    await Promise.race([s.exited, sleep(30_000)])
    if (s.alive) {
      s.child.kill("SIGKILL")
      await s.exited
    }
  }

  /** Restarts any stage whose process died by itself (a crash is a finding too: it is counted). */
  restartDead(onCrash: (stage: InstanceId, tail: string) => void) {
    for (const [stage, s] of this.running) {
      if (!s.alive) {
        onCrash(stage, s.tail)
        this.start(stage)
      }
    }
  }

  killAllNow() {
    for (const s of this.all) if (s.alive) s.child.kill("SIGKILL")
  }

  async closeLogs() {
    await Promise.all([...this.#logs.values()].map((l) => new Promise<void>((r) => l.end(r))))
  }
}

// ---------------------------------------------------------------------------------------------------------------
// a REST proxy in front of the simulator for the order manager: it can hold a request in transit

class RestProxy {
  port = 0
  /** idle → (a 429 was queued) awaiting429 → (the placement got its 429) holdNext → (the retry is held) idle */
  phase: "idle" | "awaiting429" | "holdNext" = "idle"
  held = 0
  onHold: () => void = () => {}
  readonly #target: URL
  readonly #recvWindowMs: number
  readonly #server = createHttpServer((req, res) => {
    this.#handle(req.method ?? "GET", req.url ?? "/", req.headers, req, res).catch(() => res.destroy())
  })
  constructor(target: string, recvWindowMs: number) {
    this.#target = new URL(target)
    this.#recvWindowMs = recvWindowMs
  }
  async start() {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve))
    this.port = (this.#server.address() as AddressInfo).port
  }
  close() {
    return new Promise<void>((resolve) => {
      this.#server.close(() => resolve())
      this.#server.closeAllConnections()
    })
  }
  async #handle(method: string, url: string, headers: IncomingHttpHeaders, req: AsyncIterable<Buffer>, res: import("node:http").ServerResponse) {
    const chunks: Array<Buffer> = []
    for await (const c of req) chunks.push(c)
    const body = Buffer.concat(chunks)
    const placement = method === "POST" && url.split("?")[0] === "/api/v3/order"
    let awaiting429 = false
    if (placement && this.phase === "holdNext") {
      this.phase = "idle"
      // the retry after the 429: hold it until just before its own recvWindow ends, so it still executes, but
      // later than a restarted order manager that measures from the first attempt would resend
      const params = new URLSearchParams(url.includes("?") ? url.slice(url.indexOf("?") + 1) : body.toString())
      const ts = Number(params.get("timestamp"))
      const rw = Number(params.get("recvWindow") ?? this.#recvWindowMs)
      const holdMs = Number.isFinite(ts) ? ts + rw - 600 - Date.now() : 0
      if (holdMs > 0) {
        this.held++
        this.onHold()
        await sleep(holdMs)
      }
    } else if (placement && this.phase === "awaiting429") awaiting429 = true
    // forwarded even when the client gave up waiting: the request was already on its way
    const upstream = httpRequest(new URL(url, this.#target), { method, headers: { ...headers, host: this.#target.host } }, (up) => {
      if (awaiting429 && up.statusCode === 429) this.phase = "holdNext"
      else if (awaiting429) this.phase = "idle"
      if (res.destroyed) {
        up.resume()
        return
      }
      res.writeHead(up.statusCode ?? 502, up.headers)
      up.pipe(res)
    })
    upstream.on("error", () => {
      if (awaiting429) this.phase = "idle"
      res.destroy()
    })
    upstream.end(body)
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
  lookupPending = 0
  hit = 0
  placements = 0
  lastPlacementAt = 0
  #seen = 0
  readonly sim: SimExchange
  readonly random: () => number
  readonly httpTimeoutMs: number
  readonly proxy: RestProxy | undefined
  readonly heldRetryShare: number
  constructor(sim: SimExchange, random: () => number, httpTimeoutMs: number, proxy: RestProxy | undefined, heldRetryShare: number) {
    this.sim = sim
    this.random = random
    this.httpTimeoutMs = httpTimeoutMs
    this.proxy = proxy
    this.heldRetryShare = heldRetryShare
  }

  /** Accounts for the placements since the last call (each one consumed a pending fault, if any). */
  observe() {
    const requests = this.sim.requests()
    for (let i = this.#seen; i < requests.length; i++) {
      const r = requests[i]
      if (r.method === "GET" && r.path === "/api/v3/order" && this.lookupPending > 0) {
        this.lookupPending--
        this.hit++
      }
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
    if (r < 0.45) return { kind: "executeThenDrop" }
    if (r < 0.55) return { kind: "drop" }
    if (r < 0.7) return { kind: "executeThenDelay", ms: this.httpTimeoutMs + 500 + Math.floor(this.random() * 2000) }
    if (r < 0.9) return { kind: "rateLimited", status: 429, retryAfterSec: 1 + Math.floor(this.random() * 3) }
    return { kind: "rateLimited", status: 418, retryAfterSec: 1 + Math.floor(this.random() * 2) }
  }

  maybeInject(rate: number) {
    this.observe()
    // order lookups fail too now and then (a 5xx or a lost request), one pending at a time
    if (this.lookupPending === 0 && this.random() < rate / 4) {
      const fault: SimFault = this.random() < 0.5 ? { kind: "httpStatus", status: 503, executed: false } : { kind: "drop" }
      this.sim.injectFault(fault, "lookup")
      this.lookupPending++
      const kind = `lookup-${faultKind(fault)}`
      this.injected[kind] = (this.injected[kind] ?? 0) + 1
    }
    if (this.pending > 0 || this.random() >= rate) return
    const held = this.proxy !== undefined && this.proxy.phase === "idle" && this.random() < this.heldRetryShare
    const fault: SimFault = held ? { kind: "rateLimited", status: 429, retryAfterSec: 3 } : this.#pick()
    this.sim.injectFault(fault)
    if (held) this.proxy!.phase = "awaiting429"
    this.pending++
    const kind = held ? "heldRetry" : faultKind(fault)
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
  let proxy: RestProxy | undefined
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
    const recvWindowMs = options.recvWindowMs ?? 5000
    proxy = new RestProxy(sim.restBaseUrl, recvWindowMs)
    await proxy.start()
    services = new Services(
      {
        BUS: "kafka",
        KAFKA_BROKERS: brokers,
        KAFKA_TOPIC_PREFIX: prefix,
        // two instances: 4 partitions, so BTCUSDT (2) and ETHUSDT (1) land on different members
        ...(options.instances === 2 ? { KAFKA_PARTITIONS: "4" } : {}),
        SYMBOLS: symbols.join(","),
        EXCHANGE_WS_URL: sim.wsBaseUrl,
        EXCHANGE_REST_URL: sim.restBaseUrl,
        EXCHANGE_HTTP_TIMEOUT: `${httpTimeoutMs} millis`,
        EXCHANGE_RECV_WINDOW: String(recvWindowMs),
        HTTP_PORT: "0",
        DATA_DIR: join(runDir, "data"),
        ORDER_QTY: "0.01",
        RISK_MAX_POSITION: "1000",
        RISK_MAX_TRADES_PER_MINUTE: "100000",
        RISK_MAX_TRADES_PER_HOUR: "1000000",
        TELEGRAM_BOT_TOKEN: "",
        NODE_OPTIONS: "--disable-warning=TimeoutNegativeWarning"
      },
      runDir,
      { orders: { EXCHANGE_REST_URL: `http://127.0.0.1:${proxy.port}` } }
    )
    const instanceIds: Array<InstanceId> = [...STAGES]
    if (options.instances === 2) for (const stage of SCALED_STAGES) instanceIds.push(`${stage}#2`)
    for (const id of instanceIds) services.start(id)
    const live = services

    // first orders before the chaos starts, so the run measures recovery, not start-up
    // a busy 2-core machine needs minutes to start five Node processes: the first bound is on that, the second on trading
    const upDeadline = Date.now() + 300_000
    while ([...live.running.values()].some((s) => s.port === undefined)) {
      if (Date.now() > upDeadline) throw new Error(`the stages did not all listen within 300 s of start; logs in ${runDir}`)
      live.restartDead((stage) => log(`${stage} exited by itself during start-up; restarted`))
      await sleep(200)
    }
    const startDeadline = Date.now() + 180_000
    while (sim.orders().length < 2) {
      if (Date.now() > startDeadline) throw new Error(`no order at the exchange within 180 s of the stages listening; logs in ${runDir}`)
      live.restartDead((stage) => log(`${stage} exited by itself during start-up; restarted`))
      await sleep(200)
    }
    log(`pipeline trading (${sim.orders().length} orders); chaos for ${Math.round(options.durationMs / 1000)} s`)

    const storm = new Storm(sim, random, httpTimeoutMs, proxy, options.heldRetryShare ?? 0.2)
    const kills: Record<string, number> = {}
    const crashes: Record<string, number> = {}
    let killsInFlight = 0
    let killsInHold = 0
    // one kill/restart at a time (the kill loop and the held-retry kills share the stages)
    let stageBusy = false
    const killAndRestart = async (stage: InstanceId, downMs: number, why: string) => {
      stageBusy = true
      try {
        await live.kill(stage, "SIGKILL")
        kills[stageOf(stage)] = (kills[stageOf(stage)] ?? 0) + 1
        log(`SIGKILL ${stage}${why}; restart in ${Math.round(downMs)} ms`)
        await sleep(downMs)
        const restarted = live.start(stage)
        // the next kill waits until the restarted stage is up (bounded), so a slow start on a busy machine still
        // leaves the pipeline time to trade between two kills
        const upBy = Date.now() + 90_000
        while (restarted.port === undefined && restarted.alive && Date.now() < upBy) await sleep(100)
      } finally {
        stageBusy = false
      }
    }
    const killCount = () => Object.values(kills).reduce((a, b) => a + b, 0)
    /** The run asked for this many kills and has them (held-retry kills count too). */
    const killsReached = () => options.kills !== undefined && killCount() >= options.kills
    proxy.onHold = () => {
      if (stageBusy || !chaosOn || killsReached()) return
      // busy from now: the kill loop must not start a kill of its own in the 200 ms before this one
      stageBusy = true
      killsInHold++
      killsInFlight++
      void sleep(200).then(() => killAndRestart("orders", random() * 500, " (200 ms into a retry held in transit)"))
    }
    const violations: Array<Violation> = []
    const weights = options.killWeights ?? { orders: 5, risk: 1.5, signals: 1.5, ingest: 1, store: 1 }
    const share = (id: InstanceId) => (weights[stageOf(id)] ?? 0) / instanceIds.filter((i) => stageOf(i) === stageOf(id)).length
    const killable = instanceIds.filter((id) => share(id) > 0)
    const totalWeight = killable.reduce((sum, id) => sum + share(id), 0)
    const pickStage = (): InstanceId => {
      let r = random() * totalWeight
      for (const id of killable) {
        r -= share(id)
        if (r < 0) return id
      }
      return killable[killable.length - 1]
    }
    const [gapMin, gapMax] = options.killGapMs ?? [3000, 9000]
    let chaosOn = true
    const chaosStart = Date.now()
    const chaosEnd = chaosStart + options.durationMs
    const brokerAt = Array.from({ length: brokerRestarts }, (_, i) => Date.now() + ((i + 1) * options.durationMs) / (brokerRestarts + 1))
    const resumeAfterBrokerMs: Array<number | null> = []
    const resumeWithin = options.resumeWithinMs ?? 120_000
    let brokerDone = 0
    // resolved once orders resumed after the last broker restart (or the window passed): the next restart waits
    let resumeMeasured: Promise<void> = Promise.resolve()
    let resumePending = false

    // the storm runs beside the kill loop until the chaos ends
    let stormOn = (options.faultRate ?? 0.5) > 0
    const stormLoop = (async () => {
      while (stormOn && Date.now() < chaosEnd) {
        storm.maybeInject(options.faultRate ?? 0.5)
        await sleep(50)
      }
    })()

    const outageExits: Record<string, number> = {}
    const onCrash = (stage: InstanceId, tail: string) => {
      if (broker !== undefined && broker.down) {
        // a stage that (re)starts while the broker is down gives up after its bounded retries and exits 1, loudly:
        // a process supervisor restarts it (as the harness does); counted, not a violation
        outageExits[stage] = (outageExits[stage] ?? 0) + 1
        log(`${stage} exited while the broker was down; restarting`)
        return
      }
      crashes[stage] = (crashes[stage] ?? 0) + 1
      log(`${stage} exited by itself (not killed); restarting. Last output:\n${tail.slice(-800)}`)
    }

    let nextKill = Date.now() + gapMin + random() * (gapMax - gapMin)
    while (Date.now() < chaosEnd && !killsReached()) {
      live.restartDead(onCrash)
      if (brokerDone < brokerAt.length && Date.now() >= brokerAt[brokerDone] && broker !== undefined && !resumePending) {
        brokerDone++
        log(`broker restart ${brokerDone}/${brokerAt.length}`)
        await broker.stop()
        await sleep(options.brokerOutageMs ?? 10_000)
        await broker.start()
        const back = Date.now()
        const before = sim.orders().length
        // measured while the chaos goes on (kills included): the first new order at the exchange
        resumePending = true
        resumeMeasured = (async () => {
          const index = resumeAfterBrokerMs.push(null) - 1
          while (Date.now() - back < resumeWithin && sim!.orders().length === before) await sleep(200)
          if (sim!.orders().length > before) resumeAfterBrokerMs[index] = Date.now() - back
          log(`after broker restart ${index + 1}: ${resumeAfterBrokerMs[index] === null ? `no new order within ${resumeWithin / 1000} s` : `orders resumed after ${((Date.now() - back) / 1000).toFixed(1)} s`}`)
          resumePending = false
        })()
        nextKill = Date.now() + gapMin
        continue
      }
      // no kills while orders are expected to resume after a broker restart: that window measures the recovery alone
      if (Date.now() >= nextKill && !resumePending) {
        const stage = pickStage()
        let aimed = false
        if (stageOf(stage) === "orders" && random() < 0.5) {
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
        const busyUntil = Date.now() + 120_000
        while (stageBusy && Date.now() < busyUntil) await sleep(50)
        // a held-retry kill that ran meanwhile may have been the last one asked for
        if (killsReached()) break
        if (aimed) killsInFlight++
        await killAndRestart(stage, random() * 3000, aimed ? " (order in flight)" : "")
        nextKill = Date.now() + gapMin + random() * (gapMax - gapMin)
      }
      await sleep(100)
    }
    // the last broker restart's recovery is part of the chaos phase: wait for its verdict
    await resumeMeasured
    stormOn = false
    chaosOn = false
    await stormLoop
    const holdsEnd = Date.now() + 120_000
    while (stageBusy && Date.now() < holdsEnd) await sleep(100)
    proxy.phase = "idle"
    const chaosMs = Date.now() - chaosStart
    storm.observe()
    log(`chaos over: kills ${JSON.stringify(kills)} (${killsInFlight} aimed at orders in flight), broker restarts ${brokerDone}, faults ${JSON.stringify(storm.injected)} (${storm.hit} hit an order placement)`)

    // settle: stop the source, restart anything dead, wait until every approval is final and nothing moves
    await live.kill("ingest", "SIGTERM")
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
      heldRetries: proxy.held,
      killsInHold,
      brokerRestarts: brokerDone,
      exitsDuringBrokerOutage: outageExits,
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
      await Promise.all([...services.all].map((s) => Promise.race([s.exited, sleep(5000)])))
      await services.closeLogs()
    }
    await proxy?.close()
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
    `  held retries:           ${r.heldRetries} retries after a 429 held in transit, ${r.killsInHold} with the order manager killed 200 ms into the hold`,
    `  broker restarts:        ${r.brokerRestarts} (orders resumed after ${r.resumeAfterBrokerMs.map((ms) => (ms === null ? "never" : `${(ms / 1000).toFixed(1)} s`)).join(", ") || "-"})`,
    `  exits while broker down: ${total(r.exitsDuringBrokerOutage)} ${JSON.stringify(r.exitsDuringBrokerOutage)} (start-up gave up with exit 1; restarted)`,
    `  REST faults injected:   ${total(r.faultsInjected)} ${JSON.stringify(r.faultsInjected)}, ${r.faultsHit} hit an order placement or lookup`,
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
