/**
 * ML benchmarks (issue #13). `benchSection(runs)` is bench/run.ts's hook (`--only ml`): each figure beside a floor
 * measured in the same run, interleaved, every measurement in a fresh process (`node bench/ml.ts --child <name>`).
 *
 *   node bench/ml.ts [dataset|train|scoring|all]   the scenarios alone, JSON
 *
 * - dataset: `buildDataset` (what `autotrader dataset` runs) over a 2M-tick Hive tree (2 symbols, one tick every
 *   3 ms), 30 s horizon, one row per tick: rows/s. Floor: one bare DuckDB query over the same tree, reading it,
 *   computing MA10/MA30 windows per symbol and writing Parquet (zstd): the least any per-tick dataset does.
 * - train: walk-forward (4 folds) + final fit of the logistic model on 1M rows × 11 features: seconds. Floor: one
 *   pass of XᵀX over the same matrix (each Newton step of the fit is one weighted such pass, per fold).
 * - scoring: per crossover candidate, features from the live history + the model (as the signal worker does):
 *   p50/p99 µs. Floors on the same feature vectors, interleaved candidate by candidate: a bare standardise + dot
 *   product + sigmoid in TypeScript, and onnxruntime's own `session.run` on the same model file (batch of 1).
 */
import { DuckDBInstance } from "@duckdb/node-api"
import { Effect } from "effect"
import { execFileSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { loadavg, tmpdir } from "node:os"
import { join } from "node:path"
import * as ort from "onnxruntime-node"
import type { Tick } from "../src/domain/Messages.ts"
import { buildDataset } from "../src/ml/Dataset.ts"
import { sqlString, tickFiles } from "../src/ml/Duck.ts"
import { DEFAULT_TRAINING_FEATURES, makeTickHistory, SPEC_HASH } from "../src/ml/FeatureSpec.ts"
import { Z_CLIP } from "../src/ml/Logistic.ts"
import { makeModelGate } from "../src/ml/ModelGate.ts"
import { logisticToOnnx, writeModel } from "../src/ml/Onnx.ts"
import { loadScorer } from "../src/ml/Scorer.ts"
import { trainOn } from "../src/ml/Train.ts"
import { initialSignalState, stepSignal } from "../src/signals/SignalWorker.ts"
import * as TickStore from "../src/storage/TickStore.ts"
import { k, median, pct, ratio, sorted, spread } from "./lib.ts"

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

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const u = process.cpuUsage(since)
  return (u.user + u.system) / 1e6
}

export interface DatasetBench {
  readonly ticks: number
  readonly rows: number
  readonly seconds: number
  readonly rowsPerSec: number
  /** CPU seconds of the process (all DuckDB threads) while building. */
  readonly cpuSeconds: number
}

/** Builds a dataset (per tick, 30 s horizon) from the tick tree in `dir`. */
export const datasetRun = async (dir: string): Promise<DatasetBench> => {
  const out = mkdtempSync(join(tmpdir(), "bench-ml-out-"))
  try {
    const cpu = process.cpuUsage()
    const started = performance.now()
    const r = await Effect.runPromise(buildDataset({ storeDir: dir, out: join(out, "ds.parquet"), horizonMs: 30_000 }))
    const seconds = (performance.now() - started) / 1000
    return { ticks: r.ticks, rows: r.rows, seconds, rowsPerSec: r.rows / seconds, cpuSeconds: cpuSeconds(cpu) }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

/** Floor: one bare DuckDB query over the same tree: read, MA10/MA30 per symbol, Parquet (zstd) out. */
export const datasetFloor = async (dir: string): Promise<DatasetBench> => {
  const out = mkdtempSync(join(tmpdir(), "bench-ml-out-"))
  try {
    const cpu = process.cpuUsage()
    const started = performance.now()
    const files = await Effect.runPromise(tickFiles(dir))
    const instance = await DuckDBInstance.create(":memory:")
    const c = await instance.connect()
    const w = (n: number) => `avg(price) OVER (PARTITION BY symbol ORDER BY ts, trade_id ROWS BETWEEN ${n - 1} PRECEDING AND CURRENT ROW)`
    const file = join(out, "floor.parquet")
    await c.run(
      `COPY (SELECT symbol, ts, trade_id, price, ${w(10)} AS ma10, ${w(30)} AS ma30 FROM read_parquet([${files.map(sqlString).join(", ")}]))` +
        ` TO ${sqlString(file)} (FORMAT parquet, COMPRESSION zstd)`
    )
    const rows = Number((await c.runAndReadAll(`SELECT count(*) FROM read_parquet(${sqlString(file)})`)).getRows()[0][0])
    c.closeSync()
    instance.closeSync()
    const seconds = (performance.now() - started) / 1000
    return { ticks: rows, rows, seconds, rowsPerSec: rows / seconds, cpuSeconds: cpuSeconds(cpu) }
  } finally {
    rmSync(out, { recursive: true, force: true })
  }
}

/** Builds a dataset from a fresh `ticks`-tick tree (the scenario alone). */
export const benchDataset = async (ticks = 2_000_000): Promise<DatasetBench> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-ml-ds-"))
  try {
    await Effect.runPromise(writeTickTree(dir, ticks))
    return await datasetRun(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

export interface TrainBench {
  readonly rows: number
  readonly features: number
  readonly seconds: number
  /** CPU seconds of the process meanwhile (the machine is shared: wall time moves with the load). */
  readonly cpuSeconds: number
  readonly accuracy: number
}

/** `rows` synthetic rows × the default training features, with a weak planted signal (same seed every time). */
const trainMatrix = (rows: number) => {
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
  return { x, y, t, f }
}

/** Walk-forward (4 folds) + the final fit on `rows` synthetic rows with a weak planted signal. */
export const benchTrain = (rows = 1_000_000): TrainBench => {
  const { f, t, x, y } = trainMatrix(rows)
  const cpu = process.cpuUsage()
  const started = performance.now()
  const report = trainOn({ matrix: { x, n: rows, f }, y, t, symbols: 2, features: DEFAULT_TRAINING_FEATURES, horizonMs: 30_000, specHash: SPEC_HASH })
  const seconds = (performance.now() - started) / 1000
  return { rows, features: f, seconds, cpuSeconds: cpuSeconds(cpu), accuracy: report.pooled.accuracy }
}

/** Floor: one pass of XᵀX (with the intercept column) over the same matrix: seconds. */
export const trainFloor = (rows = 1_000_000): TrainBench => {
  const { f, x } = trainMatrix(rows)
  const kk = f + 1
  const z = new Float64Array(kk)
  const h = new Float64Array(kk * kk)
  const cpu = process.cpuUsage()
  const started = performance.now()
  for (let i = 0; i < rows; i++) {
    for (let j = 0; j < f; j++) z[j] = x[i * f + j]
    z[f] = 1
    for (let a = 0; a < kk; a++) {
      const za = z[a]
      for (let b = 0; b <= a; b++) h[a * kk + b] += za * z[b]
    }
  }
  const seconds = (performance.now() - started) / 1000
  return { rows, features: f, seconds, cpuSeconds: cpuSeconds(cpu), accuracy: h[0] > 0 ? Number.NaN : 0 }
}

export interface ScoringBench {
  readonly candidates: number
  readonly engine: string
  /** Per candidate through the model gate: features from the live history + the model. */
  readonly p50Micros: number
  readonly p99Micros: number
  readonly maxMicros: number
  /** Floor: standardise + dot product + sigmoid in TypeScript on the same feature vector. */
  readonly floorP50Micros: number
  readonly floorP99Micros: number
  /** onnxruntime's own session.run on the same vector (batch of 1), same model file. */
  readonly ortP50Micros: number
  readonly ortP99Micros: number
}

const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)))

/**
 * Per candidate: the gate (features from the live history + the model, as the signal worker does), then on the
 * same feature vector the bare floor and onnxruntime's session.run, candidate by candidate. The model is our
 * logistic graph with a realistic standardisation (the first 2,000 ticks' feature means and deviations).
 */
export const benchScoring = async (candidates = 3000): Promise<ScoringBench> => {
  const dir = mkdtempSync(join(tmpdir(), "bench-ml-score-"))
  try {
    const f = DEFAULT_TRAINING_FEATURES.length
    const path = join(dir, "model.onnx")
    const mean = new Float64Array(f)
    const scale = new Float64Array(f).fill(1)
    const weights = Float64Array.from({ length: f }, (_, j) => ((j % 3) - 1) * 0.3)
    const model = { mean, scale, weights, intercept: 0.1 }
    const sidecar = { features: [...DEFAULT_TRAINING_FEATURES], horizon: 30_000, trainedOn: { from: 0, to: 0 }, specHash: SPEC_HASH }
    const tick = (i: number, rand: () => number, price: number): Tick => ({
      symbol: "BTCUSDT",
      price,
      size: 0.1 + rand(),
      side: rand() < 0.5 ? "BUY" : "SELL",
      tradeId: i + 1,
      ts: T0 + i * 100,
      receivedAt: T0 + i * 100
    })
    // standardisation from a warm-up stretch of the same series, so the model sees z-scores, not raw values
    await Effect.runPromise(writeModel(path, logisticToOnnx(model), sidecar))
    await Effect.runPromise(
      Effect.scoped(Effect.gen(function*() {
        const scorer = yield* loadScorer(path)
        const hist = makeTickHistory(scorer.historyNeeded)
        const rand = seeded(3)
        let price = 100
        const v = new Float32Array(f)
        const sums = new Float64Array(f)
        const squares = new Float64Array(f)
        let n = 0
        for (let i = 0; i < 2000; i++) {
          price *= 1 + (rand() - 0.5) * 0.002
          const tk = tick(i, rand, price)
          hist.push(tk.symbol, tk.price, tk.size, tk.side === "BUY" ? 1 : 0, tk.ts)
          if (!scorer.vector(hist.history(tk.symbol)!, v, 0)) continue
          n++
          for (let j = 0; j < f; j++) {
            sums[j] += v[j]
            squares[j] += v[j] * v[j]
          }
        }
        for (let j = 0; j < f; j++) {
          mean[j] = sums[j] / n
          scale[j] = Math.sqrt(Math.max(squares[j] / n - mean[j] ** 2, 1e-24)) || 1
        }
      }))
    )
    await Effect.runPromise(writeModel(path, logisticToOnnx(model), sidecar))
    const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 1, interOpNumThreads: 1, executionMode: "sequential", graphOptimizationLevel: "all" })
    const inputName = session.inputNames[0]
    return await Effect.runPromise(
      Effect.scoped(
        Effect.gen(function*() {
          const scorer = yield* loadScorer(path)
          const gate = makeModelGate(scorer, 0.5)
          const mirror = makeTickHistory(scorer.historyNeeded)
          const state = initialSignalState()
          const rand = seeded(3)
          let price = 100
          const times: Array<number> = []
          const floor: Array<number> = []
          const onnx: Array<number> = []
          const v = new Float32Array(f)
          let sink = 0
          // a plain async loop (no fiber hop per candidate): what is timed is the scoring, not Effect's scheduler
          yield* Effect.promise(async () => {
            for (let i = 0; times.length < candidates; i++) {
              price *= 1 + (rand() - 0.5) * 0.002
              const tk = tick(i, rand, price)
              gate.observe(tk)
              mirror.push(tk.symbol, tk.price, tk.size, tk.side === "BUY" ? 1 : 0, tk.ts)
              const c = stepSignal(state, tk)
              if (c === undefined) continue
              let started = performance.now()
              const verdicts = await gate.judge([c])
              times.push((performance.now() - started) * 1000)
              if (verdicts[0]._tag === "Pass") sink++
              if (!scorer.vector(mirror.history(tk.symbol)!, v, 0)) continue
              started = performance.now()
              let s = model.intercept
              for (let j = 0; j < f; j++) {
                const z = (v[j] - mean[j]) / scale[j]
                s += weights[j] * (z > Z_CLIP ? Z_CLIP : z < -Z_CLIP ? -Z_CLIP : z)
              }
              sink += sigmoid(s) >= 0.5 ? 1 : 0
              floor.push((performance.now() - started) * 1000)
              started = performance.now()
              const out = await session.run({ [inputName]: new ort.Tensor("float32", v.slice(), [1, f]) })
              onnx.push((performance.now() - started) * 1000)
              sink += (out.probabilities.data as Float32Array)[1] >= 0.5 ? 1 : 0
            }
          })
          const q = (xs: Array<number>, p: number) => pct(sorted(xs.slice(100)), p)
          return {
            candidates: times.length - 100,
            engine: scorer.engine,
            p50Micros: q(times, 50),
            p99Micros: q(times, 99),
            maxMicros: q(times, 100),
            floorP50Micros: q(floor, 50),
            floorP99Micros: q(floor, 99),
            ortP50Micros: q(onnx, 50),
            ortP99Micros: q(onnx, 99) + (sink < 0 ? 1 : 0)
          } satisfies ScoringBench
        })
      )
    ).finally(() => session.release())
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// bench/run.ts's section: every measurement in a fresh process, floors interleaved with their subjects

const DATASET_TICKS = Number(process.env.BENCH_DATASET_TICKS ?? 2_000_000)
const TRAIN_ROWS = Number(process.env.BENCH_TRAIN_ROWS ?? 1_000_000)

const children: Record<string, (args: ReadonlyArray<string>) => Promise<unknown>> = {
  "write-tree": ([dir]) => Effect.runPromise(writeTickTree(dir, DATASET_TICKS)),
  "dataset": ([dir]) => datasetRun(dir),
  "dataset-floor": ([dir]) => datasetFloor(dir),
  "train": async () => benchTrain(TRAIN_ROWS),
  "train-floor": async () => trainFloor(TRAIN_ROWS),
  "scoring": () => benchScoring()
}

const child = <T>(name: string, ...args: Array<string>): T =>
  JSON.parse(
    execFileSync(process.execPath, [import.meta.filename, "--child", name, ...args], {
      encoding: "utf8",
      maxBuffer: 16 << 20,
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 1_200_000
    })
  ) as T

const log = (line: string) => console.error(`[bench ml ${new Date().toISOString().slice(11, 19)}] ${line}`)

export const benchSection = async (runs: number): Promise<string> => {
  const n = Math.max(1, runs)
  const loadBefore = loadavg()[0]
  const tree = mkdtempSync(join(tmpdir(), "bench-ml-tree-"))
  const ds: Array<DatasetBench> = []
  const dsFloor: Array<DatasetBench> = []
  const tr: Array<TrainBench> = []
  const trFloor: Array<TrainBench> = []
  const sc: Array<ScoringBench> = []
  try {
    child("write-tree", tree)
    for (let r = 0; r < n; r++) {
      // floor and subject alternate which goes first
      const pairs: ReadonlyArray<readonly [() => void, () => void]> = [
        [() => dsFloor.push(child("dataset-floor", tree)), () => ds.push(child("dataset", tree))],
        [() => trFloor.push(child("train-floor")), () => tr.push(child("train"))]
      ]
      for (const [floor, subject] of pairs) {
        if (r % 2 === 0) {
          floor()
          subject()
        } else {
          subject()
          floor()
        }
      }
      sc.push(child("scoring"))
      log(`run ${r + 1}/${n}: dataset ${JSON.stringify(ds.at(-1))} floor ${JSON.stringify(dsFloor.at(-1))}; train ${JSON.stringify(tr.at(-1))} floor ${JSON.stringify(trFloor.at(-1))}; scoring ${JSON.stringify(sc.at(-1))}`)
    }
  } finally {
    rmSync(tree, { recursive: true, force: true })
  }
  const loadAfter = loadavg()[0]
  const secs = (x: number) => `${x.toFixed(x < 10 ? 2 : 1)} s`
  const us = (x: number) => (x < 10 ? x.toFixed(2) : x.toFixed(0))
  const m = <T>(xs: ReadonlyArray<T>, pick: (x: T) => number) => median(xs.map(pick))
  const p99 = m(sc, (s) => s.p99Micros)
  return `## ML (issue #13, bench/ml.ts)

${n} run${n === 1 ? "" : "s"}, each measurement a fresh process, floor and subject alternating which goes first; load average (1 min) ${loadBefore.toFixed(1)} before, ${loadAfter.toFixed(1)} after.

| figure | value | floor | floor value | figure / floor |
|---|---|---|---|---|
| dataset: \`buildDataset\` (\`autotrader dataset\`), ${DATASET_TICKS.toLocaleString("en-US")}-tick tree (2 symbols), per tick, 30 s horizon, 15 features + labels, Parquet zstd: rows/s (wall ${spread(ds.map((d) => d.seconds), secs)}, process CPU ${spread(ds.map((d) => d.cpuSeconds), secs)}, ${m(ds, (d) => d.rows).toLocaleString("en-US")} rows) | ${spread(ds.map((d) => d.rowsPerSec), k)} | one bare DuckDB query over the same tree: read, MA10/MA30 per symbol, Parquet zstd (wall ${spread(dsFloor.map((d) => d.seconds), secs)}, CPU ${spread(dsFloor.map((d) => d.cpuSeconds), secs)}) | ${spread(dsFloor.map((d) => d.rowsPerSec), k)} | ${ratio(m(ds, (d) => d.rowsPerSec) / m(dsFloor, (d) => d.rowsPerSec))} |
| train: walk-forward (4 folds, purge + embargo) + final fit, logistic, ${TRAIN_ROWS.toLocaleString("en-US")} rows × ${tr[0]?.features ?? "–"} features, matrix in memory (process CPU ${spread(tr.map((t) => t.cpuSeconds), secs)}) | ${spread(tr.map((t) => t.seconds), secs)} | one pass of XᵀX over the same matrix (each Newton step of each fit is one weighted pass; CPU ${spread(trFloor.map((t) => t.cpuSeconds), secs)}) | ${spread(trFloor.map((t) => t.seconds), secs)} | ${(m(tr, (t) => t.seconds) / m(trFloor, (t) => t.seconds)).toFixed(0)} passes |
| scoring p50 per candidate: features from the live history + the model (engine: ${sc[0]?.engine ?? "–"}), µs | ${spread(sc.map((s) => s.p50Micros), us)} | standardise + dot product + sigmoid in TS, same vector | ${spread(sc.map((s) => s.floorP50Micros), us)} | ${ratio(m(sc, (s) => s.p50Micros) / m(sc, (s) => s.floorP50Micros))} |
| scoring p99 per candidate, µs (target ≤ 200 µs: ${p99 <= 200 ? "met" : "missed"}) | ${spread(sc.map((s) => s.p99Micros), us)} | same floor, p99 | ${spread(sc.map((s) => s.floorP99Micros), us)} | ${ratio(p99 / m(sc, (s) => s.floorP99Micros))} |
| onnxruntime's own \`session.run\` on the same vector and model (batch of 1), p50 / p99 µs | ${spread(sc.map((s) => s.ortP50Micros), us)} / ${spread(sc.map((s) => s.ortP99Micros), us)} | – | – | – |

Scoring: ${m(sc, (s) => s.candidates).toLocaleString("en-US")} crossover candidates per run (after 100 warm-up), one symbol, random walk; the floor and onnxruntime run on each candidate's own feature vector right after the gate scored it.
`
}

if (import.meta.main && process.argv[2] === "--child") {
  const run = children[process.argv[3]]
  if (run === undefined) throw new Error(`unknown ml benchmark ${process.argv[3]}; known: ${Object.keys(children).join(", ")}`)
  process.stdout.write(JSON.stringify((await run(process.argv.slice(4))) ?? null))
  process.exit(0)
} else if (import.meta.main) {
  const which = process.argv[2] ?? "all"
  const out: Record<string, unknown> = {}
  if (which === "scoring" || which === "all") out.scoring = await benchScoring()
  if (which === "train" || which === "all") out.train = benchTrain(TRAIN_ROWS)
  if (which === "dataset" || which === "all") out.dataset = await benchDataset(DATASET_TICKS)
  console.log(JSON.stringify(out, null, 2))
}
