/**
 * Production layout on this machine: the six stages as separate processes over the real Kafka broker
 * (scripts/kafka.sh start), trading against the simulator. Each run uses its own topic/group prefix.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Kafka, logLevel } from "kafkajs"
import type { SimExchange } from "../../src/sim/SimExchange.ts"
import { groupLag, logLine } from "../support/kafkaLag.ts"
import { startSimExchange } from "../../src/sim/SimExchange.ts"

const BROKERS = process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`
const STAGES = ["ingest", "signals", "risk", "orders", "notify", "store"] as const

interface Service {
  readonly stage: string
  readonly child: ChildProcess
  output: string
  port?: number
  readonly exited: Promise<number | null>
}

let sim: SimExchange
let dataDir: string
const prefix = `e2e${Date.now().toString(36)}.`
const running = new Map<string, Service>()

const startService = (stage: string): Service => {
  const child = spawn(process.execPath, ["bin/autotrader.js", "service", stage], {
    env: {
      ...process.env,
      BUS: "kafka",
      KAFKA_BROKERS: BROKERS,
      KAFKA_TOPIC_PREFIX: prefix,
      EXCHANGE_WS_URL: sim.wsBaseUrl,
      EXCHANGE_REST_URL: sim.restBaseUrl,
      HTTP_PORT: "0",
      DATA_DIR: dataDir,
      ORDER_QTY: "0.001",
      RISK_MAX_TRADES_PER_MINUTE: "1000",
      RISK_MAX_TRADES_PER_HOUR: "10000",
      TELEGRAM_BOT_TOKEN: ""
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  const service: Service = {
    stage,
    child,
    output: "",
    exited: new Promise((resolve) => child.on("exit", (code) => resolve(code)))
  }
  const onData = (d: Buffer) => {
    service.output += d
    const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(service.output)
    if (m !== null && service.port === undefined) service.port = Number(m[1])
  }
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  running.set(stage, service)
  return service
}

const stop = async (stage: string, signal: NodeJS.Signals) => {
  const s = running.get(stage)
  if (s === undefined) return
  s.child.kill(signal)
  await s.exited
  running.delete(stage)
}

const waitFor = async (condition: () => boolean, what: string, timeoutMs = 60_000) => {
  const start = Date.now()
  while (!condition()) {
    if (Date.now() - start > timeoutMs) {
      const logs = [...running.values()].map((s) => `--- ${s.stage}\n${s.output.slice(-1500)}`).join("\n")
      throw new Error(`timed out waiting for ${what}\n${logs}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
}

const health = async (port: number) => {
  const res = await fetch(`http://127.0.0.1:${port}/health`)
  return { status: res.status, body: (await res.json()) as { status: string; service: string; bus: string } }
}

/** Orders the simulator executed, oldest first. */
const executed = () => [...sim.orders()].sort((a, b) => a.orderId - b.orderId)

const assertOneOrderPerSignal = () => {
  const ids = executed().map((o) => o.clientOrderId)
  expect(new Set(ids).size, `duplicate client order ids: ${ids.join(",")}`).toBe(ids.length)
  for (const id of ids) expect(id).toMatch(/^at-BTCUSDT-\d+-[LS]$/)
}

/** Spot long-only: a restarted risk gate that forgot the open position would buy twice in a row. */
const assertSidesAlternate = () => {
  const sides = executed().map((o) => o.side)
  sides.forEach((side, i) => expect(side, `order ${i}: ${sides.join(",")}`).toBe(i % 2 === 0 ? "BUY" : "SELL"))
}

describe("six services over a real Kafka", () => {
  beforeAll(async () => {
    const kafka = new Kafka({ brokers: [BROKERS], logLevel: logLevel.NOTHING, retry: { retries: 2 } })
    const admin = kafka.admin()
    await admin.connect().catch((e) => {
      throw new Error(`Kafka is not reachable at ${BROKERS} (start it with scripts/kafka.sh start): ${e}`)
    })
    await admin.disconnect()
    sim = await startSimExchange({ symbols: ["BTCUSDT"], ticksPerSecond: 60, seed: 7 })
    dataDir = mkdtempSync(join(tmpdir(), "autotrader-services-"))
    for (const stage of STAGES) startService(stage)
  }, 60_000)

  afterAll(async () => {
    await Promise.all([...running.keys()].map((s) => stop(s, "SIGTERM")))
    await sim?.close()
    if (dataDir !== undefined) rmSync(dataDir, { recursive: true, force: true })
  }, 60_000)

  it("every service answers /health with its own name", async () => {
    // six Node processes starting at once take a while on a busy 2-core machine
    await waitFor(() => [...running.values()].every((s) => s.port !== undefined), "all services listening", 150_000)
    // a service may report 503 for a moment while a fresh broker finishes creating topics (the stage restarts)
    for (const s of running.values()) {
      let last = await health(s.port!)
      const deadline = Date.now() + 20_000
      while (last.status !== 200 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200))
        last = await health(s.port!)
      }
      expect(last.body.service).toBe(s.stage)
      expect(last.status, `${s.stage}: ${JSON.stringify(last.body)}`).toBe(200)
      expect(last.body.bus).toBe("ready")
    }
  }, 200_000)

  it("simulator ticks → an order at the simulator, correctly signed, once per signal", async () => {
    await waitFor(() => executed().length >= 2, "a buy and a sell at the simulator", 90_000)
    assertOneOrderPerSignal()
    assertSidesAlternate()
    expect(executed().every((o) => o.status === "FILLED")).toBe(true)
  }, 120_000)

  it("risk gate and order manager killed and restarted: state rebuilt from orders.events, no duplicate order", async () => {
    const before = executed().length
    await stop("risk", "SIGKILL")
    await stop("orders", "SIGKILL")
    await new Promise((r) => setTimeout(r, 1000)) // candidates keep coming while they are down
    startService("risk")
    startService("orders")
    // generous: restarted processes start slowly on a loaded machine (up to 2 min to listen at load 27)
    await waitFor(() => executed().length >= before + 2, "trading to resume after the restart", 180_000)
    assertOneOrderPerSignal()
    assertSidesAlternate()
    const rebuilt = running.get("orders")!.output
    expect(rebuilt).toMatch(/"message":"order state rebuilt","orderEvents":[1-9]/)
  }, 240_000)

  it("SIGTERM, in pipeline order: each service drains on its connected bus (lag read, 0 at the broker) and exits 0 within 30 s", async () => {
    const inputs: Record<string, ReadonlyArray<readonly [string, string]>> = {
      ingest: [],
      signals: [["market.raw", "signals"]],
      risk: [["signals.candidate", "risk"]],
      orders: [["signals.approved", "orders"]],
      store: [["market.raw", "store"]],
      notify: []
    }
    for (const stage of ["ingest", "signals", "risk", "orders", "store", "notify"]) {
      const s = running.get(stage)!
      const t0 = Date.now()
      await stop(stage, "SIGTERM")
      const code = await s.exited
      expect(code, `${stage}: ${s.output.slice(-2000)}`).toBe(0)
      expect(Date.now() - t0, stage).toBeLessThan(30_000)
      const drained = logLine(s.output, "pipeline drained")
      expect(drained, `${stage}: ${s.output.slice(-2000)}`).toBeDefined()
      expect(Object.keys(drained!.lagAtStart as object)).toEqual(inputs[stage].map(([t, g]) => `${t}/${g}`))
      expect(s.output).not.toMatch(/drain could not read the lag|drain timed out|still held open/)
      for (const [topic, group] of inputs[stage]) {
        expect(await groupLag(`${prefix}${topic}`, `${prefix}${group}`, BROKERS), `${topic}/${group}`).toBe(0)
      }
    }
  }, 240_000)
})
