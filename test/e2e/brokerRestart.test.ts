/**
 * Broker outages: `autotrader run` over a Kafka broker of this test's own (never the shared one), trading against
 * the simulator. The broker is stopped for 10 s and started again, three times: each time `/ready` turns 503 while
 * the stages' consumers are not consuming, and orders resume within 30 s of the broker's return.
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { type ChildProcess, spawn, spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { SimExchange } from "../../src/sim/SimExchange.ts"
import { startSimExchange } from "../../src/sim/SimExchange.ts"
import { freePortPair, kafka } from "../support/broker.ts"

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

let port: number
let brokerDir: string
let dataDir: string
let sim: SimExchange
let app: { child: ChildProcess; output: string; httpPort?: number } | undefined

const waitFor = async (condition: () => boolean | Promise<boolean>, what: string, timeoutMs: number) => {
  const start = Date.now()
  while (!(await condition())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}\n${app?.output.slice(-4000)}`)
    await sleep(200)
  }
  return Date.now() - start
}

const ready = async (): Promise<number> => {
  try {
    const res = await fetch(`http://127.0.0.1:${app!.httpPort}/ready`, { signal: AbortSignal.timeout(2000) })
    return res.status
  } catch {
    return 0
  }
}

describe("broker restarts", () => {
  beforeAll(async () => {
    port = await freePortPair()
    brokerDir = mkdtempSync(join(tmpdir(), "autotrader-broker-"))
    dataDir = mkdtempSync(join(tmpdir(), "autotrader-restart-"))
    await kafka("start", port, brokerDir)
    sim = await startSimExchange({ symbols: ["BTCUSDT"], ticksPerSecond: 50, seed: 3 })
    const child = spawn(process.execPath, ["bin/autotrader.js", "run"], {
      env: {
        ...process.env,
        BUS: "kafka",
        KAFKA_BROKERS: `127.0.0.1:${port}`,
        KAFKA_TOPIC_PREFIX: "",
        EXCHANGE_WS_URL: sim.wsBaseUrl,
        EXCHANGE_REST_URL: sim.restBaseUrl,
        HTTP_PORT: "0",
        DATA_DIR: dataDir,
        STORE_ENABLED: "false",
        ORDER_QTY: "0.001",
        RISK_MAX_TRADES_PER_MINUTE: "1000",
        RISK_MAX_TRADES_PER_HOUR: "100000",
        TELEGRAM_BOT_TOKEN: ""
      },
      stdio: ["ignore", "pipe", "pipe"]
    })
    app = { child, output: "" }
    const onData = (d: Buffer) => {
      app!.output += d
      const m = /Listening on http:\/\/[^:]+:(\d+)/.exec(app!.output)
      if (m !== null && app!.httpPort === undefined) app!.httpPort = Number(m[1])
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
  }, 240_000)

  afterAll(async () => {
    if (app !== undefined && app.child.exitCode === null) {
      app.child.kill("SIGKILL")
      await new Promise((r) => app!.child.once("exit", r))
    }
    // always stop this test's broker, whatever happened above
    if (port !== undefined) {
      spawnSync("bash", ["scripts/kafka.sh", "stop"], { env: { ...process.env, KAFKA_PORT: String(port), KAFKA_DATA_DIR: brokerDir } })
    }
    await sim?.close()
    for (const dir of [brokerDir, dataDir]) if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  }, 120_000)

  it("stopped 10 s and restarted, three times: /ready is 503 meanwhile, orders resume within 30 s of each return", async () => {
    await waitFor(() => app!.httpPort !== undefined, "the HTTP server", 150_000)
    await waitFor(() => sim.orders().length >= 1, "a first order", 150_000)
    await waitFor(async () => (await ready()) === 200, "/ready 200 before the first outage", 60_000)
    const resumedAfter: Array<number> = []
    for (let round = 1; round <= 3; round++) {
      await kafka("stop", port, brokerDir)
      // /ready must go 503 during the outage (bus unavailable, consumers not consuming)
      let saw503 = false
      const downUntil = Date.now() + 10_000
      while (Date.now() < downUntil) {
        if ((await ready()) === 503) saw503 = true
        await sleep(250)
      }
      expect(saw503, `round ${round}: /ready never said 503 while the broker was down`).toBe(true)
      const before = sim.orders().length
      await kafka("start", port, brokerDir)
      const resumed = await waitFor(() => sim.orders().length > before, `orders to resume after restart ${round}`, 30_000)
      resumedAfter.push(resumed)
      // and the stages end consuming again (one member per group: a duplicate would leave partitions unread)
      await waitFor(async () => (await ready()) === 200, `/ready 200 after restart ${round}`, 30_000)
    }
    console.log(`orders resumed ${resumedAfter.map((ms) => `${(ms / 1000).toFixed(1)} s`).join(", ")} after the broker's returns`)
    const ids = sim.orders().map((o) => o.clientOrderId)
    expect(new Set(ids).size, "no duplicate client order id").toBe(ids.length)
  }, 600_000)
})
