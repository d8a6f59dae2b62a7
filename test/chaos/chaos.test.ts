/**
 * The short chaos run (the long one is `npm run chaos`): the five stages as separate processes over Kafka, the order
 * manager SIGKILLed several times (half of the kills within 400 ms of an order placement) and restarted, a REST
 * fault storm on order placements meanwhile (5xx with and without execution, responses lost after execution,
 * responses slower than the client's timeout, 429/418 with Retry-After). Then: zero duplicates, zero lost, sides
 * alternate at the exchange, positions equal the exchange's balances.
 * It runs on the suite's broker under a topic prefix of its own (a broker restart is in the long run; it costs more
 * than this test's budget).
 */
import { describe, expect, it } from "@effect/vitest"
import { formatReport, runChaos } from "../../scripts/chaos/harness.ts"

const BROKERS = process.env.KAFKA_BROKERS ?? `127.0.0.1:${process.env.KAFKA_PORT ?? "19092"}`

describe("chaos (short)", () => {
  it("order manager killed mid-order under a REST fault storm: zero duplicates, zero lost", async () => {
    const report = await runChaos({
      kills: 3,
      durationMs: 240_000, // a bound: on an idle machine the three kills take about 30 s
      brokers: BROKERS,
      killWeights: { orders: 1 },
      killGapMs: [3000, 5000],
      faultRate: 0.6,
      settleMs: 120_000,
      log: () => {}
    })
    const text = formatReport(report)
    console.log(text)
    expect(report.violations, text).toEqual([])
    expect(report.kills.orders ?? 0, text).toBe(3)
    expect(report.approvals, text).toBeGreaterThan(0)
    expect(report.duplicates).toBe(0)
    expect(report.lost).toBe(0)
  }, 600_000) // idle machine: about 90 s; a loaded 2-core machine needs minutes per process start
})
