/** The simulated exchange as a scoped Effect resource: started on acquire, closed when the scope closes. */
import { Effect, type Scope } from "effect"
import { type SimExchange, type SimExchangeOptions, startSimExchange } from "./SimExchange.ts"

export const make = (options?: SimExchangeOptions): Effect.Effect<SimExchange, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => startSimExchange(options)),
    (sim) => Effect.promise(() => sim.close())
  )
