import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { SimExchangeServer } from "../../src/sim/index.ts"

const ping = (baseUrl: string) =>
  Effect.promise(() =>
    fetch(`${baseUrl}/api/v3/ping`).then(
      (r) => r.status,
      () => "unreachable" as const
    )
  )

describe("SimExchangeServer.make", () => {
  it.effect("serves while the scope is open and closes with it", () =>
    Effect.gen(function*() {
      const baseUrl = yield* Effect.scoped(
        Effect.gen(function*() {
          const sim = yield* SimExchangeServer.make({ symbols: ["BTCUSDT", "ETHUSDT"] })
          expect(sim.wsBaseUrl).toBe(`ws://127.0.0.1:${sim.port}`)
          expect(yield* ping(sim.restBaseUrl)).toBe(200)
          return sim.restBaseUrl
        })
      )
      expect(yield* ping(baseUrl)).toBe("unreachable")
    }))
})
