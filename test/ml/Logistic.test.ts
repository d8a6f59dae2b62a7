import { assert, describe, it } from "@effect/vitest"
import { auc, fitLogistic } from "../../src/ml/Logistic.ts"
import { rng } from "./support.ts"

describe("logistic", () => {
  it("AUC by hand: 3 of 4 positive/negative pairs ordered; a tie counts one half", () => {
    assert.strictEqual(auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75)
    // positives 0.5 (ties both negatives: 2 × ½) and 0.9 (above both: 2) → 3 of 4 pairs
    assert.strictEqual(auc([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1]), 0.75)
    assert.strictEqual(auc([0.2, 0.2, 0.2], [1, 0, 1]), 0.5)
    assert.strictEqual(auc([0.1, 0.9], [1, 1]), 0.5) // one class only
    assert.strictEqual(auc([0.9, 0.1, 0.8, 0.2], [1, 0, 1, 0]), 1)
  })

  it("a warm start (another fit, other standardisation) reaches the same optimum as a cold one, in fewer steps", () => {
    const rand = rng(5)
    const n = 20_000
    const f = 3
    const x = new Float64Array(n * f)
    const y = new Float64Array(n)
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < f; j++) x[i * f + j] = (rand() - 0.5) * (j + 1) + j * 10
      y[i] = x[i * f] + (rand() - 0.5) * 1.5 > 0 ? 1 : 0
    }
    const m = { x, n, f }
    const all = Array.from({ length: n }, (_, i) => i)
    const half = all.slice(0, n / 2)
    const cold = fitLogistic(m, y, all, { l2: 1 })
    const init = fitLogistic(m, y, half, { l2: 1 })
    const warm = fitLogistic(m, y, all, { l2: 1, init })
    for (let j = 0; j < f; j++) assert.approximately(warm.weights[j], cold.weights[j], 1e-7)
    assert.approximately(warm.intercept, cold.intercept, 1e-7)
    // two Newton steps from the warm start are already at the optimum; from zero they are not
    const warm2 = fitLogistic(m, y, all, { l2: 1, init, maxIterations: 2 })
    const cold2 = fitLogistic(m, y, all, { l2: 1, maxIterations: 2 })
    assert.isBelow(Math.abs(warm2.weights[0] - cold.weights[0]), 1e-4)
    assert.isAbove(Math.abs(cold2.weights[0] - cold.weights[0]), Math.abs(warm2.weights[0] - cold.weights[0]))
    // a start that saturates (an old model extrapolating on rows it never saw) is dropped for zero: same optimum
    const wild = { mean: new Float64Array(f), scale: new Float64Array(f).fill(0.01), weights: Float64Array.from([40, -40, 40]), intercept: 30 }
    const fromWild = fitLogistic(m, y, all, { l2: 1, init: wild })
    for (let j = 0; j < f; j++) assert.approximately(fromWild.weights[j], cold.weights[j], 1e-7)
    assert.approximately(fromWild.intercept, cold.intercept, 1e-7)
  })
})
