import type { Candidate, Tick } from "../../src/domain/Messages.ts"

export const tick = (symbol: string, tradeId: number, price: number, ts = 1_700_000_000_000 + tradeId): Tick => ({
  symbol,
  price,
  size: 0.01,
  side: "BUY",
  tradeId,
  ts,
  receivedAt: ts + 5
})

/** Ticks with trade ids 1..n for `prices`. */
export const ticks = (symbol: string, prices: ReadonlyArray<number>): Array<Tick> => prices.map((p, i) => tick(symbol, i + 1, p))

export const candidate = (
  symbol: string,
  side: "LONG" | "SHORT",
  tradeId: number,
  price = 100
): Candidate => ({
  id: `${symbol}-${tradeId}-${side === "LONG" ? "L" : "S"}`,
  symbol,
  side,
  price,
  ma10: 0,
  ma30: 0,
  delta: 0,
  tickTradeId: tradeId,
  ts: tradeId,
  origin: { tickId: `${symbol}:${tradeId}`, receivedAt: tradeId }
})
