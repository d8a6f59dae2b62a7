/** The risk limits from env, on their own so that `replay` reads them without loading the risk stage and the bus. */
import { Config, Effect } from "effect"
import { inRange } from "../runtime/Settings.ts"

/** Risk limits from env; a value out of range stops the process at start with one line naming the variable. */
export const riskLimitsConfig = Effect.all({
  orderQty: inRange("ORDER_QTY", Config.Number("ORDER_QTY").pipe(Config.withDefault(0.001)), {
    minExclusive: 0,
    text: "a quantity > 0"
  }),
  maxPosition: inRange("RISK_MAX_POSITION", Config.Number("RISK_MAX_POSITION").pipe(Config.withDefault(0.01)), {
    minExclusive: 0,
    text: "a quantity > 0"
  }),
  maxTradesPerMinute: inRange("RISK_MAX_TRADES_PER_MINUTE", Config.Int("RISK_MAX_TRADES_PER_MINUTE").pipe(Config.withDefault(2)), {
    min: 1,
    text: "a whole number ≥ 1"
  }),
  maxTradesPerHour: inRange("RISK_MAX_TRADES_PER_HOUR", Config.Int("RISK_MAX_TRADES_PER_HOUR").pipe(Config.withDefault(20)), {
    min: 1,
    text: "a whole number ≥ 1"
  })
})
