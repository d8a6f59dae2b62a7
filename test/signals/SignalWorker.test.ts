import { assert, describe, it } from "@effect/vitest"
import { Effect, Stream } from "effect"
import type { Candidate } from "../../src/domain/Messages.ts"
import { candidates, initialSignalState, stepSignal, windowsProblem } from "../../src/signals/SignalWorker.ts"
import { tick, ticks } from "../support/fixtures.ts"

const run = (prices: ReadonlyArray<number>, symbol = "BTCUSDT"): Array<Candidate> => {
  const state = initialSignalState()
  const out: Array<Candidate> = []
  for (const t of ticks(symbol, prices)) {
    const c = stepSignal(state, t)
    if (c !== undefined) out.push(c)
  }
  return out
}

// 30 flat ticks: MA10 = MA30 = 100 (equal: no sign yet)
const flat = Array.from({ length: 30 }, () => 100)

describe("signal worker", () => {
  it("emits nothing before MA30 exists, however prices move", () => {
    const zigzag = Array.from({ length: 29 }, (_, i) => (i % 2 === 0 ? 100 : 130) + i)
    assert.deepStrictEqual(run(zigzag), [])
  })

  it("emits nothing while MA10 equals MA30", () => {
    assert.deepStrictEqual(run([...flat, 100, 100, 100]), [])
  })

  it("emits candidates exactly at the crossovers, computed by hand", () => {
    // tick 31 (110): MA10 = (9·100+110)/10 = 101, MA30 = (29·100+110)/30 = 100.333 → first sign (+): baseline, no candidate
    // tick 32 (90):  MA10 = (8·100+110+90)/10 = 100, MA30 = (28·100+110+90)/30 = 100 → equal: nothing
    // tick 33 (90):  MA10 = (7·100+110+90+90)/10 = 99, MA30 = (27·100+110+90+90)/30 = 99.667 → − after + : SHORT
    // tick 34 (120): MA10 = (6·100+110+90+90+120)/10 = 101, MA30 = (26·100+110+90+90+120)/30 = 100.333 → LONG
    // tick 35 (100): MA10 = (5·100+110+90+90+120+100)/10 = 101, MA30 = 3010/30 = 100.333 → still +: nothing
    const got = run([...flat, 110, 90, 90, 120, 100])
    assert.strictEqual(got.length, 2)
    const [short, long] = got
    assert.strictEqual(short.id, "BTCUSDT-33-S")
    assert.strictEqual(short.side, "SHORT")
    assert.strictEqual(short.price, 90)
    assert.closeTo(short.ma10, 99, 1e-9)
    assert.closeTo(short.ma30, 2990 / 30, 1e-9)
    assert.strictEqual(short.delta, 0)
    assert.strictEqual(short.tickTradeId, 33)
    assert.deepStrictEqual(short.origin, { tickId: "BTCUSDT:33", receivedAt: tick("BTCUSDT", 33, 90).receivedAt })
    assert.strictEqual(long.id, "BTCUSDT-34-L")
    assert.strictEqual(long.side, "LONG")
    assert.strictEqual(long.price, 120)
    assert.closeTo(long.ma10, 101, 1e-9)
    assert.closeTo(long.ma30, 3010 / 30, 1e-9)
    assert.strictEqual(long.delta, 30)
  })

  it("keeps symbols independent", () => {
    const state = initialSignalState()
    const a = ticks("BTCUSDT", [...flat, 110, 90, 90])
    const b = ticks("ETHUSDT", [...flat, 110, 110, 110])
    const out: Array<Candidate> = []
    for (let i = 0; i < a.length; i++) {
      for (const t of [a[i], b[i]]) {
        const c = stepSignal(state, t)
        if (c !== undefined) out.push(c)
      }
    }
    assert.deepStrictEqual(out.map((c) => c.id), ["BTCUSDT-33-S"])
  })

  it("ignores a redelivered (duplicate or older) trade id", () => {
    const state = initialSignalState()
    const seq = ticks("BTCUSDT", [...flat, 110, 90, 90])
    const out: Array<string> = []
    for (const t of [...seq, ...seq]) {
      const c = stepSignal(state, t)
      if (c !== undefined) out.push(c.id)
    }
    assert.deepStrictEqual(out, ["BTCUSDT-33-S"])
  })

  it("does not drift over a long run: running sums equal exact averages", () => {
    const state = initialSignalState()
    const prices = Array.from({ length: 5000 }, (_, i) => 100 + Math.sin(i / 7) * 3 + (i % 13) * 0.01)
    let last: Candidate | undefined
    prices.forEach((p, i) => {
      const c = stepSignal(state, tick("BTCUSDT", i + 1, p))
      if (c !== undefined) last = c
    })
    assert.isDefined(last)
    const at = last!.tickTradeId
    const window = (n: number) => prices.slice(at - n, at).reduce((a, b) => a + b, 0) / n
    assert.closeTo(last!.ma10, window(10), 1e-9)
    assert.closeTo(last!.ma30, window(30), 1e-9)
  })

  it("other windows are parameters of the state (fast 2 / slow 4, computed by hand); the default is 10 / 30", () => {
    // ticks 1–4 at 10: fast = slow = 10 (equal); #5 12: fast 11 > slow 10.5 (baseline); #6 8: 10 = 10;
    // #7 8: fast 8 < slow 9.5 → SHORT; #8 14: fast 11 > slow 10.5 → LONG
    const state = initialSignalState({ fast: 2, slow: 4 })
    const got: Array<Candidate> = []
    for (const t of ticks("BTCUSDT", [10, 10, 10, 10, 12, 8, 8, 14])) {
      const c = stepSignal(state, t)
      if (c !== undefined) got.push(c)
    }
    assert.deepStrictEqual(got.map((c) => [c.id, c.ma10, c.ma30]), [["BTCUSDT-7-S", 8, 9.5], ["BTCUSDT-8-L", 11, 10.5]])
    const byDefault = initialSignalState()
    assert.deepStrictEqual([byDefault.fast, byDefault.slow], [10, 30])
    assert.isUndefined(windowsProblem({ fast: 10, slow: 30 }))
    assert.isDefined(windowsProblem({ fast: 30, slow: 10 }))
    assert.isDefined(windowsProblem({ fast: 0, slow: 10 }))
    assert.isDefined(windowsProblem({ fast: 2.5, slow: 10 }))
  })

  it.effect("the stream stage yields the same candidates as the step function", () =>
    Effect.gen(function*() {
      const prices = [...flat, 110, 90, 90, 120, 100]
      const viaStream = yield* Stream.fromIterable(ticks("BTCUSDT", prices)).pipe(candidates, Stream.runCollect)
      assert.deepStrictEqual(viaStream, run(prices))
    }))
})
