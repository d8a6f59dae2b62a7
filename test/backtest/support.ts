import type { Tick } from "../../src/domain/Messages.ts"
import { writeTicks } from "../storage/support.ts"

export { tempDir } from "../storage/support.ts"

/** A seeded random walk over `symbols`, one tick every `stepMs` in turn, prices in cents. */
export const walkTicks = (n: number, t0: number, options: { readonly seed?: number; readonly stepMs?: number; readonly symbols?: ReadonlyArray<readonly [string, number]> } = {}): Array<Tick> => {
  let seed = (options.seed ?? 1) >>> 0
  const rand = () => {
    seed = (seed + 0x6d2b79f5) >>> 0
    let t = seed
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296
  }
  const symbols = options.symbols ?? [["BTCUSDT", 40_000], ["ETHUSDT", 2_000]]
  const price = symbols.map(([, p]) => p)
  const out: Array<Tick> = []
  for (let i = 0; i < n; i++) {
    const k = i % symbols.length
    price[k] *= 1 + (rand() - 0.5) * 0.002
    const ts = t0 + i * (options.stepMs ?? 100)
    out.push({ symbol: symbols[k][0], price: Math.round(price[k] * 100) / 100, size: 0.01, side: rand() < 0.5 ? "BUY" : "SELL", tradeId: 1000 + i, ts, receivedAt: ts + 1 })
  }
  return out
}

/** Writes ticks as the store does: one file per symbol and UTC hour. */
export const storeTicks = (dir: string, ticks: ReadonlyArray<Tick>) => writeTicks(dir, ticks)
