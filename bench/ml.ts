/**
 * ML benchmarks, as scenario functions for bench/run.ts (each returns plain numbers), or alone:
 *
 *   node bench/ml.ts [dataset|train|scoring|all]   prints JSON
 *
 * - dataset: `autotrader dataset` over a 2M-tick Hive tree (2 symbols, one tick every 3 ms): rows/s.
 * - train: walk-forward (4 folds) + final fit of the logistic model on 1M rows × 11 features: seconds.
 * - scoring: per crossover candidate, features from the live history + one onnxruntime run: p50/p99 µs.
 */
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Tick } from "../src/domain/Messages.ts"
import { buildDataset } from "../src/ml/Dataset.ts"
import { DEFAULT_TRAINING_FEATURES, SPEC_HASH } from "../src/ml/FeatureSpec.ts"
import { makeModelGate } from "../src/ml/ModelGate.ts"
import { logisticToOnnx, writeModel } from "../src/ml/Onnx.ts"
import { loadScorer } from "../src/ml/Scorer.ts"
import { trainOn } from "../src/ml/Train.ts"
import { initialSignalState, stepSignal } from "../src/signals/SignalWorker.ts"
import * as TickStore from "../src/storage/TickStore.ts"

const seeded = (seed: number) => {
  let s = seed >>> 0
  return () => (s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0) / 4_294_967_296
}

const T0 = Date.UTC(2024, 0, 1)

/** Writes `n` ticks (two symbols, interleaved, one every 3 ms) as a Hive tick tree under `dir`. */
export const writeTickTree = (dir: string, n: number) =>
  Effect.scoped(
    Effect.gen(function*() {
      const store = yield* TickStore.make({ dataDir: dir })
      const rand = seeded(42)
      const symbols = ["BTCUSDT", "ETHUSDT"] as const
      const prices = [42_000, 2_250]
      const CHUNK = 100_000
      for (let k = 0; k < symbols.length; k++) {
        const per = Math.floor(n / symbols.length)
        for (let base = 0; base < per; base += CHUNK) {
          const len = Math.min(CHUNK, per - base)
          const cols = { ts: new Float64Array(len), price: new Float64Array(len), size: new Float64Array(len), buy: new Float64Array(len), tradeId: new Float64Array(len), receivedAt: new Float64Array(len) }
          for (let i = 0; i < len; i++) {
            prices[k] *= 1 + (rand() - 0.5) * 0.001
            const ts = T0 + (base + i) * 6 + k * 3
            cols.ts[i] = ts
            cols.price[i] = Math.round(prices[k] * 100) / 100
            cols.size[i] = Math.round(rand() * 1000) / 1000 + 0.001
            cols.buy[i] = rand() < 0.5 ? 1 : 0
            cols.tradeId[i] = 1_000_000 + base + i
            cols.receivedAt[i] = ts + 2
          }
          yield* store.write(TickStore.partitionOf(symbols[k], cols.ts[0]), { symbol: symbols[k], length: len, ...cols })
        }
      }
    })
  )

export interface DatasetBench {
  readonly ticks: number
  readonly rows: number
  readonly seconds: number
  readonly rowsPerSec: number
}

/** Builds a dataset (per tick, 30 s horizon) from a fresh `ticks`-tick tree. */
export const benchDataset = async (ticks = 2_000_000): Promise<DatasetBench> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-ml-ds-"))
  try {
    await Effect.runPromise(writeTickTree(dir, ticks))
    const started = performance.now()
    const r = await Effect.runPromise(buildDataset({ storeDir: dir, out: join(dir, "ds.parquet"), horizonMs: 30_000 }))
    const seconds = (performance.now() - started) / 1000
    return { ticks: r.ticks, rows: r.rows, seconds, rowsPerSec: r.rows / seconds }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export interface TrainBench {
  readonly rows: number
  readonly features: number
  readonly seconds: number
  readonly accuracy: number
}

/** Walk-forward (4 folds) + the final fit on `rows` synthetic rows with a weak planted signal. */
export const benchTrain = (rows = 1_000_000): TrainBench => {
  const f = DEFAULT_TRAINING_FEATURES.length
  const rand = seeded(7)
  const x = new Float64Array(rows * f)
  const y = new Float64Array(rows)
  const t = new Float64Array(rows)
  for (let i = 0; i < rows; i++) {
    let s = 0
    for (let j = 0; j < f; j++) {
      const v = rand() - 0.5
      x[i * f + j] = v
      s += j < 3 ? v : 0
    }
    y[i] = s + (rand() - 0.5) * 2 > 0 ? 1 : 0
    t[i] = T0 + i * 3
  }
  const started = performance.now()
  const report = trainOn({ matrix: { x, n: rows, f }, y, t, symbols: 2, features: DEFAULT_TRAINING_FEATURES, horizonMs: 30_000, specHash: SPEC_HASH })
  const seconds = (performance.now() - started) / 1000
  return { rows, features: f, seconds, accuracy: report.pooled.accuracy }
}

export interface ScoringBench {
  readonly candidates: number
  readonly p50Micros: number
  readonly p99Micros: number
  readonly maxMicros: number
}

/** Per candidate: features from the live history + one onnxruntime run (batch of 1), as the signal worker does. */
export const benchScoring = async (candidates = 3000): Promise<ScoringBench> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-ml-score-"))
  try {
    const f = DEFAULT_TRAINING_FEATURES.length
    const path = join(dir, "model.onnx")
    const w = Float64Array.from({ length: f }, (_, j) => (j % 3) - 1)
    await Effect.runPromise(
      writeModel(path, logisticToOnnx({ mean: new Float64Array(f), scale: new Float64Array(f).fill(1), weights: w, intercept: 0.1 }), {
        features: [...DEFAULT_TRAINING_FEATURES],
        horizon: 30_000,
        trainedOn: { from: 0, to: 0 },
        specHash: SPEC_HASH
      })
    )
    return await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const scorer = yield* loadScorer(path)
          const gate = makeModelGate(scorer, 0.5)
          const state = initialSignalState()
          const rand = seeded(3)
          let price = 100
          const times: Array<number> = []
          for (let i = 0; times.length < candidates; i++) {
            price *= 1 + (rand() - 0.5) * 0.002
            const tick: Tick = { symbol: "BTCUSDT", price, size: 0.1 + rand(), side: rand() < 0.5 ? "BUY" : "SELL", tradeId: i + 1, ts: T0 + i * 100, receivedAt: T0 + i * 100 }
            gate.observe(tick)
            const c = stepSignal(state, tick)
            if (c === undefined) continue
            const started = performance.now()
            yield* Effect.promise(() => gate.judge([c]))
            times.push((performance.now() - started) * 1000)
          }
          const warm = times.slice(100).sort((a, b) => a - b)
          const q = (p: number) => warm[Math.min(warm.length - 1, Math.floor(p * warm.length))]
          return { candidates: warm.length, p50Micros: q(0.5), p99Micros: q(0.99), maxMicros: warm[warm.length - 1] } satisfies ScoringBench
        })
      )
    )
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (import.meta.main) {
  const which = process.argv[2] ?? "all"
  const out: Record<string, unknown> = {}
  if (which === "scoring" || which === "all") out.scoring = await benchScoring()
  if (which === "train" || which === "all") out.train = benchTrain(Number(process.env.BENCH_TRAIN_ROWS ?? 1_000_000))
  if (which === "dataset" || which === "all") out.dataset = await benchDataset(Number(process.env.BENCH_DATASET_TICKS ?? 2_000_000))
  console.log(JSON.stringify(out, null, 2))
}
