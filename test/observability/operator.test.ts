/**
 * The operator's view of a real run: a terminal gets the pretty console, a pipe gets JSON, both with the same
 * events; the status line, the exit summary and GET /status carry the PnL the position book computes (checked
 * here by hand from the fills the run logged); /ready turns 503 when the market-data socket drops and 200 again
 * after the reconnect.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import { startCli } from "../support/cli.ts"

type Line = Record<string, unknown> & { message: string; timestamp: string }

const jsonLines = (out: string): Array<Line> =>
  out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as Line)

interface Fill {
  readonly side: "BUY" | "SELL"
  readonly qty: number
  readonly price: number
  readonly commission: number
  readonly commissionAsset: string
  readonly at: number
}

const fillsOf = (lines: ReadonlyArray<Line>): Array<Fill> =>
  lines.filter((l) => l.message === "order filled").map((l) => ({
    side: l.side as "BUY" | "SELL",
    qty: l.executedQty as number,
    price: l.avgPrice as number,
    commission: l.commission as number,
    commissionAsset: l.commissionAsset as string,
    at: Date.parse(l.timestamp)
  }))

/**
 * By hand, for spot long-only BTCUSDT: a buy costs qty × price (a fee in BTC shrinks the quantity held, not the
 * cost); a sell that closes the position realizes proceeds − its USDT fee − the whole cost of the position (what
 * rounding to the step leaves behind is dust, part of the round trip's result). Fees in quote terms: USDT fees as
 * they are, BTC fees × the fill price.
 */
const byHand = (fills: ReadonlyArray<Fill>) => {
  let held = 0
  let cost = 0
  let realized = 0
  let fees = 0
  for (const f of fills) {
    const feeQuote = f.commissionAsset === "USDT" ? f.commission : f.commission * f.price
    fees += feeQuote
    if (f.side === "BUY") {
      held += f.qty - (f.commissionAsset === "BTC" ? f.commission : 0)
      cost += f.qty * f.price + (f.commissionAsset === "USDT" ? f.commission : 0)
    } else {
      realized += f.qty * f.price - feeQuote - cost
      held = 0
      cost = 0
    }
  }
  return { held, cost, realized, fees }
}

const ENV = { STATUS_EVERY: "2 seconds", SIM_SEED: "7", SYMBOLS: "BTCUSDT" }

describe("console: pretty on a terminal, JSON on a pipe", () => {
  it("same events either way; the status line, the summary and /status carry the position book's PnL", async () => {
    // the terminal run: util-linux `script` gives the child a pseudo-terminal
    const pretty = new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("script", ["-qfec", `${process.execPath} bin/autotrader.js run --for 12s`, "/dev/null"], {
        env: Object.fromEntries(
          Object.entries({ ...process.env, ...ENV, HTTP_PORT: "0", STORE_ENABLED: "false", SIM_TICKS_PER_SECOND: "100" }).filter(([k]) => k !== "LOG_FORMAT")
        ),
        stdio: ["ignore", "pipe", "pipe"]
      })
      let out = ""
      child.stdout.on("data", (d) => (out += d))
      child.stderr.on("data", (d) => (out += d))
      child.on("exit", (code) => resolve({ code, out: out.replace(/\r/g, "") }))
    })
    const piped = startCli(["run", "--for", "12s"], { ...ENV, LOG_FORMAT: undefined })
    try {
      // while it runs: /status after the first round trip equals the PnL computed by hand from the logged fills
      const base = await piped.httpBase(60_000)
      await piped.waitFor(/"message":"order filled".*"side":"SELL"/, 60_000)
      let status: { positions: Array<{ symbol: string; realizedPnl: number; qty: number; trades: number }> } | undefined
      for (let i = 0; i < 50; i++) {
        status = await (await fetch(`${base}/status`)).json() as typeof status
        const fillsNow = fillsOf(jsonLines(piped.output()))
        if (status!.positions[0].trades === fillsNow.length) break
        await new Promise((r) => setTimeout(r, 100))
      }
      const fillsAtStatus = fillsOf(jsonLines(piped.output())).slice(0, status!.positions[0].trades)
      expect(fillsAtStatus.some((f) => f.side === "SELL")).toBe(true)
      expect(status!.positions[0].realizedPnl).toBeCloseTo(byHand(fillsAtStatus).realized, 6)
      expect(status!.positions[0].qty).toBeCloseTo(byHand(fillsAtStatus).held, 9)
    } finally {
      await piped.exited
    }
    const { code: prettyCode, out: prettyOut } = await pretty
    expect(await piped.exited).toBe(0)
    expect(prettyCode).toBe(0)

    // JSON: every line one object
    const lines = piped.stdout().split("\n").filter((l) => l.trim() !== "")
    for (const l of lines) expect(() => JSON.parse(l), l).not.toThrow()
    const json = jsonLines(piped.stdout())
    const messages = new Set(json.map((l) => l.message))
    for (const m of ["market data connecting", "order filled", "status", "pipeline drained", "summary"]) expect(messages, m).toContain(m)

    // pretty: aligned "time level stage text" lines, no JSON, the same events in words
    const prettyLines = prettyOut.split("\n").filter((l) => l.trim() !== "")
    expect(prettyLines.length).toBeGreaterThan(5)
    for (const l of prettyLines) {
      expect(l.startsWith("{"), l).toBe(false)
      expect(l, l).toMatch(/^(\x1b\[\d+m)?\d\d:\d\d:\d\d\.\d{3} (INFO |WARN |ERROR|DEBUG) [ a-z-]{8} \S/)
    }
    expect(prettyOut).toMatch(/market data connecting/)
    expect(prettyOut).toMatch(/BTCUSDT BUY 0\.\d{5} filled at \d+\.\d{2}, fee [\d.]+ BTC/)
    expect(prettyOut).toMatch(/BTCUSDT +[\d.]+ +ticks\/s {2}last \d+\.\d{2} {2}pos (flat|0\.\d{5} BTC @ \d+\.\d{2}) {2}uPnL [-+]?[\d.]+ USDT {2}rPnL [-+]?[\d.]+ USDT {2}orders \d+/)
    expect(prettyOut).toMatch(/pipeline drained/)
    expect(prettyOut).toMatch(/summary: [\d.]+s, ticks \d+, candidates \d+, approved \d+, rejected \d+.*orders \d+, fills \d+, realized [-+]?[\d.]+ USDT, fees [\d.]+ USDT/)
    // at Info the per-candidate lines are folded into the status line on the console, kept in JSON
    expect(prettyOut).not.toMatch(/signal at/)
    expect(messages).toContain("candidate")

    // the summary carries the position book's PnL and fees, computed here by hand from every fill
    const fills = fillsOf(json)
    const hand = byHand(fills)
    const summary = json.find((l) => l.message === "summary")!
    expect(summary.fills).toBe(fills.length)
    expect(summary.realizedPnl as number).toBeCloseTo(hand.realized, 6)
    expect(summary.fees as number).toBeCloseTo(hand.fees, 6)
    const open = summary.open as Array<{ qty: number; last: number; unrealizedPnl: number }>
    if (hand.held > 1e-12) {
      expect(open[0].qty).toBeCloseTo(hand.held, 9)
      expect(open[0].unrealizedPnl).toBeCloseTo(hand.held * open[0].last - hand.cost, 6)
    } else expect(open).toEqual([])

    // a status line printed well after the fill before it carries the same realized PnL
    const statusLines = json.filter((l) => l.message === "status")
    const settled = statusLines.filter((s) => {
      const at = Date.parse(s.timestamp)
      const before = fills.filter((f) => f.at <= at)
      const lastBefore = before.at(-1)?.at ?? 0
      const nextAfter = fills.find((f) => f.at > at)?.at ?? Number.POSITIVE_INFINITY
      return at - lastBefore > 500 && nextAfter - at > 100
    })
    expect(settled.length).toBeGreaterThan(0)
    for (const s of settled) {
      const before = fills.filter((f) => f.at <= Date.parse(s.timestamp))
      expect(s.realizedPnl as number).toBeCloseTo(byHand(before).realized, 6)
      expect(s.position as number).toBeCloseTo(byHand(before).held, 9)
    }
  }, 150_000)
})

describe("GET /ready", () => {
  it("503 naming the market-data socket while it is down, 200 again after the reconnect", async () => {
    // a separate simulated exchange that cuts every market-data connection after 3–4 s
    const sim = startCli(["sim-exchange", "--port", "0", "--rate", "50", "--faults", "cut=3s-4s"], { LOG_FORMAT: "json" })
    try {
      const m = await sim.waitFor(/"ws":"(ws:\/\/[^"]+)","rest":"(http:\/\/[^"]+)"/, 60_000)
      const run = startCli(["run", "--for", "60s"], { EXCHANGE_WS_URL: m[1], EXCHANGE_REST_URL: m[2], LOG_FORMAT: "json" })
      try {
        const base = await run.httpBase(60_000)
        const ready = async () => {
          const res = await fetch(`${base}/ready`)
          return { status: res.status, body: await res.json() as { waitingFor: Array<string>; checks: Record<string, { ok: boolean }> } }
        }
        const until = async (f: (r: Awaited<ReturnType<typeof ready>>) => boolean, what: string) => {
          const deadline = Date.now() + 40_000
          while (Date.now() < deadline) {
            const r = await ready()
            if (f(r)) return r
            await new Promise((resolve) => setTimeout(resolve, 25))
          }
          throw new Error(`/ready never ${what}:\n${run.output().slice(-2000)}`)
        }
        const up = await until((r) => r.status === 200, "turned 200")
        expect(up.body.checks["market-data"].ok).toBe(true)
        expect(up.body.checks["exchange-rest"].ok).toBe(true)
        const down = await until((r) => r.status === 503, "turned 503 on the cut")
        expect(down.body.waitingFor.join("; ")).toMatch(/market-data: (disconnected|connecting)/)
        await until((r) => r.status === 200, "came back to 200 after the reconnect")
        expect(run.output()).toMatch(/"message":"market data reconnecting"/)
      } finally {
        await run.stop()
      }
    } finally {
      await sim.stop()
    }
  }, 150_000)
})
