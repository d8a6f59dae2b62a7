/**
 * /metrics by Prometheus's conventions, during a real run: the exposition parses strictly, every family passes
 * promtool's lint rules and ours, the counters and latency histograms of the pipeline move, and, where promtool
 * is installed (CI installs it), `promtool check metrics` itself reports nothing.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { LATENCY_BUCKETS_SECONDS } from "../../src/observability/Metrics.ts"
import { startCli } from "../support/cli.ts"
import { type Family, parseExposition, projectLint, promlint } from "./promtext.ts"

const promtool = spawnSync("promtool", ["--version"], { encoding: "utf8" }).status === 0

const total = (families: Map<string, Family>, name: string, sampleName = name): number =>
  (families.get(name)?.samples ?? []).filter((s) => s.name === sampleName).reduce((a, s) => a + s.value, 0)

describe("promtext (the strict parser and the lint rules themselves)", () => {
  it("parses a valid exposition and refuses malformed ones", () => {
    const ok = [
      "# HELP a_total A counter",
      "# TYPE a_total counter",
      "a_total{symbol=\"BTC\\\"USDT\"} 3",
      "# HELP b_seconds A latency",
      "# TYPE b_seconds histogram",
      "b_seconds_bucket{le=\"0.1\"} 1",
      "b_seconds_bucket{le=\"+Inf\"} 2",
      "b_seconds_sum 0.3",
      "b_seconds_count 2",
      ""
    ].join("\n")
    const families = parseExposition(ok)
    expect(families.get("a_total")?.samples[0].labels.symbol).toBe("BTC\"USDT")
    expect(total(families, "b_seconds", "b_seconds_count")).toBe(2)
    expect(() => parseExposition(ok.trimEnd())).toThrow(/line feed/)
    expect(() => parseExposition(ok.replace("b_seconds_count 2", "b_seconds_count 3"))).toThrow(/\+Inf bucket/)
    expect(() => parseExposition(ok.replace("a_total{symbol", "a_total{9symbol"))).toThrow(/label name/)
    expect(() => parseExposition(`${ok}# TYPE a_total counter\n`)).toThrow(/not grouped|second TYPE/)
    expect(() => parseExposition("x 1 abc\n")).toThrow(/timestamp/)
  })

  it("flags what promtool flags", () => {
    const lint = (text: string) => [...parseExposition(text).values()].flatMap(promlint)
    expect(lint("# HELP x_tick_ms h\n# TYPE x_tick_ms histogram\nx_tick_ms_bucket{le=\"+Inf\"} 0\nx_tick_ms_sum 0\nx_tick_ms_count 0\n"))
      .toContain("metric names should not contain abbreviated units")
    expect(lint("# HELP x_sent h\n# TYPE x_sent counter\nx_sent 1\n")).toContain(`counter metrics should have "_total" suffix`)
    expect(lint("# HELP x_wait_milliseconds h\n# TYPE x_wait_milliseconds gauge\nx_wait_milliseconds 1\n"))
      .toContain(`use base unit "seconds" instead of "milliseconds"`)
    expect(lint("# TYPE x_up gauge\nx_up 1\n")).toContain("no help text")
    expect(lint("# HELP x_lag_total h\n# TYPE x_lag_total gauge\nx_lag_total 1\n")).toContain(`non-counter metrics should not have "_total" suffix`)
  })
})

describe("GET /metrics during a run", () => {
  it("parses strictly, passes the lint rules, and its counters and latency histograms move", async () => {
    const run = startCli(["run", "--for", "40s"], { LOG_FORMAT: "json" })
    try {
      const base = await run.httpBase()
      await run.waitFor(/"message":"autotrader running"/)
      const before = parseExposition(await (await fetch(`${base}/metrics`)).text())
      await run.waitFor(/"message":"order filled"/, 35_000)
      const res = await fetch(`${base}/metrics`)
      expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/)
      const text = await res.text()
      const after = parseExposition(text)

      const problems = [...after.values()].flatMap((f) => [...promlint(f), ...projectLint(f, LATENCY_BUCKETS_SECONDS)].map((p) => `${f.name}: ${p}`))
      expect(problems).toEqual([])

      expect(total(after, "ingest_ticks_total")).toBeGreaterThan(total(before, "ingest_ticks_total"))
      expect(total(after, "signals_candidates_total")).toBeGreaterThan(0)
      expect(total(after, "orders_filled_total")).toBeGreaterThan(0)
      for (const name of ["signals_tick_to_candidate_seconds", "risk_candidate_to_decision_seconds", "orders_decision_to_ack_seconds", "orders_tick_to_ack_seconds"]) {
        expect(after.get(name)?.type, name).toBe("histogram")
        expect(total(after, name, `${name}_count`), name).toBeGreaterThan(0)
        // base units: a tick → order on loopback takes well under 10 s, so a value in ms would show up here
        expect(total(after, name, `${name}_sum`) / total(after, name, `${name}_count`), name).toBeLessThan(10)
      }
      // consumer lag per group and topic (sampled every 5 s)
      let lag = after.get("bus_consumer_lag_messages")
      for (let i = 0; i < 100 && lag === undefined; i++) {
        await new Promise((r) => setTimeout(r, 200))
        lag = parseExposition(await (await fetch(`${base}/metrics`)).text()).get("bus_consumer_lag_messages")
      }
      expect(lag?.type).toBe("gauge")
      expect(lag!.samples.map((s) => `${s.labels.group}/${s.labels.topic}`)).toEqual(expect.arrayContaining(["signals/market.raw", "risk/signals.candidate", "orders/signals.approved"]))
      const filled = after.get("orders_filled_total")!.samples[0]
      expect(filled.labels).toMatchObject({ symbol: "BTCUSDT" })
      expect(["BUY", "SELL"]).toContain(filled.labels.side)

      if (promtool) {
        const check = spawnSync("promtool", ["check", "metrics"], { input: text, encoding: "utf8" })
        expect(`${check.stdout}${check.stderr}`.trim()).toBe("")
        expect(check.status).toBe(0)
      }
    } finally {
      await run.stop()
    }
  }, 90_000)

  it.skipIf(!promtool)("promtool itself rejects what the JS rules reject (the two stay in step)", () => {
    const bad = "# HELP x_tick_to_fill_ms h\n# TYPE x_tick_to_fill_ms gauge\nx_tick_to_fill_ms 1\n# HELP x_sent h\n# TYPE x_sent counter\nx_sent 1\n"
    const check = spawnSync("promtool", ["check", "metrics"], { input: bad, encoding: "utf8" })
    const out = `${check.stdout}${check.stderr}`
    const js = [...parseExposition(bad).values()].flatMap(promlint)
    for (const finding of js) expect(out).toContain(finding)
    expect(out).toContain("abbreviated units")
  })
})
