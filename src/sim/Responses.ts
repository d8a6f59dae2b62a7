/** JSON bodies of Binance's order and account endpoints, fields in the order the documentation lists them. */
import type { EngineOrder, OrderFill, SimEngine } from "./Engine.ts"
import * as Fixed from "./Fixed.ts"

export type OrderRespType = "ACK" | "RESULT" | "FULL"

/** Fields that appear only when the request carried them or the state calls for them. */
const conditional = (order: EngineOrder): Record<string, unknown> => ({
  ...(order.strategyId !== undefined ? { strategyId: order.strategyId } : {}),
  ...(order.strategyType !== undefined ? { strategyType: order.strategyType } : {}),
  ...(order.expiryReason !== undefined ? { expiryReason: order.expiryReason } : {})
})

const fillJson = (fill: OrderFill) => ({
  price: Fixed.format(fill.price),
  qty: Fixed.format(fill.qty),
  commission: Fixed.format(fill.commission),
  commissionAsset: fill.commissionAsset,
  tradeId: fill.tradeId
})

/** POST /api/v3/order, in the ACK, RESULT or FULL shape. */
export const newOrder = (order: EngineOrder, respType: OrderRespType): Record<string, unknown> => {
  const ack = {
    symbol: order.symbol,
    orderId: order.orderId,
    orderListId: -1,
    clientOrderId: order.clientOrderId,
    transactTime: order.time
  }
  if (respType === "ACK") return ack
  const result = {
    ...ack,
    price: Fixed.format(order.price),
    origQty: Fixed.format(order.origQty),
    executedQty: Fixed.format(order.executedQty),
    origQuoteOrderQty: Fixed.format(order.origQuoteOrderQty),
    cummulativeQuoteQty: Fixed.format(order.cummulativeQuoteQty),
    status: order.status,
    timeInForce: order.timeInForce,
    type: order.type,
    side: order.side,
    workingTime: order.workingTime,
    ...conditional(order),
    selfTradePreventionMode: order.selfTradePreventionMode
  }
  if (respType === "RESULT") return result
  return { ...result, fills: order.fills.map(fillJson) }
}

/** GET /api/v3/order, openOrders and allOrders entries. */
export const queryOrder = (order: EngineOrder): Record<string, unknown> => ({
  symbol: order.symbol,
  orderId: order.orderId,
  orderListId: -1,
  clientOrderId: order.clientOrderId,
  price: Fixed.format(order.price),
  origQty: Fixed.format(order.origQty),
  executedQty: Fixed.format(order.executedQty),
  cummulativeQuoteQty: Fixed.format(order.cummulativeQuoteQty),
  status: order.status,
  timeInForce: order.timeInForce,
  type: order.type,
  side: order.side,
  stopPrice: Fixed.format(Fixed.ZERO),
  icebergQty: Fixed.format(Fixed.ZERO),
  time: order.time,
  updateTime: order.updateTime,
  isWorking: true,
  workingTime: order.workingTime,
  origQuoteOrderQty: Fixed.format(order.origQuoteOrderQty),
  ...conditional(order),
  selfTradePreventionMode: order.selfTradePreventionMode
})

/** DELETE /api/v3/order: `clientOrderId` is the cancel request's own id, `origClientOrderId` the order's. */
export const canceledOrder = (order: EngineOrder, cancelClientOrderId: string, transactTime: number): Record<string, unknown> => ({
  symbol: order.symbol,
  origClientOrderId: order.clientOrderId,
  orderId: order.orderId,
  orderListId: -1,
  clientOrderId: cancelClientOrderId,
  transactTime,
  price: Fixed.format(order.price),
  origQty: Fixed.format(order.origQty),
  executedQty: Fixed.format(order.executedQty),
  origQuoteOrderQty: Fixed.format(order.origQuoteOrderQty),
  cummulativeQuoteQty: Fixed.format(order.cummulativeQuoteQty),
  status: order.status,
  timeInForce: order.timeInForce,
  type: order.type,
  side: order.side,
  ...conditional(order),
  selfTradePreventionMode: order.selfTradePreventionMode
})

/** GET /api/v3/account. Commission in the integer form is basis points × 1 (0.001 → 10). */
export const account = (engine: SimEngine, omitZeroBalances: boolean): Record<string, unknown> => {
  const fee = engine.takerFee()
  const feeBps = Number((fee * 10000n) / Fixed.ONE)
  return {
    makerCommission: feeBps,
    takerCommission: feeBps,
    buyerCommission: 0,
    sellerCommission: 0,
    commissionRates: {
      maker: Fixed.format(fee),
      taker: Fixed.format(fee),
      buyer: Fixed.format(Fixed.ZERO),
      seller: Fixed.format(Fixed.ZERO)
    },
    canTrade: true,
    canWithdraw: true,
    canDeposit: true,
    brokered: false,
    requireSelfTradePrevention: false,
    preventSor: false,
    updateTime: engine.balanceUpdateTime(),
    accountType: "SPOT",
    balances: engine
      .balances()
      .filter((b) => !omitZeroBalances || b.free !== Fixed.ZERO || b.locked !== Fixed.ZERO)
      .map((b) => ({ asset: b.asset, free: Fixed.format(b.free), locked: Fixed.format(b.locked) })),
    permissions: ["SPOT"],
    uid: 100000001
  }
}
