/** `autotrader run` as a user runs it: a real process, the embedded simulator, stops by itself or on SIGTERM. */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { BROKERS, groupLag, logLine } from "../support/kafkaLag.ts"

const SECRET = "s3cr3t-never-in-logs"

const start = (args: ReadonlyArray<string>, env: Record<string, string> = {}) => {
  const dataDir = mkdtempSync(join(tmpdir(), "autotrader-run-"))
  const child = spawn(process.execPath, ["bin/autotrader.js", ...args], {
    env: {
      ...process.env,
      HTTP_PORT: "0",
      DATA_DIR: dataDir,
      SIM_TICKS_PER_SECOND: "100",
      EXCHANGE_API_SECRET: SECRET,
      ...env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  let out = ""
  child.stdout.on("data", (d) => (out += d))
  child.stderr.on("data", (d) => (out += d))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, output: () => out, exited, cleanup: () => rmSync(dataDir, { recursive: true, force: true }) }
}

const lines = (out: string) =>
  out
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>)

describe("autotrader run", () => {
  it("--for stops by itself after draining, exit code 0, JSON logs with a line per candidate and decision", async () => {
    const run = start(["run", "--for", "6s"])
    const code = await run.exited
    run.cleanup()
    const logs = lines(run.output())
    expect(code).toBe(0)
    expect(logs.length).toBeGreaterThan(3)
    const messages = logs.map((l) => l.message)
    expect(messages).toContain("candidate")
    expect(messages.some((m) => m === "approved" || m === "rejected")).toBe(true)
    expect(messages).toContain("pipeline drained")
    for (const l of logs) expect(typeof l.level).toBe("string")
    expect(run.output()).not.toContain(SECRET)
  }, 30_000)

  it("SIGTERM drains and exits 0", async () => {
    const run = start(["run"])
    const deadline = Date.now() + 15_000
    while (!run.output().includes("autotrader running") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    run.child.kill("SIGTERM")
    const code = await run.exited
    run.cleanup()
    expect(code).toBe(0)
    expect(run.output()).toContain("pipeline drained")
  }, 30_000)

  it("a bad SYMBOLS value stops at start-up with a clear message and a non-zero exit", async () => {
    const run = start(["run", "--for", "2s"], { SYMBOLS: "btc usdt" })
    const code = await run.exited
    run.cleanup()
    expect(code).not.toBe(0)
    expect(run.output()).toMatch(/^SYMBOLS="btc usdt" is not allowed: expected a non-empty comma-separated list of symbols/)
  }, 30_000)

  it("a value out of range (ORDER_QTY=-1, RISK_MAX_TRADES_PER_MINUTE=-3, HTTP_PORT=99999) stops at start with exit 1 and one line naming it, before any stage starts", async () => {
    const cases: ReadonlyArray<{ args: Array<string>; env: Record<string, string>; line: RegExp }> = [
      { args: ["run", "--for", "30s"], env: { ORDER_QTY: "-1" }, line: /^ORDER_QTY="-1" is not allowed: expected a number greater than 0$/ },
      { args: ["run", "--for", "30s"], env: { RISK_MAX_TRADES_PER_MINUTE: "-3" }, line: /^RISK_MAX_TRADES_PER_MINUTE="-3" is not allowed: expected an integer from 1 to \d+$/ },
      { args: ["run", "--for", "30s"], env: { HTTP_PORT: "99999" }, line: /^HTTP_PORT="99999" is not allowed: expected an integer from 0 to 65535$/ },
      { args: ["service", "risk"], env: { ORDER_QTY: "-1", BUS: "memory" }, line: /^ORDER_QTY="-1" is not allowed: expected a number greater than 0$/ }
    ]
    const runs = cases.map((c) => ({ ...c, run: start(c.args, c.env) }))
    for (const c of runs) {
      const code = await c.run.exited
      c.run.cleanup()
      const out = c.run.output().trim()
      expect(code, out).toBe(1)
      const logged = out.split("\n")
      expect(logged, out).toHaveLength(1)
      expect(logged[0]).toMatch(c.line)
      expect(out).not.toMatch(/running|stage|drain/)
    }
  }, 120_000)

  it("BUS=kafka --for: the drain reads the real lag on a connected bus down to 0 (checked at the broker too), then the process exits 0 within 30 s", async () => {
    const prefix = `rtstop${Date.now().toString(36)}.`
    const run = start(["run", "--for", "10s"], { BUS: "kafka", KAFKA_BROKERS: BROKERS, KAFKA_TOPIC_PREFIX: prefix, SIM_TICKS_PER_SECOND: "50" })
    let closingAt: number | undefined
    const watch = setInterval(() => {
      if (closingAt === undefined && run.output().includes("market data closing")) closingAt = Date.now()
    }, 20)
    const code = await run.exited
    const exitedAt = Date.now()
    clearInterval(watch)
    run.cleanup()
    const out = run.output()
    expect(code, out.slice(-3000)).toBe(0)
    const drained = logLine(out, "pipeline drained")
    expect(drained, out.slice(-3000)).toBeDefined()
    // the drain read every input's lag from the bus (a closed bus gives no lag: "drain could not read the lag")
    expect(Object.keys(drained!.lagAtStart as object).sort()).toEqual(
      ["market.raw/signals", "market.raw/store", "signals.approved/orders", "signals.candidate/risk"]
    )
    expect(out).not.toMatch(/drain could not read the lag|drain timed out|still held open/)
    // the drain ends before the bus is released: the tick store flushes its last file on the connected bus
    expect(out.indexOf("pipeline drained")).toBeLessThan(out.indexOf("tick store stopped"))
    expect(closingAt).toBeDefined()
    expect(exitedAt - closingAt!).toBeLessThan(30_000)
    for (const [topic, group] of [["market.raw", "signals"], ["market.raw", "store"], ["signals.candidate", "risk"], ["signals.approved", "orders"]]) {
      expect(await groupLag(`${prefix}${topic}`, `${prefix}${group}`), `${topic}/${group}`).toBe(0)
    }
  }, 120_000)
})
