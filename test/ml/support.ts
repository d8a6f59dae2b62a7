/** ML test helpers: ticks written through the real tick store, small seeded series. */
import { Effect } from "effect"
import type { Tick } from "../../src/domain/Messages.ts"
import { writeTicks } from "../storage/support.ts"

export { tempDir } from "../storage/support.ts"

/** Writes `ticks` into a Hive tick tree under `dir`, one file per (symbol, UTC hour) and chunk. */
export const writeStore = (dir: string, ticks: ReadonlyArray<Tick>, chunk = 10_000) => writeTicks(dir, ticks, chunk).pipe(Effect.orDie)

export const T0 = Date.UTC(2024, 0, 1, 0, 0, 0)

/** A seeded generator (LCG), so series are the same every run. */
export const rng = (seed: number) => {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0
    return s / 4_294_967_296
  }
}

/** A seeded random walk of `n` ticks per symbol, interleaved, one every `stepMs` per symbol. */
export const randomWalk = (symbols: ReadonlyArray<string>, n: number, seed = 7, stepMs = 1000): Array<Tick> => {
  const rand = rng(seed)
  const out: Array<Tick> = []
  const prices = symbols.map((_, i) => 100 * (i + 1))
  for (let i = 0; i < n; i++) {
    symbols.forEach((symbol, k) => {
      prices[k] = Math.max(1, prices[k] * (1 + (rand() - 0.5) * 0.004))
      const ts = T0 + i * stepMs + k
      out.push({
        symbol,
        price: Math.round(prices[k] * 100) / 100,
        size: Math.round((0.1 + rand()) * 1000) / 1000,
        side: rand() < 0.5 ? "BUY" : "SELL",
        tradeId: 1000 + i,
        ts,
        receivedAt: ts + 2
      })
    })
  }
  return out
}

/**
 * One symbol whose next move follows the taker imbalance of the last 30 trades (buy-heavy → up) plus noise of
 * the same size: learnable from `imbalance30`, about 2/3 of moves predictable. `planted = false`: the same
 * series shape with no link (a pure random walk), prices not rounded so no move is exactly zero.
 */
export const patternSeries = (n: number, planted: boolean, seed = 3, stepMs = 1000): Array<Tick> => {
  const rand = rng(seed)
  const normal = () => Math.sqrt(-2 * Math.log(rand() + 1e-12)) * Math.cos(2 * Math.PI * rand())
  const out: Array<Tick> = []
  const sides: Array<number> = []
  const sizes: Array<number> = []
  let price = 100
  for (let i = 0; i < n; i++) {
    const buy = rand() < 0.5 ? 1 : 0
    const size = 0.5 + rand()
    sides.push(buy)
    sizes.push(size)
    const ts = T0 + i * stepMs
    out.push({ symbol: "PATUSDT", price, size, side: buy === 1 ? "BUY" : "SELL", tradeId: 1 + i, ts, receivedAt: ts + 1 })
    let imbalance = 0
    let volume = 0
    for (let j = Math.max(0, i - 29); j <= i; j++) {
      imbalance += sizes[j] * (sides[j] === 1 ? 1 : -1)
      volume += sizes[j]
    }
    const drift = planted ? 0.001 * Math.sign(imbalance / volume) : 0
    price = price * (1 + drift + 0.001 * normal())
  }
  return out
}
