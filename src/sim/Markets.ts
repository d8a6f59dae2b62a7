/**
 * Trading rules per symbol, shaped like Binance's /api/v3/exchangeInfo. BTCUSDT and ETHUSDT use the real
 * exchange's tick/step/notional values; other symbols get rules derived from their start price.
 */
import * as Fixed from "./Fixed.ts"

export interface SymbolSpec {
  readonly symbol: string
  readonly baseAsset: string
  readonly quoteAsset: string
  readonly startPrice: number
  readonly minPrice: Fixed.Fixed
  readonly maxPrice: Fixed.Fixed
  readonly tickSize: Fixed.Fixed
  readonly minQty: Fixed.Fixed
  readonly maxQty: Fixed.Fixed
  readonly stepSize: Fixed.Fixed
  readonly marketMinQty: Fixed.Fixed
  readonly marketMaxQty: Fixed.Fixed
  readonly marketStepSize: Fixed.Fixed
  readonly minNotional: Fixed.Fixed
  readonly maxNotional: Fixed.Fixed
  readonly applyMinToMarket: boolean
  readonly applyMaxToMarket: boolean
  readonly avgPriceMins: number
  readonly maxNumOrders: number
}

export const ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"] as const
export const STP_MODES = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT"] as const
export const DEFAULT_STP_MODE = "EXPIRE_MAKER"

/** Longest suffix first, so "FDUSD" wins over "USD". */
const QUOTE_ASSETS = ["FDUSD", "USDT", "USDC", "TUSD", "BUSD", "DAI", "EUR", "TRY", "BRL", "JPY", "BTC", "ETH", "BNB", "USD"]

export const splitSymbol = (symbol: string): { readonly baseAsset: string; readonly quoteAsset: string } => {
  for (const quote of QUOTE_ASSETS) {
    if (symbol.length > quote.length && symbol.endsWith(quote)) {
      return { baseAsset: symbol.slice(0, -quote.length), quoteAsset: quote }
    }
  }
  return { baseAsset: symbol.slice(0, -4) || symbol, quoteAsset: symbol.slice(-4) }
}

const DEFAULT_START_PRICES: Record<string, number> = {
  BTCUSDT: 60000,
  ETHUSDT: 3000,
  BNBUSDT: 600,
  SOLUSDT: 150,
  XRPUSDT: 0.6,
  DOGEUSDT: 0.15
}

export const defaultStartPrice = (symbol: string): number => DEFAULT_START_PRICES[symbol] ?? 100

/** The markets the embedded simulator offers when `autotrader run` starts it (a real exchange lists its own). */
export const SIM_MARKETS: ReadonlyArray<string> = Object.keys(DEFAULT_START_PRICES)

const pow10 = (exponent: number): Fixed.Fixed =>
  exponent >= 0 ? Fixed.ONE * 10n ** BigInt(exponent) : Fixed.ONE / 10n ** BigInt(-exponent)

const clampExponent = (e: number, lo: number, hi: number): number => Math.min(hi, Math.max(lo, e))

const KNOWN: Record<string, Partial<SymbolSpec>> = {
  BTCUSDT: {
    tickSize: Fixed.fromNumber(0.01),
    minPrice: Fixed.fromNumber(0.01),
    maxPrice: Fixed.fromNumber(1000000),
    stepSize: Fixed.fromNumber(0.00001),
    minQty: Fixed.fromNumber(0.00001),
    maxQty: Fixed.fromNumber(9000),
    marketMaxQty: Fixed.fromNumber(120),
    minNotional: Fixed.fromNumber(5),
    maxNotional: Fixed.fromNumber(9000000)
  },
  ETHUSDT: {
    tickSize: Fixed.fromNumber(0.01),
    minPrice: Fixed.fromNumber(0.01),
    maxPrice: Fixed.fromNumber(1000000),
    stepSize: Fixed.fromNumber(0.0001),
    minQty: Fixed.fromNumber(0.0001),
    maxQty: Fixed.fromNumber(9000),
    marketMaxQty: Fixed.fromNumber(2500),
    minNotional: Fixed.fromNumber(5),
    maxNotional: Fixed.fromNumber(9000000)
  }
}

export const makeSpec = (symbol: string, startPrice: number = defaultStartPrice(symbol)): SymbolSpec => {
  const { baseAsset, quoteAsset } = splitSymbol(symbol)
  const magnitude = Math.floor(Math.log10(startPrice))
  // About five significant digits of price, capped at a cent; lots worth roughly 0.1–1 quote units.
  const tickSize = pow10(clampExponent(magnitude - 5, -8, -2))
  const stepSize = pow10(clampExponent(Math.ceil(-Math.log10(startPrice)) - 1, -8, 0))
  const generic: SymbolSpec = {
    symbol,
    baseAsset,
    quoteAsset,
    startPrice,
    minPrice: tickSize,
    maxPrice: Fixed.fromNumber(Math.max(1000, startPrice * 100)),
    tickSize,
    minQty: stepSize,
    maxQty: Fixed.fromNumber(9000000),
    stepSize,
    marketMinQty: Fixed.ZERO,
    marketMaxQty: Fixed.fromNumber(1000000),
    marketStepSize: Fixed.ZERO,
    minNotional: Fixed.fromNumber(quoteAsset === "BTC" ? 0.0001 : quoteAsset === "ETH" ? 0.001 : 5),
    maxNotional: Fixed.fromNumber(9000000),
    applyMinToMarket: true,
    applyMaxToMarket: false,
    avgPriceMins: 5,
    maxNumOrders: 200
  }
  return { ...generic, ...KNOWN[symbol] }
}

/** One entry of exchangeInfo.symbols, field order as Binance sends it. */
export const symbolInfo = (spec: SymbolSpec) => ({
  symbol: spec.symbol,
  status: "TRADING",
  baseAsset: spec.baseAsset,
  baseAssetPrecision: 8,
  quoteAsset: spec.quoteAsset,
  quotePrecision: 8,
  quoteAssetPrecision: 8,
  baseCommissionPrecision: 8,
  quoteCommissionPrecision: 8,
  orderTypes: [...ORDER_TYPES],
  icebergAllowed: false,
  ocoAllowed: false,
  otoAllowed: false,
  opoAllowed: false,
  quoteOrderQtyMarketAllowed: true,
  allowTrailingStop: false,
  cancelReplaceAllowed: false,
  amendAllowed: false,
  pegInstructionsAllowed: false,
  isSpotTradingAllowed: true,
  isMarginTradingAllowed: false,
  filters: [
    {
      filterType: "PRICE_FILTER",
      minPrice: Fixed.format(spec.minPrice),
      maxPrice: Fixed.format(spec.maxPrice),
      tickSize: Fixed.format(spec.tickSize)
    },
    {
      filterType: "LOT_SIZE",
      minQty: Fixed.format(spec.minQty),
      maxQty: Fixed.format(spec.maxQty),
      stepSize: Fixed.format(spec.stepSize)
    },
    {
      filterType: "MARKET_LOT_SIZE",
      minQty: Fixed.format(spec.marketMinQty),
      maxQty: Fixed.format(spec.marketMaxQty),
      stepSize: Fixed.format(spec.marketStepSize)
    },
    {
      filterType: "NOTIONAL",
      minNotional: Fixed.format(spec.minNotional),
      applyMinToMarket: spec.applyMinToMarket,
      maxNotional: Fixed.format(spec.maxNotional),
      applyMaxToMarket: spec.applyMaxToMarket,
      avgPriceMins: spec.avgPriceMins
    },
    { filterType: "MAX_NUM_ORDERS", maxNumOrders: spec.maxNumOrders }
  ],
  permissions: [],
  permissionSets: [["SPOT"]],
  defaultSelfTradePreventionMode: DEFAULT_STP_MODE,
  allowedSelfTradePreventionModes: [...STP_MODES]
})

export const RATE_LIMITS = {
  requestWeightPerMinute: 6000,
  ordersPer10s: 100,
  ordersPerDay: 200000
} as const

export const exchangeInfo = (specs: ReadonlyArray<SymbolSpec>, serverTime: number) => ({
  timezone: "UTC",
  serverTime,
  rateLimits: [
    { rateLimitType: "REQUEST_WEIGHT", interval: "MINUTE", intervalNum: 1, limit: RATE_LIMITS.requestWeightPerMinute },
    { rateLimitType: "ORDERS", interval: "SECOND", intervalNum: 10, limit: RATE_LIMITS.ordersPer10s },
    { rateLimitType: "ORDERS", interval: "DAY", intervalNum: 1, limit: RATE_LIMITS.ordersPerDay },
    { rateLimitType: "RAW_REQUESTS", interval: "MINUTE", intervalNum: 5, limit: 61000 }
  ],
  exchangeFilters: [],
  symbols: specs.map(symbolInfo)
})
