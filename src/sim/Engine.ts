/**
 * The simulated matching engine and account: one last price per symbol (no spread, unlimited liquidity),
 * a random walk producing public trades, MARKET orders filling at the last price, LIMIT orders resting
 * until a later trade crosses them, balances with free/locked amounts and taker commission.
 *
 * It knows nothing about HTTP: the REST layer validates parameters and hands over a `NewOrder`.
 */
import * as Fixed from "./Fixed.ts"
import { DEFAULT_STP_MODE, type SymbolSpec } from "./Markets.ts"
import { makePriceWalk, mulberry32, type PriceWalk } from "./PriceWalk.ts"

export type Side = "BUY" | "SELL"
export type OrderType = "MARKET" | "LIMIT" | "LIMIT_MAKER"
export type TimeInForce = "GTC" | "IOC" | "FOK"
export type OrderStatus = "NEW" | "PARTIALLY_FILLED" | "FILLED" | "CANCELED" | "EXPIRED"

export interface PublicTrade {
  readonly symbol: string
  readonly tradeId: number
  readonly price: Fixed.Fixed
  readonly qty: Fixed.Fixed
  readonly time: number
  readonly buyerIsMaker: boolean
}

export interface OrderFill {
  readonly price: Fixed.Fixed
  readonly qty: Fixed.Fixed
  readonly commission: Fixed.Fixed
  readonly commissionAsset: string
  readonly tradeId: number
}

/** An order as the engine keeps it. Mutable inside the engine; callers get it read-only. */
export interface EngineOrder {
  readonly symbol: string
  readonly orderId: number
  readonly clientOrderId: string
  readonly side: Side
  readonly type: OrderType
  readonly timeInForce: TimeInForce
  /** Limit price; 0 for MARKET. */
  readonly price: Fixed.Fixed
  readonly origQty: Fixed.Fixed
  readonly origQuoteOrderQty: Fixed.Fixed
  executedQty: Fixed.Fixed
  cummulativeQuoteQty: Fixed.Fixed
  status: OrderStatus
  readonly time: number
  updateTime: number
  readonly workingTime: number
  readonly selfTradePreventionMode: string
  readonly strategyId: number | undefined
  readonly strategyType: number | undefined
  expiryReason: string | undefined
  readonly fills: Array<OrderFill>
  /** Amount of `lockedAsset` held while the order rests. */
  locked: Fixed.Fixed
  readonly lockedAsset: string
}

export interface NewOrder {
  readonly symbol: string
  readonly side: Side
  readonly type: OrderType
  readonly timeInForce: TimeInForce | undefined
  readonly quantity: Fixed.Fixed | undefined
  readonly quoteOrderQty: Fixed.Fixed | undefined
  readonly price: Fixed.Fixed | undefined
  readonly clientOrderId: string
  readonly selfTradePreventionMode: string | undefined
  readonly strategyId: number | undefined
  readonly strategyType: number | undefined
}

export interface Rejection {
  readonly code: number
  readonly msg: string
}

export type PlaceResult =
  | { readonly _tag: "Accepted"; readonly order: EngineOrder }
  | { readonly _tag: "Rejected"; readonly rejection: Rejection }

export interface Balance {
  readonly asset: string
  readonly free: Fixed.Fixed
  readonly locked: Fixed.Fixed
}

export interface EngineOptions {
  readonly specs: ReadonlyArray<SymbolSpec>
  readonly seed: number
  readonly startPrices: Readonly<Record<string, number>>
  readonly balances: Readonly<Record<string, number>>
  readonly takerFee: number
  readonly now: () => number
  /** Every public trade: random-walk ticks, injected trades and our own fills. */
  readonly onTrade: (trade: PublicTrade) => void
}

const filterFailure = (filter: string): Rejection => ({ code: -1013, msg: `Filter failure: ${filter}` })
const rejected = (msg: string): Rejection => ({ code: -2010, msg })

export const INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."

const WALK_VOLATILITY = 0.0004
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

interface Market {
  readonly spec: SymbolSpec
  readonly walk: PriceWalk
  lastPrice: Fixed.Fixed
  nextTradeId: number
  nextOrderId: number
  /**
   * The trades inside the avgPriceMins window, oldest first, for the NOTIONAL filter's average price: one entry per
   * millisecond with trades (Σ qty, Σ price × qty, each product truncated as a trade's own), from `recentHead` on.
   * At 50k trades/s one entry per trade made 15M objects per 5-minute window, each trade then splicing the array.
   */
  readonly recent: Array<{ readonly time: number; volume: Fixed.Fixed; notional: Fixed.Fixed }>
  recentHead: number
  /** Time of the symbol's last trade (avgPrice's closeTime), undefined before the first. */
  lastTradeTime: number | undefined
}

export class SimEngine {
  readonly #markets = new Map<string, Market>()
  readonly #balances = new Map<string, { free: Fixed.Fixed; locked: Fixed.Fixed }>()
  readonly #orders: Array<EngineOrder> = []
  readonly #fee: Fixed.Fixed
  readonly #now: () => number
  readonly #onTrade: (trade: PublicTrade) => void
  readonly #idRandom: () => number
  #updateTime: number

  constructor(options: EngineOptions) {
    this.#fee = Fixed.fromNumber(options.takerFee)
    this.#now = options.now
    this.#onTrade = options.onTrade
    this.#idRandom = mulberry32((options.seed ^ 0x5eed1d) >>> 0)
    this.#updateTime = options.now()
    for (const spec of options.specs) {
      const start = options.startPrices[spec.symbol] ?? spec.startPrice
      const walk = makePriceWalk(options.seed, spec.symbol, start, {
        tickSize: spec.tickSize,
        stepSize: spec.stepSize,
        volatility: WALK_VOLATILITY
      })
      this.#markets.set(spec.symbol, {
        spec,
        walk,
        lastPrice: Fixed.max(Fixed.roundTo(Fixed.fromNumber(start), spec.tickSize), spec.tickSize),
        nextTradeId: 1,
        nextOrderId: 1,
        recent: [],
        recentHead: 0,
        lastTradeTime: undefined
      })
      this.#balance(spec.baseAsset)
      this.#balance(spec.quoteAsset)
    }
    for (const [asset, amount] of Object.entries(options.balances)) {
      this.#balance(asset).free = Fixed.fromNumber(amount)
    }
  }

  // ---- market data ----------------------------------------------------------------------------

  symbols(): ReadonlyArray<string> {
    return [...this.#markets.keys()]
  }

  spec(symbol: string): SymbolSpec | undefined {
    return this.#markets.get(symbol)?.spec
  }

  lastPrice(symbol: string): Fixed.Fixed {
    return this.#market(symbol).lastPrice
  }

  /** Volume-weighted price of the last `avgPriceMins` minutes; the last price when nothing traded. */
  /** When the symbol last traded (Binance's avgPrice `closeTime`: "Last trade time"); undefined before its first trade. */
  lastTradeTime(symbol: string): number | undefined {
    return this.#market(symbol).lastTradeTime
  }

  avgPrice(symbol: string): Fixed.Fixed {
    const market = this.#market(symbol)
    this.#prune(market)
    let volume = Fixed.ZERO
    let notional = Fixed.ZERO
    for (let i = market.recentHead; i < market.recent.length; i++) {
      volume += market.recent[i].volume
      notional += market.recent[i].notional
    }
    return volume === Fixed.ZERO ? market.lastPrice : Fixed.roundTo(Fixed.div(notional, volume), 1n)
  }

  /** Next random-walk trade for `symbol`; resting orders it crosses fill. */
  tick(symbol: string): void {
    const market = this.#market(symbol)
    const step = market.walk.next()
    this.#marketTrade(market, step.price, step.qty, step.buyerIsMaker)
  }

  /** An outside trade at `price` (rounded to the tick); the walk continues from there. */
  emitTrade(symbol: string, price: number, qty?: number): void {
    const market = this.#market(symbol)
    const rounded = this.#roundPrice(market, price)
    market.walk.reset(price)
    const lots = qty === undefined ? BigInt(1 + Math.floor(market.walk.draw() * 100)) : undefined
    const size =
      lots !== undefined
        ? market.spec.stepSize * lots
        : Fixed.max(Fixed.roundTo(Fixed.fromNumber(qty ?? 0), market.spec.stepSize), market.spec.stepSize)
    this.#marketTrade(market, rounded, size, market.walk.draw() < 0.5)
  }

  /** Moves the price without a trade (the next MARKET order fills there). */
  setPrice(symbol: string, price: number): void {
    const market = this.#market(symbol)
    market.walk.reset(price)
    market.lastPrice = this.#roundPrice(market, price)
  }

  // ---- orders ---------------------------------------------------------------------------------

  orders(): ReadonlyArray<EngineOrder> {
    return this.#orders
  }

  openOrders(symbol?: string): ReadonlyArray<EngineOrder> {
    return this.#orders.filter((o) => isOpen(o) && (symbol === undefined || o.symbol === symbol))
  }

  allOrders(symbol: string): ReadonlyArray<EngineOrder> {
    return this.#orders.filter((o) => o.symbol === symbol)
  }

  findById(symbol: string, orderId: number): EngineOrder | undefined {
    return this.#orders.find((o) => o.symbol === symbol && o.orderId === orderId)
  }

  /** Client ids repeat once an order is no longer open: the newest one answers. */
  findByClientId(symbol: string, clientOrderId: string): EngineOrder | undefined {
    for (let i = this.#orders.length - 1; i >= 0; i--) {
      const order = this.#orders[i]
      if (order.symbol === symbol && order.clientOrderId === clientOrderId) return order
    }
    return undefined
  }

  generateClientOrderId(): string {
    let id = ""
    for (let i = 0; i < 22; i++) id += BASE62[Math.floor(this.#idRandom() * 62)]
    return id
  }

  /** Validates against the symbol's filters and the account, then executes. */
  place(input: NewOrder): PlaceResult {
    const market = this.#market(input.symbol)
    const spec = market.spec
    const now = this.#now()
    const reject = (rejection: Rejection): PlaceResult => ({ _tag: "Rejected", rejection })

    const price = input.price ?? Fixed.ZERO
    let qty: Fixed.Fixed
    if (input.type === "MARKET") {
      const fillPrice = market.lastPrice
      if (input.quantity !== undefined) {
        qty = input.quantity
      } else {
        const quote = input.quoteOrderQty ?? Fixed.ZERO
        if (spec.applyMinToMarket && quote < spec.minNotional) return reject(filterFailure("NOTIONAL"))
        qty = Fixed.floorTo(Fixed.div(quote, fillPrice), spec.stepSize)
      }
      const failure = marketQtyFailure(spec, qty) ?? notionalFailure(spec, Fixed.mul(this.avgPrice(input.symbol), qty), true)
      if (failure !== undefined) return reject(failure)
    } else {
      qty = input.quantity ?? Fixed.ZERO
      const failure =
        priceFailure(spec, price) ??
        lotSizeFailure(spec, qty) ??
        notionalFailure(spec, Fixed.mul(price, qty), false) ??
        (this.openOrders(input.symbol).length >= spec.maxNumOrders ? filterFailure("MAX_NUM_ORDERS") : undefined)
      if (failure !== undefined) return reject(failure)
    }

    if (this.#orders.some((o) => isOpen(o) && o.clientOrderId === input.clientOrderId)) {
      return reject(rejected("Duplicate order sent."))
    }

    const crosses =
      input.type === "MARKET" ||
      (input.side === "BUY" ? price >= market.lastPrice : price <= market.lastPrice)
    if (input.type === "LIMIT_MAKER" && crosses) return reject(rejected("Order would immediately match and take."))

    // BUY reserves quote at its own limit price (or the fill price for MARKET); SELL reserves base.
    const lockedAsset = input.side === "BUY" ? spec.quoteAsset : spec.baseAsset
    const required = input.side === "BUY" ? Fixed.mul(qty, input.type === "MARKET" ? market.lastPrice : price) : qty
    if (this.#balance(lockedAsset).free < required) return reject(rejected(INSUFFICIENT_BALANCE))

    const order: EngineOrder = {
      symbol: input.symbol,
      orderId: market.nextOrderId++,
      clientOrderId: input.clientOrderId,
      side: input.side,
      type: input.type,
      timeInForce: input.timeInForce ?? "GTC",
      price,
      origQty: qty,
      origQuoteOrderQty: input.quoteOrderQty ?? Fixed.ZERO,
      executedQty: Fixed.ZERO,
      cummulativeQuoteQty: Fixed.ZERO,
      status: "NEW",
      time: now,
      updateTime: now,
      workingTime: now,
      selfTradePreventionMode: input.selfTradePreventionMode ?? DEFAULT_STP_MODE,
      strategyId: input.strategyId,
      strategyType: input.strategyType,
      expiryReason: undefined,
      fills: [],
      locked: Fixed.ZERO,
      lockedAsset
    }
    this.#orders.push(order)

    if (crosses) {
      this.#fill(market, order, market.lastPrice, false, now)
    } else if (order.timeInForce === "GTC") {
      order.locked = required
      const balance = this.#balance(lockedAsset)
      balance.free -= required
      balance.locked += required
      this.#updateTime = now
    } else {
      order.status = "EXPIRED"
      order.expiryReason = order.timeInForce === "FOK" ? "UNFILLED_FOK_ORDER_EXPIRED" : "UNFILLED_IOC_QUANTITY_EXPIRED"
    }
    return { _tag: "Accepted", order }
  }

  /** Cancels an open order; `undefined` when it is not open (Binance: "Unknown order sent."). */
  cancel(order: EngineOrder): EngineOrder | undefined {
    if (!isOpen(order)) return undefined
    this.#release(order)
    order.status = "CANCELED"
    order.updateTime = this.#now()
    return order
  }

  balances(): ReadonlyArray<Balance> {
    return [...this.#balances.entries()].map(([asset, b]) => ({ asset, free: b.free, locked: b.locked }))
  }

  balanceUpdateTime(): number {
    return this.#updateTime
  }

  takerFee(): Fixed.Fixed {
    return this.#fee
  }

  // ---- internals ------------------------------------------------------------------------------

  #market(symbol: string): Market {
    const market = this.#markets.get(symbol)
    if (market === undefined) throw new Error(`unknown symbol ${symbol}`)
    return market
  }

  #balance(asset: string): { free: Fixed.Fixed; locked: Fixed.Fixed } {
    let balance = this.#balances.get(asset)
    if (balance === undefined) {
      balance = { free: Fixed.ZERO, locked: Fixed.ZERO }
      this.#balances.set(asset, balance)
    }
    return balance
  }

  #roundPrice(market: Market, price: number): Fixed.Fixed {
    return Fixed.max(Fixed.roundTo(Fixed.fromNumber(price), market.spec.tickSize), market.spec.tickSize)
  }

  #prune(market: Market): void {
    const cutoff = this.#now() - market.spec.avgPriceMins * 60_000
    const recent = market.recent
    let head = market.recentHead
    while (head < recent.length && recent[head].time < cutoff) head++
    // drop the stale entries in bulk (amortised O(1) per trade)
    if (head > 1024 && head * 2 > recent.length) {
      recent.splice(0, head)
      head = 0
    }
    market.recentHead = head
  }

  #publish(market: Market, price: Fixed.Fixed, qty: Fixed.Fixed, buyerIsMaker: boolean, time: number): number {
    const tradeId = market.nextTradeId++
    market.lastTradeTime = time
    const last = market.recent.length > market.recentHead ? market.recent[market.recent.length - 1] : undefined
    if (last !== undefined && last.time === time) {
      last.volume += qty
      last.notional += Fixed.mul(price, qty)
    } else {
      market.recent.push({ time, volume: qty, notional: Fixed.mul(price, qty) })
    }
    this.#prune(market)
    this.#onTrade({ symbol: market.spec.symbol, tradeId, price, qty, time, buyerIsMaker })
    return tradeId
  }

  /** A trade by other market participants: it sets the price and may cross our resting orders. */
  #marketTrade(market: Market, price: Fixed.Fixed, qty: Fixed.Fixed, buyerIsMaker: boolean): void {
    const now = this.#now()
    market.lastPrice = price
    this.#publish(market, price, qty, buyerIsMaker, now)
    for (const order of this.openOrders(market.spec.symbol)) {
      const crossed = order.side === "BUY" ? price <= order.price : price >= order.price
      if (crossed) this.#fill(market, order, order.price, true, now)
    }
  }

  #release(order: EngineOrder): void {
    if (order.locked === Fixed.ZERO) return
    const balance = this.#balance(order.lockedAsset)
    balance.locked -= order.locked
    balance.free += order.locked
    order.locked = Fixed.ZERO
  }

  /** Fills the whole remaining quantity at `price`; commission is taken from the asset received. */
  #fill(market: Market, order: EngineOrder, price: Fixed.Fixed, maker: boolean, now: number): void {
    const { baseAsset, quoteAsset } = market.spec
    const qty = order.origQty - order.executedQty
    const quote = Fixed.mul(qty, price)
    this.#release(order)
    const base = this.#balance(baseAsset)
    const quoteBalance = this.#balance(quoteAsset)
    let commission: Fixed.Fixed
    let commissionAsset: string
    if (order.side === "BUY") {
      commission = Fixed.mul(qty, this.#fee)
      commissionAsset = baseAsset
      quoteBalance.free -= quote
      base.free += qty - commission
    } else {
      commission = Fixed.mul(quote, this.#fee)
      commissionAsset = quoteAsset
      base.free -= qty
      quoteBalance.free += quote - commission
    }
    // The buyer is the maker when our resting BUY is hit, or when our taker order SELLs.
    const buyerIsMaker = maker ? order.side === "BUY" : order.side === "SELL"
    const tradeId = this.#publish(market, price, qty, buyerIsMaker, now)
    order.fills.push({ price, qty, commission, commissionAsset, tradeId })
    order.executedQty += qty
    order.cummulativeQuoteQty += quote
    order.status = "FILLED"
    order.updateTime = now
    this.#updateTime = now
  }
}

export const isOpen = (order: EngineOrder): boolean => order.status === "NEW" || order.status === "PARTIALLY_FILLED"

const priceFailure = (spec: SymbolSpec, price: Fixed.Fixed): Rejection | undefined =>
  (spec.minPrice > 0n && price < spec.minPrice) ||
  (spec.maxPrice > 0n && price > spec.maxPrice) ||
  !Fixed.isMultipleOf(price, spec.tickSize)
    ? filterFailure("PRICE_FILTER")
    : undefined

const lotSizeFailure = (spec: SymbolSpec, qty: Fixed.Fixed): Rejection | undefined =>
  qty < spec.minQty || qty > spec.maxQty || qty === Fixed.ZERO || !Fixed.isMultipleOf(qty, spec.stepSize)
    ? filterFailure("LOT_SIZE")
    : undefined

const marketQtyFailure = (spec: SymbolSpec, qty: Fixed.Fixed): Rejection | undefined =>
  lotSizeFailure(spec, qty) ??
  (qty < spec.marketMinQty ||
  (spec.marketMaxQty > 0n && qty > spec.marketMaxQty) ||
  !Fixed.isMultipleOf(qty, spec.marketStepSize)
    ? filterFailure("MARKET_LOT_SIZE")
    : undefined)

const notionalFailure = (spec: SymbolSpec, notional: Fixed.Fixed, market: boolean): Rejection | undefined =>
  ((!market || spec.applyMinToMarket) && notional < spec.minNotional) ||
  ((!market || spec.applyMaxToMarket) && notional > spec.maxNotional)
    ? filterFailure("NOTIONAL")
    : undefined
