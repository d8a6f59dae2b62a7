import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { join } from "node:path"
import type { Tick } from "../../src/domain/Messages.ts"
import { buildDataset, META } from "../../src/ml/Dataset.ts"
import { duck, numericColumns, parquetMetadata, rows } from "../../src/ml/Duck.ts"
import { arrayHistory, compile, FEATURES, SPEC_HASH } from "../../src/ml/FeatureSpec.ts"
import { featuresOf, initialSignalState, stepSignal } from "../../src/signals/SignalWorker.ts"
import { randomWalk, T0, tempDir, writeStore } from "./support.ts"

/** 35 trades of TST, one a second, price 100, 101, …, 134; size 1, 2, 3, 1, …; taker BUY on even trades. */
const ladder: Array<Tick> = Array.from({ length: 35 }, (_, i) => ({
  symbol: "TST",
  price: 100 + i,
  size: 1 + (i % 3),
  side: i % 2 === 0 ? "BUY" : "SELL",
  tradeId: 500 + i,
  ts: T0 + i * 1000,
  receivedAt: T0 + i * 1000 + 5
}))

const readAll = (path: string) =>
  Effect.scoped(Effect.gen(function*() {
    const c = yield* duck(1)
    const rs = yield* rows(c, "read", `SELECT *, epoch_ms(ts)::DOUBLE AS ms FROM read_parquet('${path}') ORDER BY ts, symbol, trade_id`)
    const meta = yield* parquetMetadata(c, path)
    const types = yield* rows(c, "read", `SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM read_parquet('${path}'))`)
    return { rows: rs, meta, types }
  }))

const close = (a: number, b: number, what: string, tol = 1e-9) =>
  assert.isTrue(Math.abs(a - b) <= tol * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`)

describe("dataset", () => {
  it.effect("features and labels of a small fixed tick file equal hand-computed values", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-ds-")
      // one redelivered tick (stored twice) must not count twice
      yield* writeStore(dir, [...ladder, ladder[20]])
      const out = join(dir, "ds.parquet")
      const result = yield* buildDataset({ storeDir: dir, out, horizonMs: 3000 })
      const { rows: rs, meta, types } = yield* readAll(out)
      // trades 30..35 (1-based) have MA30; the horizon (3 s) must end by the last trade (index 34): indices 29..31
      assert.strictEqual(result.rows, 3)
      assert.deepStrictEqual(rs.map((r) => Number(r.trade_id)), [529, 530, 531])
      assert.strictEqual(types.find((t) => t.column_name === "ts")?.column_type, "TIMESTAMP")
      rs.forEach((r, k) => {
        const i = 29 + k
        const p = 100 + i
        assert.strictEqual(r.symbol, "TST")
        assert.strictEqual(Number(r.ms), T0 + i * 1000)
        close(Number(r.price), p, "price")
        close(Number(r.ma10), p - 4.5, "ma10") // mean of p-9 … p
        close(Number(r.ma30), p - 14.5, "ma30")
        close(Number(r.delta), 1, "delta")
        close(Number(r.price_vs_ma30), 14.5 / (p - 14.5), "price_vs_ma30")
        close(Number(r.ma_spread), 10 / (p - 14.5), "ma_spread")
        close(Number(r.ret1), p / (p - 1) - 1, "ret1")
        close(Number(r.ret10), p / (p - 10) - 1, "ret10")
        close(Number(r.ret29), p / (p - 29) - 1, "ret29")
        const lr = Array.from({ length: 29 }, (_, j) => Math.log((p - j) / (p - j - 1)))
        const m = lr.reduce((a, b) => a + b, 0) / 29
        close(Number(r.vol29), Math.sqrt(lr.reduce((a, b) => a + (b - m) ** 2, 0) / 29), "vol29")
        // sizes over the last 30 trades: ten each of 1, 2, 3 → mean 2
        close(Number(r.rel_size), (1 + (i % 3)) / 2, "rel_size")
        let buyVol = 0
        let vol = 0
        for (let j = i - 29; j <= i; j++) {
          vol += 1 + (j % 3)
          if (j % 2 === 0) buyVol += 1 + (j % 3)
        }
        close(Number(r.imbalance30), (2 * buyVol - vol) / vol, "imbalance30")
        close(Number(r.span30_s), 29, "span30_s")
        close(Number(r.tod_sin), Math.sin((2 * Math.PI * (i * 1000)) / 86_400_000), "tod_sin")
        close(Number(r.tod_cos), Math.cos((2 * Math.PI * (i * 1000)) / 86_400_000), "tod_cos")
        close(Number(r.fwd_return), 3 / p, "fwd_return")
        assert.strictEqual(Number(r.label), 1)
      })
      assert.strictEqual(meta[META.specHash], SPEC_HASH)
      assert.strictEqual(meta[META.horizonMs], "3000")
      assert.strictEqual(meta[META.every], "tick")
      assert.deepStrictEqual(JSON.parse(meta[META.spec]).features.map((f: { name: string }) => f.name), FEATURES.map((f) => f.name))
      const source = JSON.parse(meta[META.source])
      assert.strictEqual(source.firstTick, T0)
      assert.strictEqual(source.lastTick, T0 + 34_000)
      assert.strictEqual(source.ticks, 35)
    }))

  it.effect("label: the last trade at or before ts + horizon (ties on ts: the higher trade id); flat → 0, down → 0", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-ds-")
      const ticks: Array<Tick> = Array.from({ length: 30 }, (_, i) => ({ ...ladder[0], price: 100, tradeId: 1 + i, ts: T0 + i * 1000 }))
      // after trade 30 (t = 29 s): t = 30.5 s two trades 99 then 101 (same ms), t = 31 s: 100, t = 40 s: 100
      ticks.push({ ...ladder[0], price: 99, tradeId: 31, ts: T0 + 30_500 })
      ticks.push({ ...ladder[0], price: 101, tradeId: 32, ts: T0 + 30_500 })
      ticks.push({ ...ladder[0], price: 100, tradeId: 33, ts: T0 + 31_000 })
      ticks.push({ ...ladder[0], price: 100, tradeId: 34, ts: T0 + 40_000 })
      yield* writeStore(dir, ticks)
      const out = join(dir, "ds.parquet")
      yield* buildDataset({ storeDir: dir, out, horizonMs: 1500 })
      const { rows: rs } = yield* readAll(out)
      const byId = new Map(rs.map((r) => [Number(r.trade_id), r]))
      // trade 30 at 29 s: last at or before 30.5 s is trade 32 (101)
      close(Number(byId.get(30)!.fwd_return), 0.01, "tie")
      assert.strictEqual(Number(byId.get(30)!.label), 1)
      // trade 31/32 at 30.5 s: last at or before 32 s is trade 33 (100)
      close(Number(byId.get(31)!.fwd_return), 100 / 99 - 1, "up")
      close(Number(byId.get(32)!.fwd_return), 100 / 101 - 1, "down")
      assert.strictEqual(Number(byId.get(32)!.label), 0)
      // trade 33 at 31 s: at or before 32.5 s is itself → 0 return → label 0
      close(Number(byId.get(33)!.fwd_return), 0, "flat")
      assert.strictEqual(Number(byId.get(33)!.label), 0)
      // trade 34 is the last: its horizon passes the end
      assert.isFalse(byId.has(34))
    }))

  it.effect("SQL and TypeScript compute the same features; ma10/ma30 equal the signal worker's", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-ds-")
      const ticks = randomWalk(["AAAUSDT", "BBBUSDT"], 400, 11, 250)
      yield* writeStore(dir, ticks)
      const out = join(dir, "ds.parquet")
      yield* buildDataset({ storeDir: dir, out, horizonMs: 5000 })
      const names = FEATURES.map((f) => f.name)
      const ds = yield* Effect.scoped(Effect.gen(function*() {
        const c = yield* duck(1)
        return yield* numericColumns(c, "read", `SELECT trade_id, ${names.join(", ")} FROM read_parquet('${out}') WHERE symbol = 'BBBUSDT' ORDER BY ts, trade_id`, ["trade_id", ...names])
      }))
      const own = ticks.filter((t) => t.symbol === "BBBUSDT")
      const arrays = { price: own.map((t) => t.price), size: own.map((t) => t.size), buy: own.map((t) => (t.side === "BUY" ? 1 : 0)), t: own.map((t) => t.ts) }
      const evals = FEATURES.map((f) => compile(f.expr))
      const index = new Map(own.map((t, i) => [t.tradeId, i]))
      // the signal worker's averages at each tick, for ma10 / ma30
      const state = initialSignalState()
      const mas = new Map<number, readonly [number, number]>()
      for (const t of own) {
        stepSignal(state, t)
        const f = featuresOf(state, t.symbol)!
        mas.set(t.tradeId, [f.ma10, f.ma30])
      }
      assert.isAbove(ds.length, 300)
      for (let r = 0; r < ds.length; r++) {
        const i = index.get(ds.columns.trade_id[r])!
        const h = arrayHistory(arrays, i)
        evals.forEach((ev, k) => close(ds.columns[names[k]][r], ev(h, 0), `${names[k]} at ${i}`))
        close(ds.columns.ma10[r], mas.get(ds.columns.trade_id[r])![0], "worker ma10")
        close(ds.columns.ma30[r], mas.get(ds.columns.trade_id[r])![1], "worker ma30")
      }
    }))

  it.effect("--every: one row per bar, at the bar's last tick", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("ml-ds-")
      yield* writeStore(dir, randomWalk(["AAAUSDT"], 600, 3, 250)) // 4 ticks a second for 150 s
      const out = join(dir, "ds.parquet")
      const r = yield* buildDataset({ storeDir: dir, out, horizonMs: 2000, everyMs: 10_000 })
      const { rows: rs, meta } = yield* readAll(out)
      assert.strictEqual(meta[META.every], "10000")
      // bars 0..14; bar 0's last tick (9.75 s) is trade 40, so it counts; the last bar's horizon passes the end
      assert.strictEqual(r.rows, 14)
      for (const row of rs) assert.strictEqual((Number(row.ms) - T0) % 10_000, 9_750)
    }))
})
