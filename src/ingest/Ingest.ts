/**
 * Ingest: exchange trade stream → `market.raw`. Reconnects forever on close, error or silence with an
 * exponential, jittered backoff capped at 30 s (reset once data flows again). A frame that does not decode is
 * logged with the raw frame, counted and dead-lettered; the stream goes on.
 */
import { Array as Arr, Clock, Effect, Metric, Schedule, Stream } from "effect"
import { Bus } from "../bus/Bus.ts"
import type { Tick } from "../domain/Messages.ts"
import { DeadLetters, MarketRaw } from "../domain/Topics.ts"
import { Exchange } from "../exchange/Exchange.ts"
import type { MarketStreamError } from "../exchange/ExchangeErrors.ts"

export const ticksIngested = Metric.counter("ingest_ticks_total", { description: "Ticks published to market.raw" })
export const framesInvalid = Metric.counter("ingest_invalid_frames_total", { description: "Frames that failed to decode" })
export const reconnects = Metric.counter("ingest_reconnects_total", { description: "Market-data reconnect attempts" })

export const reconnectSchedule = Schedule.min([
  Schedule.exponential("500 millis", 2),
  Schedule.spaced("30 seconds")
]).pipe(Schedule.jittered)

/** The exchange's ticks for `symbols`, reconnecting as needed. Invalid frames are handled here. */
export const tickStream = (symbols: ReadonlyArray<string>): Stream.Stream<Tick, never, Exchange | Bus> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const exchange = yield* Exchange
      const bus = yield* Bus
      let attempt = 0
      const connection = Stream.suspend(() => {
        attempt++
        return exchange.trades(symbols).pipe(
          Stream.onStart(
            attempt === 1
              ? Effect.logInfo("market data connecting", { symbols })
              : Effect.logInfo("market data reconnecting", { symbols, attempt }).pipe(
                Effect.andThen(Metric.update(reconnects, 1))
              )
          )
        )
      })
      return connection.pipe(
        Stream.tapError((e: MarketStreamError) => Effect.logWarning("market data disconnected", { url: e.url, reason: e.reason })),
        Stream.retry(reconnectSchedule),
        Stream.catchCause((cause) => Stream.die(cause)), // the schedule never ends: unreachable
        // Whole chunks (every frame that arrived since the last pull), so a busy market is published in batches
        // rather than one bus round trip per tick.
        // Chunk by chunk (every frame that arrived since the last pull; Stream.filter keeps chunks whole), so a
        // busy market is published in batches instead of one bus round trip per tick.
        Stream.mapArrayEffect((frames) => {
          const out = Arr.map(frames, (frame) => (frame._tag === "Tick" ? frame.tick : undefined))
          const invalid = frames.filter((frame) => frame._tag === "Invalid")
          if (invalid.length === 0) return Effect.succeed(out)
          return Effect.forEach(invalid, (frame) =>
            Effect.gen(function*() {
              yield* Metric.update(framesInvalid, 1)
              yield* Effect.logWarning("invalid market frame", { error: frame.error, raw: frame.raw })
              const ts = yield* Clock.currentTimeMillis
              yield* bus.publish(DeadLetters, "exchange.ws", { topic: "exchange.ws", key: "", raw: frame.raw, error: frame.error, ts }).pipe(
                Effect.catch((e) => Effect.logError("dead-letter publish failed", { error: e.message }))
              )
            }), { discard: true }).pipe(Effect.as(out))
        }),
        Stream.filter((t): t is Tick => t !== undefined)
      )
    })
  )

/** The ingest stage: publishes each available batch of ticks to `market.raw`, keyed by symbol. */
export const runIngest = (symbols: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    yield* tickStream(symbols).pipe(
      Stream.runForEachArray((ticks) =>
        bus.publishAll(MarketRaw, ticks.map((t) => ({ key: t.symbol, value: t }))).pipe(
          Effect.andThen(Metric.update(ticksIngested, ticks.length))
        )
      )
    )
  }).pipe(Effect.annotateLogs({ stage: "ingest" }))
