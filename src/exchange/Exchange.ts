/**
 * The Exchange service: market data stream and order REST. Stages use only this; the live layer speaks
 * Binance spot (layers/BinanceExchange.ts), so the simulator, the Binance testnet and Binance itself are
 * interchangeable by URL and keys.
 */
import { type BigDecimal, Context, type Effect, type Stream } from "effect"
import type { Fill, OrderSide, Tick } from "../domain/Messages.ts"
import type { FrameResult } from "./BinanceCodec.ts"
import type { ExchangeError, MarketStreamError } from "./ExchangeErrors.ts"

/** A symbol's exchange filters as exact decimals (Binance sends them as decimal strings, e.g. "0.00001000"). 0 = no limit. */
export interface SymbolRules {
  readonly symbol: string
  readonly status: string
  readonly baseAsset: string
  readonly quoteAsset: string
  readonly tickSize: BigDecimal.BigDecimal
  readonly minPrice: BigDecimal.BigDecimal
  readonly maxPrice: BigDecimal.BigDecimal
  readonly stepSize: BigDecimal.BigDecimal
  readonly minQty: BigDecimal.BigDecimal
  readonly maxQty: BigDecimal.BigDecimal
  readonly minNotional: BigDecimal.BigDecimal
  readonly applyMinToMarket: boolean
}

export interface OrderRequest {
  readonly symbol: string
  readonly side: OrderSide
  readonly type: "MARKET" | "LIMIT"
  /** Already rounded to the symbol's step, as a decimal string. */
  readonly quantity: string
  readonly price?: string
  readonly clientOrderId: string
  /**
   * The signed `timestamp` (exchange-clock ms) and `recvWindow` to use. The order manager sets them so that it can make
   * them durable before the request leaves; absent, the exchange signs with its own clock estimate and window.
   */
  readonly timestamp?: number
  readonly recvWindowMs?: number
}

export interface ExchangeOrder {
  readonly symbol: string
  readonly orderId: number
  readonly clientOrderId: string
  /** NEW, PARTIALLY_FILLED, FILLED, CANCELED, REJECTED, EXPIRED, … */
  readonly status: string
  readonly side: string
  /** Exact, as the exchange wrote them. */
  readonly origQty: BigDecimal.BigDecimal
  readonly executedQty: BigDecimal.BigDecimal
  readonly quoteQty: BigDecimal.BigDecimal
  readonly time: number
  readonly fills: ReadonlyArray<Fill>
}

/** Last values of Binance's X-MBX-USED-WEIGHT-1M / X-MBX-ORDER-COUNT-10S / -1D headers. */
export interface RateUsage {
  readonly usedWeight1m?: number
  readonly orderCount10s?: number
  readonly orderCount1d?: number
}

export interface TradesOptions {
  /**
   * When this completes the client sends a WebSocket close frame and goes on emitting the frames that still
   * arrive; the stream then ends without error once the exchange's close frame arrives (or after the layer's
   * bounded close timeout). Without it the stream only ends by failing.
   */
  readonly close?: Effect.Effect<void>
}

/** Binance's maximum `limit` for `GET /api/v3/historicalTrades`. */
export const HISTORICAL_TRADES_MAX = 1000

export interface ExchangeShape {
  /** One connection's worth of decoded frames; fails with MarketStreamError on close, error or silence. */
  readonly trades: (symbols: ReadonlyArray<string>, options?: TradesOptions) => Stream.Stream<FrameResult, MarketStreamError>
  /**
   * `GET /api/v3/historicalTrades?symbol=…&fromId=…&limit=…` (at most 1000): up to `limit` trades from id `fromId`
   * on, in id order, as Ticks received now. Fewer (or none) when the exchange has fewer; a first id above `fromId`
   * means the exchange no longer has the ones below it. An undecodable answer is dead-lettered and fails.
   */
  readonly historicalTrades: (symbol: string, fromId: number, limit: number) => Effect.Effect<ReadonlyArray<Tick>, ExchangeError>
  readonly placeOrder: (request: OrderRequest) => Effect.Effect<ExchangeOrder, ExchangeError>
  /** GET /api/v3/order by origClientOrderId; −2013 (ExchangeApiError) when it does not exist. */
  readonly queryOrder: (symbol: string, clientOrderId: string) => Effect.Effect<ExchangeOrder, ExchangeError>
  /** GET /api/v3/myTrades for one order: its fills with commissions (an order lookup carries none). */
  readonly orderTrades: (symbol: string, orderId: number) => Effect.Effect<ReadonlyArray<Fill>, ExchangeError>
  readonly exchangeInfo: (symbols: ReadonlyArray<string>) => Effect.Effect<ReadonlyArray<SymbolRules>, ExchangeError>
  /** Re-reads the server time and adjusts the offset used for signed timestamps. Returns the offset (ms). */
  readonly syncTime: Effect.Effect<number, ExchangeError>
  readonly usage: Effect.Effect<RateUsage>
  /** The exchange's clock as we estimate it (our Clock + the offset from the last syncTime); no request is made. */
  readonly serverTime: Effect.Effect<number>
  /**
   * Synchronous forms for the order manager's first placement (the tick → order path), where the client has them:
   * `serverTime` read at once, and `placeOrder` that signs and writes the request before it returns and gives back
   * the effect that awaits its answer (the same answer and errors as `placeOrder`; interrupting it aborts the request).
   */
  readonly now?: {
    readonly serverTime: () => number
    readonly placeOrder: (request: OrderRequest) => Effect.Effect<ExchangeOrder, ExchangeError>
  }
}

export class Exchange extends Context.Service<Exchange, ExchangeShape>()("autotrader/exchange/Exchange") {}
