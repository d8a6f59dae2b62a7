/**
 * Checks that need the outside world, run once at start before any stage: the symbols exist on the exchange
 * (its exchangeInfo), and HTTP_PORT can be listened on. Each failure is a ConfigError with one line per problem.
 */
import { BigDecimal, Effect } from "effect"
import { createServer } from "node:net"
import { ConfigError } from "../domain/Errors.ts"
import { Exchange } from "../exchange/Exchange.ts"
import { displayRules, quoteOf, setSummaryQuote } from "../observability/PrettyLogger.ts"
import { SIM_MARKETS } from "../sim/Markets.ts"
import { unknownSymbolsProblem } from "./Settings.ts"

/** The embedded simulator offers a fixed set of markets; anything else would be an invented market. */
export const checkSimSymbols = (symbols: ReadonlyArray<string>): Effect.Effect<void, ConfigError> => {
  const problem = unknownSymbolsProblem(symbols, new Set(SIM_MARKETS), "the embedded simulated exchange")
  return problem === undefined ? Effect.void : Effect.fail(new ConfigError({ message: problem }))
}

/**
 * SYMBOLS against the exchange's exchangeInfo (all its symbols, one request); an unreachable exchange names the
 * URL and the cause. The symbols' tick and step sizes become the console's display precision.
 */
export const checkExchangeSymbols = (symbols: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const exchange = yield* Exchange
    const rules = yield* exchange.exchangeInfo([]).pipe(
      Effect.mapError((e) =>
        new ConfigError({
          message: `cannot check SYMBOLS against the exchange: ${e._tag === "ExchangeUnavailable" ? e.reason : e._tag === "ExchangeApiError" ? `${e.operation}: ${e.code} ${e.msg}` : e.message ?? e._tag}`
        })
      )
    )
    const known = new Set(rules.filter((r) => r.status === "TRADING" || r.status === "").map((r) => r.symbol))
    const all = new Set(rules.map((r) => r.symbol))
    const problem = unknownSymbolsProblem(symbols, all, "the exchange")
    if (problem !== undefined) return yield* new ConfigError({ message: problem })
    const halted = symbols.filter((s) => !known.has(s))
    if (halted.length > 0) yield* Effect.logWarning("symbols not trading on the exchange", { symbols: halted })
    for (const r of rules) {
      if (symbols.includes(r.symbol)) displayRules.set(r.symbol, {
        tickSize: BigDecimal.toNumberUnsafe(r.tickSize),
        stepSize: BigDecimal.toNumberUnsafe(r.stepSize),
        baseAsset: r.baseAsset,
        quoteAsset: r.quoteAsset
      })
    }
    if (symbols.length > 0) setSummaryQuote(quoteOf(symbols[0]))
  }).pipe(Effect.withSpan("StartupChecks.checkExchangeSymbols"))

/** Whether `port` can be listened on now: undefined, or the one line saying why not (naming HTTP_PORT). */
export const probePort = (port: number, host = "0.0.0.0"): Promise<string | undefined> =>
  new Promise((resolve) => {
    if (port === 0) return resolve(undefined)
    const server = createServer()
    server.once("error", (e: NodeJS.ErrnoException) =>
      resolve(
        `HTTP_PORT=${port} cannot be used: ${
          e.code === "EADDRINUSE" ? "another process is listening on it (EADDRINUSE)" : e.code === "EACCES" ? "permission denied (EACCES; ports below 1024 need privileges)" : `${e.code ?? ""} ${e.message}`.trim()
        }; choose a free port, or 0 to let the OS pick`
      ))
    server.listen(port, host, () => server.close(() => resolve(undefined)))
  })
