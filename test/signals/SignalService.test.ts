/**
 * The signal worker over the bus, taking over symbols another instance handled before (scale-out, restart): it
 * rebuilds each symbol's windows from the ticks before the first one it handles, so its candidates are exactly
 * those of one worker that saw every tick: nothing missed right after the move, nothing invented.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Option, Stream } from "effect"
import * as InMemoryBus from "../../layers/InMemoryBus.ts"
import { Bus } from "../../src/bus/Bus.ts"
import type { Candidate, Tick } from "../../src/domain/Messages.ts"
import { MarketRaw, SignalsCandidate } from "../../src/domain/Topics.ts"
import { runSignalsWith, SIGNALS_GROUP } from "../../src/signals/SignalService.ts"
import { initialSignalState, stepSignal } from "../../src/signals/SignalWorker.ts"
import { tick } from "../support/fixtures.ts"

/** A wave with a crossover every ~20 ticks, different per symbol. */
const wave = (symbol: string, n: number, phase: number): Array<Tick> =>
  Array.from({ length: n }, (_, i) => tick(symbol, i + 1, 100 + 5 * Math.sin((i + phase) / 6) + (i % 3) * 0.1))

const expectedCandidates = (ticks: ReadonlyArray<Tick>): Array<Candidate> => {
  const state = initialSignalState()
  return ticks.flatMap((t) => {
    const c = stepSignal(state, t)
    return c === undefined ? [] : [c]
  })
}

describe("signal worker over the bus: taking over symbols", () => {
  it.live("a worker that starts where another one committed emits exactly the crossovers after that point", () =>
    Effect.gen(function*() {
      const bus = yield* Bus
      const symbols = ["BTCUSDT", "ETHUSDT"]
      const byTrade = symbols.map((s, k) => wave(s, 300, 7 * k))
      const all: Array<Tick> = []
      for (let i = 0; i < 300; i++) for (const w of byTrade) all.push(w[i])
      yield* bus.publishAll(MarketRaw, all.map((t) => ({ key: t.symbol, value: t })))
      // the previous owner handled (and committed) the first 305 ticks: both symbols mid-wave
      const handled = yield* bus.subscribe(MarketRaw, { group: SIGNALS_GROUP }).pipe(Stream.take(305), Stream.runCollect)
      yield* handled[304].commit
      const cut = new Map(symbols.map((s) => [s, Math.max(...handled.filter((d) => d.key === s).map((d) => d.value.tradeId))]))

      const expected = all
        .filter((t) => t.symbol === "BTCUSDT")
        .concat(all.filter((t) => t.symbol === "ETHUSDT"))
      const want = symbols.flatMap((s) => expectedCandidates(expected.filter((t) => t.symbol === s)).filter((c) => c.tickTradeId > cut.get(s)!))
      assert.isAtLeast(want.length, 10)
      // right after the move: the first crossover within a slow window of the cut would be missed by empty windows
      assert.isTrue(want.some((c) => c.tickTradeId - cut.get(c.symbol)! < 30), "a crossover close after the cut (the case a cold worker misses)")

      const worker = yield* runSignalsWith(Option.none()).pipe(Effect.forkChild)
      // all of market.raw handled (the worker commits after publishing), bounded
      for (let i = 0; (yield* bus.lag(MarketRaw, SIGNALS_GROUP)) > 0; i++) {
        if (i > 2000) assert.fail("the worker did not handle market.raw within 20 s")
        yield* Effect.sleep("10 millis")
      }
      yield* Fiber.interrupt(worker)
      const emitted = (yield* bus.endOffsets(SignalsCandidate)).get(0) ?? 0
      const candidates = emitted === 0 ? [] : yield* bus.subscribe(SignalsCandidate, { group: "test", ephemeral: true }).pipe(Stream.take(emitted), Stream.runCollect)
      const key = (c: Candidate) => `${c.id}@${c.price}`
      assert.deepStrictEqual(candidates.map((d) => key(d.value)).sort(), want.map(key).sort())
    }).pipe(Effect.provide(InMemoryBus.layerTest())))
})
