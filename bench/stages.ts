/**
 * Stage throughput on one core, no sockets: each stage's own code over pre-generated input, next to a bare loop that
 * does the same work with nothing around it (the floor).
 */
import type { Tick } from "../src/domain/Messages.ts"
import { decodeTradeFrame } from "../src/exchange/BinanceCodec.ts"
import { applyOrder, decide, initialRiskState } from "../src/risk/RiskGate.ts"
import { initialSignalState, stepSignal } from "../src/signals/SignalWorker.ts"

/** `n` ticks over two symbols, a seeded random walk, one every 3 ms, trade ids above 2^31. */
export const makeTicks = (n: number): Array<Tick> => {
  let seed = 42
  const rand = () => ((seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648) / 2_147_483_648)
  const price = { BTCUSDT: 42_000, ETHUSDT: 2_250 }
  const out: Array<Tick> = []
  const t0 = Date.UTC(2024, 0, 1, 0, 0, 0)
  for (let i = 0; i < n; i++) {
    const symbol = i % 2 === 0 ? "BTCUSDT" : "ETHUSDT"
    price[symbol] *= 1 + (rand() - 0.5) * 0.001
    const ts = t0 + i * 3
    out.push({
      symbol,
      price: Math.round(price[symbol] * 100) / 100,
      size: Math.round(rand() * 1000) / 1000,
      side: rand() < 0.5 ? "BUY" : "SELL",
      tradeId: 3_000_000_000 + i,
      ts,
      receivedAt: ts + 2
    })
  }
  return out
}

/** Binance combined-stream trade frames, as the exchange sends them. */
export const makeFrames = (ticks: ReadonlyArray<Tick>): Array<string> =>
  ticks.map((t) =>
    JSON.stringify({
      stream: `${t.symbol.toLowerCase()}@trade`,
      data: { e: "trade", E: t.ts + 1, s: t.symbol, t: t.tradeId, p: t.price.toFixed(2), q: t.size.toFixed(3), T: t.ts, m: t.side === "SELL", M: true }
    })
  )

const perSecond = (n: number, run: () => void): number => {
  const started = performance.now()
  run()
  return n / ((performance.now() - started) / 1000)
}

/** decodeTradeFrame (JSON, schema checks, Tick) per frame. */
export const decodeStage = (frames: ReadonlyArray<string>): number =>
  perSecond(frames.length, () => {
    let ok = 0
    for (let i = 0; i < frames.length; i++) if (decodeTradeFrame(frames[i], i)._tag === "Tick") ok++
    if (ok !== frames.length) throw new Error(`decoded ${ok} of ${frames.length}`)
  })

/** Floor: JSON.parse and the numbers taken out, nothing checked. */
export const decodeFloor = (frames: ReadonlyArray<string>): number =>
  perSecond(frames.length, () => {
    let sum = 0
    for (const f of frames) {
      const d = JSON.parse(f).data
      sum += Number(d.p) + Number(d.q) + d.t + d.T
    }
    if (!(sum > 0)) throw new Error("no input")
  })

const limits = { orderQty: 0.001, maxPosition: 0.01, maxTradesPerMinute: 1_000_000, maxTradesPerHour: 100_000_000 }

/** stepSignal → decide; every approval is filled at once (applyOrder) so the next one can follow. */
export const signalRiskStage = (ticks: ReadonlyArray<Tick>): number =>
  perSecond(ticks.length, () => {
    const signals = initialSignalState()
    const risk = initialRiskState()
    let approved = 0
    for (const t of ticks) {
      const c = stepSignal(signals, t)
      if (c === undefined) continue
      const d = decide(risk, limits, c, t.ts)
      if (d._tag !== "Approved") continue
      approved++
      applyOrder(risk, {
        _tag: "OrderFilled", signalId: d.id, clientOrderId: `at-${d.id}`, symbol: c.symbol, side: d.orderSide, action: d.action, qty: d.qty,
        ts: t.ts, origin: d.origin, orderId: approved, status: "FILLED", executedQty: d.qty, avgPrice: c.price, quoteQty: d.qty * c.price,
        commission: 0, commissionAsset: "USDT", fills: []
      })
    }
    if (approved === 0) throw new Error("no approvals")
  })

/** Floor: MA10/MA30 over a ring buffer per symbol and a crossing flag, on plain numbers. */
export const signalRiskFloor = (ticks: ReadonlyArray<Tick>): number =>
  perSecond(ticks.length, () => {
    const state = new Map<string, { prices: Float64Array; n: number; s10: number; s30: number; sign: number; open: boolean }>()
    let orders = 0
    for (const t of ticks) {
      let s = state.get(t.symbol)
      if (s === undefined) state.set(t.symbol, (s = { prices: new Float64Array(30), n: 0, s10: 0, s30: 0, sign: 0, open: false }))
      if (s.n >= 10) s.s10 -= s.prices[(s.n - 10) % 30]
      if (s.n >= 30) s.s30 -= s.prices[s.n % 30]
      s.prices[s.n % 30] = t.price
      s.s10 += t.price
      s.s30 += t.price
      if (++s.n < 30) continue
      const sign = s.s10 / 10 > s.s30 / 30 ? 1 : -1
      if (s.sign !== 0 && sign !== s.sign && (sign > 0) !== s.open) {
        s.open = sign > 0
        orders++
      }
      s.sign = sign
    }
    if (orders === 0) throw new Error("no orders")
  })
