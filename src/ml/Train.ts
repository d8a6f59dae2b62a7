/**
 * Training: a dataset file → walk-forward validation → a final model on all rows → model.onnx + sidecar.
 *
 * Walk-forward: rows in time order are cut into folds + 1 blocks; fold j validates on block j and trains on the
 * rows before it whose label window ends before validation starts (purge: ts + horizon < first validation ts),
 * minus an embargo on top (ts + horizon + embargo < first validation ts). Labels look ahead by one horizon, so
 * without the purge the last training labels would already contain validation prices.
 */
import { Effect } from "effect"
import { KEY_COLUMNS, LABEL_COLUMNS, META } from "./Dataset.ts"
import { duck, MlError, numericColumns, parquetMetadata, rows, sqlString } from "./Duck.ts"
import { SPEC_HASH } from "./FeatureSpec.ts"
import { calibration, type CalibrationBin, fitLogistic, type LogisticModel, type Matrix, type Metrics, metricsOf, predict } from "./Logistic.ts"
import { logisticToOnnx, type Sidecar, writeModel } from "./Onnx.ts"

export interface TrainOptions {
  readonly dataset: string
  readonly out: string
  readonly features?: ReadonlyArray<string>
  readonly model?: string
  readonly folds?: number
  /** Extra gap after the purge, ms; default: one horizon. */
  readonly embargoMs?: number
  readonly l2?: number
}

export interface Fold {
  readonly fold: number
  readonly trainRows: number
  readonly purged: number
  readonly validation: Metrics
  readonly baseline: Metrics
  readonly validFrom: number
  readonly validTo: number
}

export interface TrainReport {
  readonly features: ReadonlyArray<string>
  readonly horizonMs: number
  readonly embargoMs: number
  readonly rows: number
  readonly folds: ReadonlyArray<Fold>
  /** All validation rows of all folds together. */
  readonly pooled: Metrics
  readonly pooledBaseline: Metrics
  readonly calibration: ReadonlyArray<CalibrationBin>
  /** Rows of validation after thinning overlapping labels (per symbol, one per horizon): the noise scale. */
  readonly effectiveRows: number
  /** Accuracy − baseline accuracy, and 2σ of that difference's noise under "no skill". */
  readonly edge: number
  readonly noise: number
  readonly skill: boolean
  readonly model: LogisticModel
  readonly specHash: string
  readonly from: number
  readonly to: number
}

export interface LoadedDataset {
  readonly matrix: Matrix
  readonly y: Float64Array
  readonly t: Float64Array
  readonly symbols: number
  readonly features: ReadonlyArray<string>
  readonly horizonMs: number
  readonly specHash: string
}

/** Reads the feature columns (in the given order), labels and times of a dataset, sorted by time. */
export const loadDataset = (path: string, wanted?: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const c = yield* duck()
    const meta = yield* parquetMetadata(c, path).pipe(
      Effect.mapError(() => new MlError({ operation: "read dataset", message: `${path} is not a readable Parquet file` }))
    )
    const horizonMs = Number(meta[META.horizonMs])
    if (!Number.isFinite(horizonMs)) {
      return yield* new MlError({ operation: "read dataset", message: `${path} has no ${META.horizonMs} metadata: build it with \`autotrader dataset\`` })
    }
    const specHash = meta[META.specHash] ?? ""
    const described = yield* rows(c, "read dataset", `SELECT column_name FROM (DESCRIBE SELECT * FROM read_parquet(${sqlString(path)}))`)
    const columns = described.map((r) => String(r.column_name))
    const nonFeature = new Set<string>([...KEY_COLUMNS, ...LABEL_COLUMNS])
    const available = columns.filter((name) => !nonFeature.has(name))
    let features: ReadonlyArray<string>
    if (wanted !== undefined) {
      const missing = wanted.filter((w) => !available.includes(w))
      if (missing.length > 0) {
        return yield* new MlError({ operation: "train", message: `--features: ${missing.join(", ")} not in ${path} (available: ${available.join(", ")})` })
      }
      features = wanted
    } else {
      // every feature column except price levels (the spec marks them): levels do not carry across symbols or time
      const spec = JSON.parse(meta[META.spec] ?? "{\"features\":[]}") as { features: Array<{ name: string; level?: boolean }> }
      const levels = new Set(spec.features.filter((f) => f.level === true).map((f) => f.name))
      features = available.filter((name) => !levels.has(name))
    }
    if (features.length === 0) return yield* new MlError({ operation: "train", message: `${path}: no feature columns to train on` })
    const q = (n: string) => `"${n.replaceAll("\"", "")}"`
    const read = yield* numericColumns(
      c,
      "read dataset",
      `SELECT epoch_ms(ts)::DOUBLE AS t, label::DOUBLE AS label, ${features.map((f) => `${q(f)}::DOUBLE`).join(", ")} FROM read_parquet(${sqlString(path)}) ORDER BY ts, symbol, trade_id`,
      ["t", "label", ...features]
    )
    const [{ symbols }] = yield* rows(c, "read dataset", `SELECT count(DISTINCT symbol)::DOUBLE AS symbols FROM read_parquet(${sqlString(path)})`)
    const n = read.length
    const f = features.length
    const x = new Float64Array(n * f)
    features.forEach((name, j) => {
      const column = read.columns[name]
      for (let i = 0; i < n; i++) x[i * f + j] = column[i]
    })
    return { matrix: { x, n, f }, y: read.columns.label, t: read.columns.t, symbols: Number(symbols), features, horizonMs, specHash } satisfies LoadedDataset
  }).pipe(Effect.scoped)

const constantMetrics = (p: number, y: ArrayLike<number>): Metrics => metricsOf(new Float64Array(y.length).fill(p), y)

/** Walk-forward validation and the final fit, no I/O. */
export const trainOn = (data: LoadedDataset, options: { readonly folds?: number; readonly embargoMs?: number; readonly l2?: number } = {}): TrainReport => {
  const { matrix, y, t, horizonMs } = data
  const n = matrix.n
  const folds = Math.max(1, options.folds ?? 4)
  const embargoMs = options.embargoMs ?? horizonMs
  const l2 = options.l2 ?? 1
  const block = Math.floor(n / (folds + 1))
  const results: Array<Fold> = []
  const pooledP: Array<number> = []
  const pooledBase: Array<number> = []
  const pooledY: Array<number> = []
  let effectiveRows = 0
  let previous: LogisticModel | undefined
  for (let j = 1; j <= folds; j++) {
    const lo = j * block
    const hi = j === folds ? n : (j + 1) * block
    if (hi <= lo) continue
    const validFrom = t[lo]
    const train: Array<number> = []
    let purged = 0
    for (let i = 0; i < lo; i++) {
      if (t[i] + horizonMs + embargoMs < validFrom) train.push(i)
      else purged++
    }
    if (train.length < 10) continue
    const val = Array.from({ length: hi - lo }, (_, k) => lo + k)
    // each fold starts from the previous fold's model (same optimum, fewer Newton steps)
    const model = fitLogistic(matrix, y, train, { l2, ...(previous === undefined ? {} : { init: previous }) })
    previous = model
    const p = predict(model, matrix, val)
    const yVal = val.map((i) => y[i])
    let trainPos = 0
    for (const i of train) trainPos += y[i]
    const rate = trainPos / train.length
    // the naive baseline: always the training majority class, with the training base rate as its probability
    const baseP = rate >= 0.5 ? Math.max(rate, 0.5) : Math.min(rate, 0.4999999)
    results.push({ fold: j, trainRows: train.length, purged, validation: metricsOf(p, yVal), baseline: constantMetrics(baseP, yVal), validFrom, validTo: t[hi - 1] })
    for (let k = 0; k < val.length; k++) {
      pooledP.push(p[k])
      pooledBase.push(baseP)
      pooledY.push(yVal[k])
    }
    effectiveRows += Math.min(val.length, Math.max(1, Math.floor(((t[hi - 1] - validFrom) / Math.max(1, horizonMs)) * Math.max(1, data.symbols))))
  }
  const pooled = metricsOf(pooledP, pooledY)
  const pooledBaseline = metricsOf(pooledBase, pooledY)
  const edge = pooled.accuracy - pooledBaseline.accuracy
  const noise = 2 * Math.sqrt(0.25 / Math.max(1, effectiveRows))
  const model = fitLogistic(matrix, y, Array.from({ length: n }, (_, i) => i), { l2, ...(previous === undefined ? {} : { init: previous }) })
  return {
    features: data.features,
    horizonMs,
    embargoMs,
    rows: n,
    folds: results,
    pooled,
    pooledBaseline,
    calibration: calibration(pooledP, pooledY),
    effectiveRows,
    edge,
    noise,
    skill: results.length > 0 && edge > noise && pooled.auc > 0.5,
    model,
    specHash: data.specHash,
    from: n > 0 ? t[0] : 0,
    to: n > 0 ? t[n - 1] + horizonMs : 0
  }
}

export const train = (options: TrainOptions) =>
  Effect.gen(function*() {
    const kind = options.model ?? "logistic"
    if (kind !== "logistic") {
      return yield* new MlError({
        operation: "train",
        message: `--model ${kind}: this build trains only "logistic"; train trees with LightGBM or scikit-learn and export to ONNX (see README, "Models trained elsewhere")`
      })
    }
    const data = yield* loadDataset(options.dataset, options.features)
    if (data.matrix.n < 100) return yield* new MlError({ operation: "train", message: `${options.dataset} has ${data.matrix.n} rows; at least 100 are needed` })
    const report = trainOn(data, options)
    const sidecar: Sidecar = {
      features: [...report.features],
      horizon: report.horizonMs,
      trainedOn: { dataset: options.dataset, from: report.from, to: report.to, rows: report.rows },
      metrics: {
        folds: report.folds.map((f) => ({ fold: f.fold, trainRows: f.trainRows, purged: f.purged, validation: f.validation, baseline: f.baseline })),
        pooled: report.pooled,
        baseline: report.pooledBaseline,
        edge: report.edge,
        noise: report.noise,
        skill: report.skill
      },
      specHash: report.specHash,
      model: "logistic"
    }
    const bytes = logisticToOnnx(report.model, { features: report.features.join(","), spec_hash: report.specHash, horizon_ms: String(report.horizonMs) })
    yield* writeModel(options.out, bytes, sidecar)
    return report
  }).pipe(Effect.withSpan("Train.train"))

const pct = (x: number) => `${(x * 100).toFixed(1)} %`
const f3 = (x: number) => x.toFixed(3)
const iso = (t: number) => new Date(t).toISOString().replace(".000Z", "Z")

export const formatTrainReport = (r: TrainReport, out?: string): string => {
  const lines: Array<string> = []
  lines.push(`rows ${r.rows.toLocaleString("en-US")}, features (${r.features.length}): ${r.features.join(", ")}`)
  lines.push(`walk-forward: ${r.folds.length} folds; purge one horizon (${r.horizonMs / 1000} s) + embargo ${r.embargoMs / 1000} s between train and validation`)
  lines.push("")
  lines.push("fold  train rows  purged  valid rows  accuracy (baseline)   log-loss (baseline)   AUC    valid from")
  for (const f of r.folds) {
    lines.push(
      `${String(f.fold).padStart(4)}  ${String(f.trainRows).padStart(10)}  ${String(f.purged).padStart(6)}  ${String(f.validation.n).padStart(10)}  ` +
        `${pct(f.validation.accuracy).padStart(7)} (${pct(f.baseline.accuracy).padStart(7)})    ${f3(f.validation.logLoss)} (${f3(f.baseline.logLoss)})       ${f3(f.validation.auc)}  ${iso(f.validFrom)}`
    )
  }
  lines.push(
    ` all  ${"".padStart(10)}  ${"".padStart(6)}  ${String(r.pooled.n).padStart(10)}  ${pct(r.pooled.accuracy).padStart(7)} (${pct(r.pooledBaseline.accuracy).padStart(7)})    ${f3(r.pooled.logLoss)} (${f3(r.pooledBaseline.logLoss)})       ${f3(r.pooled.auc)}`
  )
  lines.push("")
  lines.push("calibration (validation, all folds): predicted P(up) bin → rows, mean predicted, observed up-rate")
  for (const b of r.calibration) {
    lines.push(`  ${b.lo.toFixed(1)}–${b.hi.toFixed(1)}  ${String(b.count).padStart(8)}  ${f3(b.meanPredicted)}  ${f3(b.observed)}`)
  }
  lines.push("")
  lines.push(
    `edge over baseline: ${(r.edge * 100).toFixed(2)} pp accuracy; noise (2σ, ~${r.effectiveRows} independent labels): ±${(r.noise * 100).toFixed(2)} pp → ` +
      (r.skill ? "the model beats the baseline out of sample" : "NO SKILL shown out of sample (do not trade on it)")
  )
  if (r.specHash !== SPEC_HASH) {
    lines.push(`warning: the dataset's feature spec ${r.specHash} is not this build's (${SPEC_HASH}): the model will not load here; rebuild the dataset`)
  }
  if (out !== undefined) lines.push(`model ${out} (+ ${out}.json), trained on all ${r.rows} rows, ${iso(r.from)} → ${iso(r.to)}`)
  return lines.join("\n")
}
