export {
  SIM_API_KEY,
  SIM_API_SECRET,
  type SimExchange,
  type SimExchangeOptions,
  type SimFault,
  type SimOrder,
  type SimRequest,
  startSimExchange
} from "./SimExchange.ts"
export * as SimExchangeServer from "./SimExchangeServer.ts"
