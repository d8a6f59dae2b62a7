/**
 * L2-regularised logistic regression on standardised features, fitted by Newton's method (a handful of passes
 * over the rows: each builds the gradient and the (F+1)² Hessian, then one Cholesky solve), and the validation
 * metrics the trainer prints. Pure functions over typed arrays.
 */

/** Row-major design matrix: row i, feature j at x[i * f + j]. */
export interface Matrix {
  readonly x: Float64Array
  readonly n: number
  readonly f: number
}

export interface LogisticModel {
  /** Standardisation: z = (x − mean) / scale. */
  readonly mean: Float64Array
  readonly scale: Float64Array
  /** Weights on standardised features, and the intercept. */
  readonly weights: Float64Array
  readonly intercept: number
}

export interface FitOptions {
  /** Ridge penalty on the (standardised) weights, in units of the summed log-loss; the intercept is not penalised. */
  readonly l2: number
  readonly maxIterations?: number
  readonly tolerance?: number
  /**
   * A model to start from (e.g. the previous walk-forward fold's), carried over into this fit's standardisation:
   * Newton then needs a few steps instead of ~7. The optimum is the same; only the path to it is shorter.
   */
  readonly init?: LogisticModel
}

/**
 * Standardised values are clipped to ±Z_CLIP (in the ONNX graph too): a feature far outside its training range
 * (a time-of-day value never seen, a volatility spike) saturates instead of extrapolating a linear term.
 */
export const Z_CLIP = 5
const clip = (z: number): number => (z > Z_CLIP ? Z_CLIP : z < -Z_CLIP ? -Z_CLIP : z)

const sigmoid = (z: number): number => (z >= 0 ? 1 / (1 + Math.exp(-z)) : Math.exp(z) / (1 + Math.exp(z)))

/** Means and standard deviations of the rows in `rows` (scale 1 where a column is constant). */
export const standardiser = (m: Matrix, rows: Int32Array | ReadonlyArray<number>): { mean: Float64Array; scale: Float64Array } => {
  const { x, f } = m
  const mean = new Float64Array(f)
  const sq = new Float64Array(f)
  for (const i of rows) for (let j = 0; j < f; j++) mean[j] += x[i * f + j]
  for (let j = 0; j < f; j++) mean[j] /= Math.max(1, rows.length)
  for (const i of rows) {
    for (let j = 0; j < f; j++) {
      const d = x[i * f + j] - mean[j]
      sq[j] += d * d
    }
  }
  const scale = new Float64Array(f)
  for (let j = 0; j < f; j++) {
    const s = Math.sqrt(sq[j] / Math.max(1, rows.length))
    scale[j] = s > 1e-12 ? s : 1
  }
  return { mean, scale }
}

/** Solves A x = b for symmetric positive definite A (k×k, row-major), in place on copies. */
const choleskySolve = (a: Float64Array, b: Float64Array, k: number): Float64Array => {
  const l = new Float64Array(k * k)
  for (let i = 0; i < k; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * k + j]
      for (let p = 0; p < j; p++) s -= l[i * k + p] * l[j * k + p]
      if (i === j) l[i * k + i] = Math.sqrt(Math.max(s, 1e-12))
      else l[i * k + j] = s / l[j * k + j]
    }
  }
  const y = new Float64Array(k)
  for (let i = 0; i < k; i++) {
    let s = b[i]
    for (let p = 0; p < i; p++) s -= l[i * k + p] * y[p]
    y[i] = s / l[i * k + i]
  }
  const out = new Float64Array(k)
  for (let i = k - 1; i >= 0; i--) {
    let s = y[i]
    for (let p = i + 1; p < k; p++) s -= l[p * k + i] * out[p]
    out[i] = s / l[i * k + i]
  }
  return out
}

/** Fits on the rows listed in `rows` (indices into `m`), labels 0/1 in `y`. */
export const fitLogistic = (m: Matrix, y: ArrayLike<number>, rows: Int32Array | ReadonlyArray<number>, options: FitOptions): LogisticModel => {
  const { x, f } = m
  const { mean, scale } = standardiser(m, rows)
  const k = f + 1 // weights, then the intercept
  const w = new Float64Array(k)
  const z = new Float64Array(k)
  if (options.init !== undefined && options.init.weights.length === f) {
    // the same raw-space function in this fit's standardisation: beta_j = w_j / scale_j
    const from = options.init
    let b = from.intercept
    for (let j = 0; j < f; j++) {
      const beta = from.weights[j] / from.scale[j]
      w[j] = beta * scale[j]
      b += beta * (mean[j] - from.mean[j])
    }
    w[f] = b
    // carried into other rows, the old model may extrapolate (a feature clipped before, not now) into saturated
    // probabilities, a place Newton's method leaves slowly: start from zero unless it beats zero's loss (n ln 2)
    let loss = 0
    for (const i of rows) {
      let s = w[f]
      for (let j = 0; j < f; j++) s += w[j] * clip((x[i * f + j] - mean[j]) / scale[j])
      // −log P(observed label), stably
      const t = y[i] === 1 ? -s : s
      loss += t > 0 ? t + Math.log1p(Math.exp(-t)) : Math.log1p(Math.exp(t))
    }
    let penalty = 0
    for (let j = 0; j < f; j++) penalty += 0.5 * options.l2 * w[j] * w[j]
    if (!(loss + penalty < rows.length * Math.LN2)) w.fill(0)
  }
  const maxIterations = options.maxIterations ?? 50
  const tolerance = options.tolerance ?? 1e-8
  for (let iter = 0; iter < maxIterations; iter++) {
    const g = new Float64Array(k)
    const h = new Float64Array(k * k)
    for (const i of rows) {
      let s = w[f]
      for (let j = 0; j < f; j++) {
        z[j] = clip((x[i * f + j] - mean[j]) / scale[j])
        s += w[j] * z[j]
      }
      z[f] = 1
      const p = sigmoid(s)
      const r = p - y[i]
      const v = Math.max(p * (1 - p), 1e-10)
      for (let a = 0; a < k; a++) {
        g[a] += r * z[a]
        const va = v * z[a]
        for (let b = 0; b <= a; b++) h[a * k + b] += va * z[b]
      }
    }
    for (let a = 0; a < k; a++) for (let b = 0; b < a; b++) h[b * k + a] = h[a * k + b]
    for (let j = 0; j < f; j++) {
      g[j] += options.l2 * w[j]
      h[j * k + j] += options.l2
    }
    h[f * k + f] += 1e-9
    const step = choleskySolve(h, g, k)
    let largest = 0
    for (let a = 0; a < k; a++) {
      w[a] -= step[a]
      largest = Math.max(largest, Math.abs(step[a]))
    }
    if (largest < tolerance) break
  }
  return { mean, scale, weights: w.slice(0, f), intercept: w[f] }
}

/** P(label = 1) of one row, in float64 (the reference the ONNX graph is checked against). */
export const predictRow = (model: LogisticModel, row: ArrayLike<number>, offset = 0): number => {
  let s = model.intercept
  for (let j = 0; j < model.weights.length; j++) s += model.weights[j] * clip((row[offset + j] - model.mean[j]) / model.scale[j])
  return sigmoid(s)
}

export const predict = (model: LogisticModel, m: Matrix, rows: Int32Array | ReadonlyArray<number>): Float64Array => {
  const out = new Float64Array(rows.length)
  let k = 0
  for (const i of rows) out[k++] = predictRow(model, m.x, i * m.f)
  return out
}

// ---------------------------------------------------------------------------------------------------------------
// metrics

export interface CalibrationBin {
  readonly lo: number
  readonly hi: number
  readonly count: number
  readonly meanPredicted: number
  readonly observed: number
}

export interface Metrics {
  readonly n: number
  readonly accuracy: number
  readonly logLoss: number
  readonly auc: number
  readonly positiveRate: number
}

const EPS = 1e-15

export const logLoss = (p: ArrayLike<number>, y: ArrayLike<number>): number => {
  let s = 0
  for (let i = 0; i < p.length; i++) {
    const q = Math.min(1 - EPS, Math.max(EPS, p[i]))
    s -= y[i] === 1 ? Math.log(q) : Math.log(1 - q)
  }
  return p.length === 0 ? Number.NaN : s / p.length
}

/**
 * Area under the ROC curve: the Mann–Whitney U of the positives over the negatives (a tie counts one half, the
 * same as ranking with ties at their mean rank), from the two classes' scores sorted apart (typed-array sorts);
 * 0.5 when one class is absent.
 */
export const auc = (p: ArrayLike<number>, y: ArrayLike<number>): number => {
  const n = p.length
  let positives = 0
  for (let i = 0; i < n; i++) if (y[i] === 1) positives++
  const negatives = n - positives
  if (positives === 0 || negatives === 0) return 0.5
  const pos = new Float64Array(positives)
  const neg = new Float64Array(negatives)
  for (let i = 0, a = 0, b = 0; i < n; i++) {
    if (y[i] === 1) pos[a++] = p[i]
    else neg[b++] = p[i]
  }
  pos.sort()
  neg.sort()
  let u = 0
  let below = 0 // negatives < v
  let upTo = 0 // negatives <= v
  for (let i = 0; i < positives; i++) {
    const v = pos[i]
    while (below < negatives && neg[below] < v) below++
    if (upTo < below) upTo = below
    while (upTo < negatives && neg[upTo] <= v) upTo++
    u += below + (upTo - below) / 2
  }
  return u / (positives * negatives)
}

export const metricsOf = (p: ArrayLike<number>, y: ArrayLike<number>): Metrics => {
  let correct = 0
  let pos = 0
  for (let i = 0; i < p.length; i++) {
    if ((p[i] >= 0.5 ? 1 : 0) === y[i]) correct++
    if (y[i] === 1) pos++
  }
  const n = p.length
  return { n, accuracy: n === 0 ? Number.NaN : correct / n, logLoss: logLoss(p, y), auc: auc(p, y), positiveRate: n === 0 ? Number.NaN : pos / n }
}

export const calibration = (p: ArrayLike<number>, y: ArrayLike<number>, bins = 10): ReadonlyArray<CalibrationBin> => {
  const count = new Float64Array(bins)
  const sumP = new Float64Array(bins)
  const sumY = new Float64Array(bins)
  for (let i = 0; i < p.length; i++) {
    const b = Math.min(bins - 1, Math.max(0, Math.floor(p[i] * bins)))
    count[b]++
    sumP[b] += p[i]
    sumY[b] += y[i]
  }
  const out: Array<CalibrationBin> = []
  for (let b = 0; b < bins; b++) {
    if (count[b] === 0) continue
    out.push({ lo: b / bins, hi: (b + 1) / bins, count: count[b], meanPredicted: sumP[b] / count[b], observed: sumY[b] / count[b] })
  }
  return out
}
