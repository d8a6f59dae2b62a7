/**
 * The exchange's REST API as a readiness dependency: probed at start and every few seconds (GET /api/v3/time, which
 * also keeps the signing clock offset fresh), reported on /ready as `exchange-rest` with the URL and cause when it
 * does not answer.
 */
import { Duration, Effect, Layer, Schedule } from "effect"
import { Exchange } from "../exchange/Exchange.ts"
import type { ExchangeError } from "../exchange/ExchangeErrors.ts"
import { Health } from "./Health.ts"

const why = (e: ExchangeError): string => {
  switch (e._tag) {
    case "ExchangeUnavailable":
      return e.reason
    case "ExchangeApiError":
      return `${e.operation}: HTTP ${e.httpStatus} ${e.code} ${e.msg}`
    case "ExchangeRateLimited":
      return `${e.operation}: rate limited (HTTP ${e.httpStatus}), retry after ${e.retryAfterMs} ms`
    case "ExchangeDecodeError":
      return `${e.operation}: unexpected answer: ${e.message.split("\n")[0]}`
  }
}

export const restProbe = (every: Duration.Input = Duration.seconds(5)) =>
  Layer.effectDiscard(
    Effect.gen(function*() {
      const exchange = yield* Exchange
      const health = yield* Health
      yield* health.setCheck("exchange-rest", false, "not checked yet")
      const probe = exchange.syncTime.pipe(
        Effect.matchEffect({
          onSuccess: () => health.setCheck("exchange-rest", true, "answering"),
          onFailure: (e) => health.setCheck("exchange-rest", false, why(e))
        })
      )
      yield* probe.pipe(Effect.repeat(Schedule.spaced(every)), Effect.forkScoped)
    })
  )
