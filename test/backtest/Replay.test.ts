import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import { readFile } from "node:fs/promises"
import { join } from "node:path"
import { Bus } from "../../src/bus/Bus.ts"
import { startStages } from "../../src/runtime/Supervisor.ts"
import type { Tick } from "../../src/domain/Messages.ts"
import { MarketRaw, SignalsCandidate } from "../../src/domain/Topics.ts"
import type { RiskLimits } from "../../src/risk/RiskGate.ts"
import * as SimExchangeServer from "../../src/sim/SimExchangeServer.ts"
import { readTicks } from "../../src/storage/ParquetSource.ts"
import { loadSavedRules } from "../../src/backtest/ExchangeRules.ts"
import { makeReplayer, replay } from "../../src/backtest/Replay.ts"
import { Exchange } from "../../src/exchange/Exchange.ts"
import { exchangeInfoJson } from "../../src/storage/ExchangeInfoFiles.ts"
import { defaultStoreOptions, runStore, STORE_GROUP } from "../../src/storage/StoreService.ts"
import * as TickStore from "../../src/storage/TickStore.ts"
import { allStages, servicesFor } from "../support/pipeline.ts"
import { columnsOf, mkTick, tempDir } from "../storage/support.ts"

const T = Date.UTC(2024, 2, 1, 12) // ticks one second apart from 12:00:01 UTC

/**
 * 117 ticks whose crossovers (from the signal rule: MA10 vs MA30 of trade prices) fall at:
 *   #32 SHORT @50  → rejected: no position (spot, long-only)
 *   #63 LONG  @60  → open
 *   #64 SHORT @20  → close: a loss
 *   #95 LONG  @30  → open (32 s after the previous open: under the 2-per-minute cap)
 *   #114 SHORT @35 → close: a gain
 */
const prices: Array<number> = []
const flat = (p: number, n: number) => {
  for (let i = 0; i < n; i++) prices.push(p)
}
flat(100, 30), prices.push(110, 50), flat(50, 30), prices.push(60, 20), flat(20, 30), prices.push(30)
for (let i = 1; i <= 10; i++) prices.push(30 + 10 * i) // #96..#105: 40 … 130
flat(35, 12) // #106..#117

const fixedTicks = (): Array<Tick> => prices.map((p, i) => mkTick("BTCUSDT", i + 1, T + (i + 1) * 1000, p, i % 3 === 0 ? "SELL" : "BUY"))
const limits: RiskLimits = { orderQty: 1, maxPosition: 10, maxTradesPerMinute: 2, maxTradesPerHour: 20 }

/** Writes ticks as stored files (two files; tick #50 stored twice, as after a redelivery). */
const storeFixed = (dir: string) =>
  Effect.scoped(
    Effect.gen(function*() {
      const store = yield* TickStore.make({ dataDir: dir })
      const ticks = fixedTicks()
      const toColumns = (ts: ReadonlyArray<Tick>) => columnsOf("BTCUSDT", ts)
      const key = TickStore.partitionOf("BTCUSDT", T)
      yield* store.write(key, toColumns(ticks.slice(0, 50)))
      yield* store.write(key, toColumns(ticks.slice(49)))
    })
  )

/** Runs the live stages (ingest, signals, risk, orders, store) against the simulator, drains, and replays the store. */
const liveRun = (symbols: ReadonlyArray<string>, ticksPerSecond: number) =>
  Effect.gen(function*() {
    const dir = yield* tempDir()
    const sim = yield* SimExchangeServer.make({ symbols, seed: 11, ticksPerSecond })
    const live = yield* Effect.scoped(
      Effect.gen(function*() {
        const bus = yield* Bus
        const { drain } = yield* startStages([
          ...allStages(symbols),
          { name: "store", run: runStore({ ...defaultStoreOptions, dataDir: dir }), inputs: [[MarketRaw, STORE_GROUP]] }
        ])
        yield* Effect.sleep("3 seconds")
        yield* drain
        const end = (yield* bus.endOffsets(SignalsCandidate)).get(0) ?? 0
        const ticks = (yield* bus.endOffsets(MarketRaw)).get(0) ?? 0
        const published = end === 0
          ? []
          : yield* bus.subscribe(SignalsCandidate, { group: "determinism", ephemeral: true }).pipe(Stream.take(end), Stream.runCollect)
        const exchange = yield* Exchange
        const rules = yield* exchange.exchangeInfo(symbols)
        return { candidates: published.map((d) => d.value), ticks, rules }
      }).pipe(Effect.provide(servicesFor(sim)))
    )
    // the store saved the day's exchange filters beside the ticks; replay decodes them to the rules live used
    const saved = yield* loadSavedRules(join(dir, "raw"))
    assert.strictEqual(saved.dir, join(dir, "exchangeInfo"))
    assert.strictEqual(saved.days.size, 1)
    const day = [...saved.days.values()][0]
    // same filters (decimals compared by value: the saved text is normalized)
    for (const r of live.rules) assert.strictEqual(exchangeInfoJson([day.get(r.symbol)!]), exchangeInfoJson([r]))
    // the store's scope is closed: every file is complete
    const replayed: Array<string> = []
    const { summary } = yield* replay(dir, {}, limits, { fee: 0.001, slippageBps: 0 }, {
      observer: { onCandidate: (c) => replayed.push(c.id) }
    })
    return { ...live, ids: live.candidates.map((c) => c.id), replayed, replayedTicks: summary.ticks }
  })

describe("replay", () => {
  it.effect("summary figures on a small fixed tick file, computed by hand", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* storeFixed(dir)
      const { summary: s } = yield* replay(join(dir, "raw"), {}, limits, { fee: 0.001, slippageBps: 0 })
      assert.strictEqual(s.ticks, 117)
      assert.strictEqual(s.duplicates, 1)
      assert.strictEqual(s.candidates, 5)
      assert.strictEqual(s.approved, 4)
      assert.strictEqual(s.rejected, 1)
      assert.strictEqual(s.trades, 4)
      assert.strictEqual(s.roundTrips, 2)
      assert.strictEqual(s.wins, 1)
      assert.strictEqual(s.winRate, 0.5)
      // trip 1: buy 60 + fee 0.06 = 60.06; sell 20 − fee 0.02 = 19.98  → −40.08
      // trip 2: buy 30 + fee 0.03 = 30.03; sell 35 − fee 0.035 = 34.965 → +4.935
      assert.closeTo(s.realizedPnl, -40.08 + 4.935, 1e-9)
      assert.closeTo(s.fees, 0.06 + 0.02 + 0.03 + 0.035, 1e-12)
      // equity peaks at #105 (price 130, open from 30.03): −40.08 + 130 − 30.03 = 59.89;
      // lowest after it: after the last close, −35.145 → drawdown 59.89 + 35.145 = 95.035
      assert.closeTo(s.maxDrawdown, 95.035, 1e-9)
      assert.strictEqual(s.firstTs, T + 1000)
      assert.strictEqual(s.lastTs, T + 117_000)
    }))

  it.effect("slippage moves fills against us, fees follow the fill price; --from/--to and --symbols filter", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* storeFixed(dir)
      const { summary: s } = yield* replay(dir, {}, limits, { fee: 0.001, slippageBps: 10 })
      // buys at price × 1.001, sells at price × 0.999, fee 0.1 % of each
      const trip1 = 20 * 0.999 * 0.999 - 60 * 1.001 * 1.001
      const trip2 = 35 * 0.999 * 0.999 - 30 * 1.001 * 1.001
      assert.closeTo(s.realizedPnl, trip1 + trip2, 1e-9)
      assert.closeTo(s.fees, (60 * 1.001 + 20 * 0.999 + 30 * 1.001 + 35 * 0.999) * 0.001, 1e-12)
      const window = yield* replay(dir, { from: T + 60_000, to: T + 100_000 }, limits, { fee: 0, slippageBps: 0 })
      assert.strictEqual(window.summary.ticks, 40) // #60 … #99
      const none = yield* replay(dir, { symbols: ["ETHUSDT"] }, limits, { fee: 0, slippageBps: 0 })
      assert.strictEqual(none.summary.ticks, 0)
    }))

  it.effect("reads in (ts, trade_id) order across files and drops the duplicate", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir()
      yield* storeFixed(dir)
      const got = yield* readTicks(dir).pipe(Stream.runCollect)
      assert.deepStrictEqual(got, fixedTicks())
    }))

  it.live("determinism: replaying what a live run stored yields exactly the candidates it published, same ids, same order", () =>
    Effect.gen(function*() {
      const live = yield* liveRun(["BTCUSDT"], 400)
      assert.isAbove(live.ticks, 500)
      assert.strictEqual(live.replayedTicks, live.ticks)
      assert.isAbove(live.ids.length, 5, "the run must have produced candidates for this test to mean anything")
      assert.deepStrictEqual(live.replayed, live.ids)
    }), { timeout: 60_000 })

  it.live("determinism across symbols: same candidates, same order per symbol; same-millisecond ties ordered by trade id", () =>
    Effect.gen(function*() {
      const live = yield* liveRun(["BTCUSDT", "ETHUSDT"], 300)
      assert.strictEqual(live.replayedTicks, live.ticks)
      assert.isAbove(live.ids.length, 5)
      const bySymbol = (ids: ReadonlyArray<string>, symbol: string) => ids.filter((id) => id.startsWith(`${symbol}-`))
      for (const symbol of ["BTCUSDT", "ETHUSDT"]) assert.deepStrictEqual(bySymbol(live.replayed, symbol), bySymbol(live.ids, symbol))
      // live order across symbols within one millisecond is the order frames arrived in, which (ts, trade_id) cannot
      // know; everything else is identical
      const canonical = [...live.candidates].sort((a, b) => a.ts - b.ts || a.tickTradeId - b.tickTradeId || a.symbol.localeCompare(b.symbol))
      assert.deepStrictEqual(live.replayed, canonical.map((c) => c.id))
    }), { timeout: 60_000 })

  it("makeReplayer is pure: the same ticks give the same summary", () => {
    const a = makeReplayer(limits, { fee: 0.001, slippageBps: 5 })
    const b = makeReplayer(limits, { fee: 0.001, slippageBps: 5 })
    for (const t of fixedTicks()) a.step(t), b.step(t)
    assert.deepStrictEqual(a.summary(), b.summary())
  })
})
