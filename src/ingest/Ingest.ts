/**
 * Ingest: exchange trade stream → `market.raw`, with no holes and no duplicates.
 *
 * - Reconnects forever on close, error or silence with an exponential, jittered backoff capped at 30 s.
 * - Per symbol, trade ids are consecutive. The last published id is remembered; a trade id at or below it is a
 *   duplicate (dropped, counted). A jump is a gap: the missing ids are fetched with `historicalTrades` (paged) and
 *   published in id order before the live ticks after the gap, which wait in a bounded buffer meanwhile (other
 *   symbols flow on). Ids the exchange no longer has, or that keep failing, or that the time/buffer bound cuts off
 *   become a `MarketGap` on `market.gaps` (counted, logged, on /health); live data then resumes.
 * - On start it resumes after the last stored trade of each symbol (when not older than `backfillMax`).
 * - On interruption it sends a close frame and keeps publishing frames until the exchange's close (bounded).
 * - Every frame that fails to decode, or names a symbol not subscribed, is dead-lettered (`dlq`); the stream goes on.
 */
import { Clock, Config, Deferred, Duration, Effect, Exit, Fiber, Metric, Option, Schedule, Stream } from "effect"
import { Bus, type BusShape, publishDeadLetter } from "../bus/Bus.ts"
import type { BusError } from "../domain/Errors.ts"
import { type MarketGap, type Tick, tickId } from "../domain/Messages.ts"
import { MarketGaps, MarketRaw } from "../domain/Topics.ts"
import type { FrameResult } from "../exchange/BinanceCodec.ts"
import { Exchange, HISTORICAL_TRADES_MAX } from "../exchange/Exchange.ts"
import type { MarketStreamError } from "../exchange/ExchangeErrors.ts"
import { Health } from "../observability/Health.ts"
import { latencyTraceOn, traceMark } from "../observability/LatencyTrace.ts"
import { lastStoredTrades, type StoredTrade } from "./LastStored.ts"

export const ticksIngested = Metric.counter("ingest_ticks_total", { description: "Ticks published to market.raw (live and backfilled)" })
export const reconnects = Metric.counter("ingest_reconnects_total", { description: "Market-data reconnect attempts" })
export const duplicatesDropped = Metric.counter("ingest_duplicate_trades_total", {
  description: "Trades dropped because their id was at or below the last one published for the symbol"
})
export const tradesBackfilled = Metric.counter("ingest_backfilled_trades_total", {
  description: "Missing trades fetched with historicalTrades and published"
})
export const marketGapsTotal = Metric.counter("ingest_market_gaps_total", { description: "Gaps that could not be filled (MarketGap events)" })
export const gapTradesMissing = Metric.counter("ingest_market_gap_trades_total", { description: "Trade ids lost in MarketGap events" })
export const backfillSeconds = Metric.histogram("ingest_backfill_seconds", {
  description: "Time from a gap's detection until its symbol is live again",
  boundaries: Metric.exponentialBoundaries({ start: 0.01, factor: 2, count: 14 })
})

export const reconnectSchedule = Schedule.min([
  Schedule.exponential("500 millis", 2),
  Schedule.spaced("30 seconds")
]).pipe(Schedule.jittered)

/** Retries of one historicalTrades page; the gap's deadline bounds them. */
const pageRetrySchedule = Schedule.min([Schedule.exponential("100 millis", 2), Schedule.spaced("2 seconds")]).pipe(Schedule.jittered)

export interface IngestOptions {
  /** A gap's fill (all its pages) gives up after this long: the rest becomes a MarketGap and live data resumes. */
  readonly backfillTimeout: Duration.Duration
  /** Live ticks held per symbol while its gap is filled; past this the fill stops (MarketGap) so live data flows. */
  readonly backfillBuffer: number
  /** On start, resume after the store's last trade only when it is at most this old (else: a MarketGap). */
  readonly backfillMax: Duration.Duration
  /** Where the last run stopped, per symbol (the tick store's last trade). */
  readonly resume: Effect.Effect<ReadonlyMap<string, StoredTrade>>
  /** After the stop signal: how long the clean close and pending fills may take before they are cut. */
  readonly stopTimeout: Duration.Duration
}

export const defaultIngestOptions: IngestOptions = {
  backfillTimeout: Duration.seconds(30),
  backfillBuffer: 100_000,
  backfillMax: Duration.hours(1),
  resume: Effect.succeed(new Map()),
  stopTimeout: Duration.seconds(10)
}

/** The store's last trades, or nothing (logged) when it cannot be read: a missing store must not stop ingest. */
export const resumeFromStore = (dataDir: string, symbols: ReadonlyArray<string>): Effect.Effect<ReadonlyMap<string, StoredTrade>> =>
  lastStoredTrades(dataDir, symbols).pipe(
    Effect.tap((last) => Effect.logInfo("resuming after the stored trades", { dataDir, last: Object.fromEntries(last) })),
    Effect.catch((e) => Effect.logWarning("tick store unreadable; starting from live data", { path: e.path, error: e.message }).pipe(Effect.as(new Map())))
  )

/** INGEST_BACKFILL_MAX / _TIMEOUT / _BUFFER, and the store (DATA_DIR, unless STORE_ENABLED=false) to resume from. */
export const ingestOptionsConfig = (symbols: ReadonlyArray<string>) =>
  Config.all({
    backfillTimeout: Config.Duration("INGEST_BACKFILL_TIMEOUT").pipe(Config.withDefault(defaultIngestOptions.backfillTimeout)),
    backfillBuffer: Config.Int("INGEST_BACKFILL_BUFFER").pipe(Config.withDefault(defaultIngestOptions.backfillBuffer)),
    backfillMax: Config.Duration("INGEST_BACKFILL_MAX").pipe(Config.withDefault(defaultIngestOptions.backfillMax)),
    storeEnabled: Config.Boolean("STORE_ENABLED").pipe(Config.withDefault(true)),
    dataDir: Config.String("DATA_DIR").pipe(Config.withDefault("./data"))
  }).pipe(
    Effect.map((c): IngestOptions => ({
      ...defaultIngestOptions,
      backfillTimeout: c.backfillTimeout,
      backfillBuffer: c.backfillBuffer,
      backfillMax: c.backfillMax,
      resume: c.storeEnabled ? resumeFromStore(c.dataDir, symbols) : Effect.succeed(new Map())
    }))
  )

/** Per symbol: the last id published, and while a gap is being filled, the live ticks waiting behind it. */
interface Lane {
  readonly symbol: string
  last: number | undefined
  /** The resume point is older than backfillMax: the first gap is reported, not filled. */
  stale: boolean
  /** `last` came from the store and no live trade confirmed it yet. */
  resumed: boolean
  filling: boolean
  overflow: boolean
  buffer: Array<Tick>
}

const byId = (a: Tick, b: Tick) => a.tradeId - b.tradeId

/**
 * The ingest loop over a stream of frames (one or several connections): sequencing, gap fill, dead letters.
 * Exposed for tests and fuzzing; `runIngest` feeds it the exchange's connections.
 */
export const ingestFrames = <E, R>(
  symbols: ReadonlyArray<string>,
  frames: Stream.Stream<FrameResult, E, R>,
  options: IngestOptions
): Effect.Effect<void, E | BusError, R | Exchange | Bus | Health> =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const exchange = yield* Exchange
    const health = yield* Health
    const resume = yield* options.resume
    const now0 = yield* Clock.currentTimeMillis
    const maxAgeMs = Duration.toMillis(options.backfillMax)
    const lanes = new Map<string, Lane>()
    for (const symbol of symbols) {
      const stored = resume.get(symbol)
      lanes.set(symbol, {
        symbol,
        last: stored?.tradeId,
        stale: stored !== undefined && now0 - stored.ts > maxAgeMs,
        resumed: stored !== undefined,
        filling: false,
        overflow: false,
        buffer: []
      })
    }
    const fills = new Set<Fiber.Fiber<void>>()

    const stageScope = yield* Effect.scope
    const publisher = yield* makeTickPublisher(bus)
    const publish = publisher.offer

    const reportGap = (lane: Lane, firstMissing: number, lastMissing: number, reason: string) =>
      Effect.gen(function*() {
        if (lastMissing < firstMissing) return
        const gap: MarketGap = { symbol: lane.symbol, firstMissing, lastMissing, reason, ts: yield* Clock.currentTimeMillis }
        yield* Effect.logWarning("market data gap not filled", gap)
        yield* Metric.update(marketGapsTotal, 1)
        yield* Metric.update(gapTradesMissing, lastMissing - firstMissing + 1)
        yield* health.recordGap(gap)
        yield* bus.publish(MarketGaps, lane.symbol, gap).pipe(
          Effect.catch((e) => Effect.logError("MarketGap publish failed", { symbol: lane.symbol, error: e.message }))
        )
        lane.last = lastMissing
      })

    /** Fetches and publishes ids lane.last+1 .. upTo (inclusive) in id order, or reports what it cannot. */
    const fillHole = (lane: Lane, upTo: number, deadline: number) =>
      Effect.gen(function*() {
        if (lane.stale) {
          lane.stale = false
          return yield* reportGap(lane, (lane.last ?? 0) + 1, upTo, `the last stored trade is older than ${Duration.format(options.backfillMax)}`)
        }
        while ((lane.last ?? 0) < upTo) {
          const from = (lane.last ?? 0) + 1
          const now = yield* Clock.currentTimeMillis
          if (now >= deadline) return yield* reportGap(lane, from, upTo, `backfill took longer than ${Duration.format(options.backfillTimeout)}`)
          if (lane.overflow) return yield* reportGap(lane, from, upTo, `more than ${options.backfillBuffer} live trades waited behind the backfill`)
          const page = yield* exchange.historicalTrades(lane.symbol, from, Math.min(HISTORICAL_TRADES_MAX, upTo - from + 1)).pipe(
            Effect.tapError((e) => Effect.logWarning("historicalTrades failed", { symbol: lane.symbol, fromId: from, error: e._tag, detail: e.message })),
            Effect.retry(pageRetrySchedule),
            Effect.timeoutOption(Duration.millis(Math.max(1, deadline - now))),
            Effect.map(Option.some),
            Effect.catch((e) => reportGap(lane, from, upTo, `historicalTrades failed: ${e._tag}: ${e.message}`).pipe(Effect.as(Option.none())))
          )
          if (Option.isNone(page)) return
          if (Option.isNone(page.value)) {
            return yield* reportGap(lane, from, upTo, `backfill took longer than ${Duration.format(options.backfillTimeout)}`)
          }
          const ticks = page.value.value.filter((t) => t.tradeId >= from && t.tradeId <= upTo)
          if (ticks.length === 0) return yield* reportGap(lane, from, upTo, `the exchange has no trades from id ${from}`)
          // the exchange no longer has ids from..first-1
          if (ticks[0].tradeId > from) yield* reportGap(lane, from, ticks[0].tradeId - 1, "the exchange no longer has these trades")
          yield* publish(ticks)
          yield* Metric.update(tradesBackfilled, ticks.length)
          lane.last = ticks[ticks.length - 1].tradeId
        }
      })

    /** Fills every hole in front of the buffered live ticks and publishes them, until the buffer is empty. */
    const fill = (lane: Lane) =>
      Effect.gen(function*() {
        const started = yield* Clock.currentTimeMillis
        const deadline = started + Duration.toMillis(options.backfillTimeout)
        while (true) {
          // single-threaded: checking the buffer and going live again happen in one step
          if (lane.buffer.length === 0) {
            lane.filling = false
            lane.overflow = false
            break
          }
          const waiting = lane.buffer.sort(byId)
          lane.buffer = []
          let batch: Array<Tick> = []
          let dropped = 0
          for (const tick of waiting) {
            const last = lane.last ?? tick.tradeId - 1
            if (tick.tradeId <= last) {
              dropped++
              continue
            }
            if (tick.tradeId > last + 1) {
              yield* publish(batch)
              batch = []
              yield* fillHole(lane, tick.tradeId - 1, deadline)
            }
            batch.push(tick)
            lane.last = tick.tradeId
          }
          yield* publish(batch)
          if (dropped > 0) yield* Metric.update(duplicatesDropped, dropped)
        }
        const ended = yield* Clock.currentTimeMillis
        yield* Metric.update(backfillSeconds, (ended - started) / 1000)
      }).pipe(
        Effect.catchCause((cause) =>
          // the bus refused: let the next live tick find the gap again
          Effect.logError("backfill stopped", { symbol: lane.symbol, cause: String(cause) }).pipe(
            Effect.andThen(Effect.sync(() => {
              lane.filling = false
              lane.overflow = false
              lane.buffer = []
            }))
          )
        )
      )

    const handleChunk = (frames: ReadonlyArray<FrameResult>) =>
      Effect.gen(function*() {
        const live: Array<Tick> = []
        const tracing = latencyTraceOn()
        const gapped: Array<Lane> = []
        let duplicates = 0
        for (const frame of frames) {
          if (frame._tag === "Ignored") continue
          if (frame._tag === "Invalid") {
            yield* deadLetter(bus, frame.reason, frame.error, frame.raw)
            continue
          }
          const tick = frame.tick
          if (tracing) traceMark(tickId(tick), "ingest")
          const lane = lanes.get(tick.symbol)
          if (lane === undefined) {
            yield* deadLetter(bus, "unsubscribed_symbol", `trade for ${tick.symbol}, not one of ${symbols.join(",")}`, JSON.stringify(tick))
            continue
          }
          if (lane.resumed) {
            lane.resumed = false
            if (lane.last !== undefined && tick.tradeId <= lane.last) {
              // ids went backwards across the restart: another exchange, or a simulator that started over
              yield* Effect.logWarning("stored trades are ahead of the exchange's; not resuming from the store", {
                symbol: lane.symbol,
                stored: lane.last,
                live: tick.tradeId
              })
              lane.last = undefined
              lane.stale = false
            }
          }
          if (lane.filling) {
            lane.buffer.push(tick)
            if (lane.buffer.length > options.backfillBuffer) lane.overflow = true
            continue
          }
          if (lane.last !== undefined && tick.tradeId <= lane.last) {
            duplicates++
            continue
          }
          if (lane.last === undefined || tick.tradeId === lane.last + 1) {
            live.push(tick)
            lane.last = tick.tradeId
            continue
          }
          yield* Effect.logInfo("market data gap: backfilling", { symbol: lane.symbol, fromId: lane.last + 1, toId: tick.tradeId - 1 })
          lane.filling = true
          lane.buffer.push(tick)
          gapped.push(lane)
        }
        if (duplicates > 0) yield* Metric.update(duplicatesDropped, duplicates)
        // what came before the gaps is published first; the fills then run beside the live stream
        yield* publish(live)
        // in the stage's scope: the frames loop runs in a race with the publisher's failure, and would take its children along
        for (const lane of gapped) fills.add(yield* Effect.forkIn(fill(lane), stageScope))
        for (const f of fills) if (f.pollUnsafe() !== undefined) fills.delete(f)
      })

    // a failed publish ends the stage at once (nothing after it is sent: see makeTickPublisher)
    yield* Effect.raceFirst(frames.pipe(Stream.runForEachArray(handleChunk)), publisher.failed)
    yield* publisher.flush
    // the stream ended (clean close): let the fills finish, within the stop bound
    const pending = [...fills]
    if (pending.length > 0) {
      const done = yield* Fiber.awaitAll(pending).pipe(Effect.timeoutOption(options.stopTimeout))
      if (Option.isNone(done)) {
        yield* Effect.logWarning("stopped with backfills unfinished; the next start resumes from the store", {
          symbols: [...lanes.values()].filter((l) => l.filling).map((l) => l.symbol)
        })
        yield* Effect.forEach(pending, Fiber.interrupt, { discard: true })
      }
    }
    yield* publisher.flush
  }).pipe(Effect.scoped)

/** Ticks offered and not yet sent beyond which `offer` waits (the exchange's frames then wait in the socket). */
const PUBLISH_PENDING_MAX = 20_000

/**
 * Publishes ticks to market.raw without holding the ingest loop for the broker's answer: ticks offered while a publish
 * is in flight wait here and leave together in the next one, in the order offered (one FIFO for live ticks and
 * backfills, so a symbol's ticks stay in id order). One publish in flight at a time: when it fails, nothing offered
 * after it is ever sent (the waiting ticks are dropped, `failed` and every later `offer`/`flush` fail), so no tick
 * reaches Kafka ahead of an earlier one that did not; the stage restarts from the store and backfills, as before.
 * Before, each chunk of frames waited for its publish's answer before the next chunk was decoded.
 */
const makeTickPublisher = (bus: BusShape) =>
  Effect.gen(function*() {
    const scope = yield* Effect.scope
    const failedWith = yield* Deferred.make<never, BusError>()
    let pending: Array<Tick> = []
    let sending = false
    /** Woken after every answered publish (offers waiting for room, flushes). */
    let answered = Deferred.makeUnsafe<void>()
    const wake = () => {
      const woken = answered
      answered = Deferred.makeUnsafe<void>()
      Deferred.doneUnsafe(woken, Effect.void)
    }
    const loop: Effect.Effect<void, BusError> = Effect.suspend(() => {
      if (pending.length === 0) {
        sending = false
        wake()
        return Effect.void
      }
      const ticks = pending
      pending = []
      return bus.publishAll(MarketRaw, ticks.map((t) => ({ key: t.symbol, value: t }))).pipe(
        Effect.andThen(Metric.update(ticksIngested, ticks.length)),
        Effect.andThen(Effect.sync(wake)),
        Effect.andThen(loop)
      )
    })
    const guarded = loop.pipe(
      Effect.onExit((exit) =>
        Exit.isSuccess(exit) ? Effect.void : Effect.sync(() => {
          pending = []
          Deferred.doneUnsafe(failedWith, Exit.failCause(exit.cause))
          Deferred.doneUnsafe(answered, Effect.void)
        })
      )
    )
    const offer = (ticks: ReadonlyArray<Tick>): Effect.Effect<void, BusError> =>
      Effect.suspend(() => {
        if (Deferred.isDoneUnsafe(failedWith)) return Deferred.await(failedWith)
        if (ticks.length === 0) return Effect.void
        for (const t of ticks) pending.push(t)
        const start = sending ? Effect.void : Effect.suspend(() => {
          sending = true
          return Effect.asVoid(Effect.forkIn(guarded, scope, { startImmediately: true }))
        })
        return pending.length < PUBLISH_PENDING_MAX ? start : Effect.andThen(start, room)
      })
    /** Waits until the ticks waiting are below the bound again (or the publisher failed). */
    const room: Effect.Effect<void, BusError> = Effect.suspend(() => {
      if (Deferred.isDoneUnsafe(failedWith)) return Deferred.await(failedWith)
      if (pending.length < PUBLISH_PENDING_MAX) return Effect.void
      return Effect.andThen(Deferred.await(answered), room)
    })
    /** Waits until everything offered is published; fails if a publish failed. */
    const flush: Effect.Effect<void, BusError> = Effect.suspend(() => {
      if (Deferred.isDoneUnsafe(failedWith)) return Deferred.await(failedWith)
      if (!sending && pending.length === 0) return Effect.void
      return Effect.andThen(Deferred.await(answered), flush)
    })
    return { offer, flush, failed: Deferred.await(failedWith) }
  })

const deadLetter = (bus: BusShape, reason: string, error: string, raw: string) =>
  publishDeadLetter(bus, { stage: "ingest", reason, topic: "exchange.ws", key: "", raw, error })

/**
 * The exchange's frames for `symbols`, connection after connection. When `stop` completes, the current
 * connection is closed cleanly (close frame, frames until the exchange's close) and the stream ends.
 */
export const exchangeFrames = (
  symbols: ReadonlyArray<string>,
  stop: Deferred.Deferred<void>
): Stream.Stream<FrameResult, never, Exchange> =>
  Stream.unwrap(
    Effect.gen(function*() {
      const exchange = yield* Exchange
      // /ready waits for a receiving socket: not ready until a connection delivers its first frame, again after a drop
      const health = yield* Effect.serviceOption(Health)
      const marketData = (ok: boolean, detail: string) =>
        Option.isSome(health) ? health.value.setCheck("market-data", ok, detail) : Effect.void
      yield* marketData(false, "connecting")
      let attempt = 0
      const connection = Stream.suspend(() => {
        if (Deferred.isDoneUnsafe(stop)) return Stream.empty
        attempt++
        return exchange.trades(symbols, { close: Deferred.await(stop) }).pipe(
          Stream.onFirst(() => marketData(true, "receiving")),
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
        Stream.tapError((e: MarketStreamError) =>
          Effect.logWarning("market data disconnected", { url: e.url, reason: e.reason }).pipe(
            Effect.andThen(marketData(false, `disconnected: ${e.reason}`))
          )
        ),
        Stream.retry(reconnectSchedule),
        Stream.catchCause((cause) => Stream.die(cause)) // the schedule never ends: unreachable
      )
    })
  )

/**
 * The ingest stage. Interrupting it is a clean stop: close frame, every frame the exchange sent before it saw the
 * close is published, pending backfills finish; all of it bounded by `stopTimeout`.
 */
export const runIngest = (symbols: ReadonlyArray<string>, options?: IngestOptions) =>
  Effect.gen(function*() {
    const resolved = options ?? (yield* ingestOptionsConfig(symbols))
    const stop = yield* Deferred.make<void>()
    const fiber = yield* Effect.forkDetach(ingestFrames(symbols, exchangeFrames(symbols, stop), resolved))
    yield* Fiber.join(fiber).pipe(
      Effect.onInterrupt(() =>
        Effect.gen(function*() {
          yield* Effect.logInfo("market data closing")
          yield* Deferred.succeed(stop, undefined)
          const done = yield* Fiber.await(fiber).pipe(Effect.timeoutOption(resolved.stopTimeout))
          if (Option.isNone(done)) {
            yield* Effect.logWarning("market data close timed out", { after: Duration.format(resolved.stopTimeout) })
            yield* Fiber.interrupt(fiber)
          } else yield* Effect.logInfo("market data closed")
        })
      )
    )
  }).pipe(Effect.annotateLogs({ stage: "ingest" }))
