/**
 * Property tests of every decoder at a boundary: Binance trade frames, Binance REST answers and bus messages.
 * 10,000 generated inputs per decoder: none throws; each is a valid value or a refusal with a reason.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber, References, Schema, Stream } from "effect"
import fc from "fast-check"
import { makeInMemoryBus } from "../../layers/InMemoryBus.ts"
import { topicCodec } from "../../src/bus/Bus.ts"
import { DEAD_LETTER_RAW_MAX, Tick, tickJson } from "../../src/domain/Messages.ts"
import { AllTopics, DeadLetters, MarketRaw } from "../../src/domain/Topics.ts"
import {
  ApiErrorBody,
  decodeTradeFrame,
  decodeTradeFrameBySchema,
  ExchangeInfoWire,
  fastTradeFrame,
  historicalTicks,
  HistoricalTradesWire,
  MAX_FRAME_CHARS,
  MyTradesWire,
  OrderWire,
  ServerTimeWire
} from "../../src/exchange/BinanceCodec.ts"

const RUNS = 10_000
const isTick = Schema.is(Tick)
// shallow values keep 10,000 runs quick; depth adds nothing a decoder of flat payloads could trip on
const anything = fc.anything({ maxDepth: 1, maxKeys: 3 })
const json = fc.json({ maxDepth: 2 })

/** A well-formed trade payload whose fields fast-check may replace with anything. */
const tradePayload = fc.record({
  e: fc.oneof(fc.constant("trade"), anything),
  E: fc.oneof(fc.integer({ min: 0 }), anything),
  s: fc.oneof(fc.constantFrom("BTCUSDT", "ETHUSDT"), fc.string(), anything),
  t: fc.oneof(fc.nat(), fc.double(), anything),
  p: fc.oneof(fc.double({ min: 0, noNaN: true }).map(String), fc.string(), anything),
  q: fc.oneof(fc.double({ min: 0, noNaN: true }).map(String), fc.string(), anything),
  T: fc.oneof(fc.integer({ min: 0 }), fc.double(), anything),
  m: fc.oneof(fc.boolean(), anything),
  M: fc.boolean()
}, { requiredKeys: [] })

/** Frames: raw strings, any JSON, trade payloads (raw and combined), and valid frames cut or padded. */
const frame = fc.oneof(
  fc.string(),
  fc.string({ unit: "grapheme" }),
  json,
  tradePayload.map((p) => JSON.stringify(p)),
  tradePayload.map((p) => JSON.stringify({ stream: "btcusdt@trade", data: p })),
  fc.record({ id: anything, result: anything }).map((r) => JSON.stringify(r)),
  fc.tuple(tradePayload, fc.nat()).map(([p, n]) => {
    const text = JSON.stringify({ stream: "btcusdt@trade", data: p })
    return text.slice(0, n % (text.length + 1)) // partial frames
  }),
  fc.nat({ max: 3 }).map((n) => `{"e":"trade","pad":"${"x".repeat(MAX_FRAME_CHARS + n)}"}`) // oversized
)

const REASONS = new Set(["not_json", "schema", "bad_value", "oversized"])

describe("fuzzing the decoders (10,000 inputs each)", () => {
  it("Binance trade frames: each is a valid Tick, a control reply, or Invalid with a reason and the raw frame", () => {
    fc.assert(
      fc.property(frame, (text) => {
        const result = decodeTradeFrame(text, 1_700_000_000_000)
        switch (result._tag) {
          case "Tick":
            return isTick(result.tick)
          case "Ignored": {
            const json = JSON.parse(text) as Record<string, unknown>
            return typeof json === "object" && json !== null && "id" in json && "result" in json
          }
          case "Invalid":
            return REASONS.has(result.reason) && result.raw === text && result.error.length > 0
        }
      }),
      { numRuns: RUNS }
    )
  })

  // decodeTradeFrame answers well-formed frames by hand and hands everything else to the Schema path: both must
  // always agree, value for value and refusal for refusal (reason and message: they are the dead letter's)
  const decimal = fc.oneof(
    fc.double({ min: 0, max: 1e9, noNaN: true }).map(String),
    fc.tuple(fc.nat({ max: 99_999 }), fc.nat({ max: 99_999_999 })).map(([i, f]) => `${i}.${String(f).padStart(8, "0")}`),
    fc.constantFrom("0", "0.00000000", "1e-8", " 1", "", "-1", "Infinity", "0x10", "1_0", "NaN", " ")
  )
  const wellFormed = fc.record({
    e: fc.constant("trade"),
    E: fc.integer({ min: 0 }),
    s: fc.oneof(fc.constantFrom("BTCUSDT", "ETHUSDT", "1INCHUSDT"), fc.stringMatching(/^[A-Z0-9]{1,22}$/), fc.string({ maxLength: 50 })),
    t: fc.oneof(fc.nat(), fc.maxSafeNat(), fc.integer({ min: -5, max: -1 }), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant(2 ** 53 + 2)),
    p: decimal,
    q: decimal,
    T: fc.oneof(fc.integer({ min: 0 }), fc.double({ noNaN: true, noDefaultInfinity: true })),
    m: fc.boolean(),
    M: fc.boolean()
  })
  /** A well-formed payload with one field removed or replaced by anything, or extra keys added. */
  const nearlyWellFormed = fc.tuple(wellFormed, fc.nat({ max: 8 }), fc.oneof(anything, fc.constant(undefined)), fc.dictionary(fc.string({ maxLength: 6 }), anything, { maxKeys: 3 }))
    .map(([p, i, v, extra]) => {
      const key = Object.keys(p)[i]
      const out: Record<string, unknown> = { ...extra, ...p }
      if (v === undefined) delete out[key]
      else out[key] = v
      return out
    })
  const payloads = fc.oneof(wellFormed, nearlyWellFormed, tradePayload)
  const frames = fc.oneof(
    payloads.map((p) => JSON.stringify(p)),
    payloads.map((p) => JSON.stringify({ stream: "btcusdt@trade", data: p })),
    fc.tuple(payloads, anything).map(([p, stream]) => JSON.stringify({ stream, data: p })),
    fc.tuple(payloads, anything, anything).map(([p, id, result]) => JSON.stringify({ ...p, id, result })),
    fc.tuple(payloads, anything).map(([p, id]) => JSON.stringify({ ...p, id })),
    payloads.map((p) => JSON.stringify([p])),
    frame
  )

  it("Binance trade frames: the fast path and the Schema path give the same result for any frame", () => {
    fc.assert(
      fc.property(frames, (text) => {
        expect(decodeTradeFrame(text, 1_700_000_000_000)).toEqual(decodeTradeFrameBySchema(text, 1_700_000_000_000))
      }),
      { numRuns: RUNS }
    )
  })

  it("Binance trade frames: every well-formed frame (raw or combined) is answered by the fast path, as the Schema path answers it", () => {
    fc.assert(
      fc.property(wellFormed, fc.boolean(), (p, combined) => {
        const text = JSON.stringify(combined ? { stream: "btcusdt@trade", data: p } : p)
        const fast = fastTradeFrame(text, 1)
        expect(fast).toBeDefined()
        expect(fast).toEqual(decodeTradeFrameBySchema(text, 1))
      }),
      { numRuns: RUNS }
    )
  })

  const restDecoders = [
    ["historicalTrades", HistoricalTradesWire],
    ["order", OrderWire],
    ["exchangeInfo", ExchangeInfoWire],
    ["myTrades", MyTradesWire],
    ["time", ServerTimeWire],
    ["error", ApiErrorBody]
  ] as const

  const historicalRow = fc.record({
    id: fc.oneof(fc.nat(), fc.double(), anything),
    price: fc.oneof(fc.double({ min: 0, noNaN: true }).map(String), fc.string(), anything),
    qty: fc.oneof(fc.double({ min: 0, noNaN: true }).map(String), fc.string(), anything),
    quoteQty: fc.oneof(fc.double().map(String), anything),
    time: fc.oneof(fc.integer({ min: 0 }), anything),
    isBuyerMaker: fc.oneof(fc.boolean(), anything),
    isBestMatch: fc.oneof(fc.boolean(), anything)
  }, { requiredKeys: [] })
  const body = fc.oneof(fc.string(), json, fc.array(historicalRow, { maxLength: 5 }).map((rows) => JSON.stringify(rows)))

  for (const [name, schema] of restDecoders) {
    it(`REST ${name} answers: decoded or refused, never a throw`, () => {
      const decode = Schema.decodeUnknownExit(Schema.fromJsonString(schema))
      fc.assert(
        fc.property(body, (text) => {
          const exit = decode(text)
          return Exit.isSuccess(exit) || Exit.isFailure(exit)
        }),
        { numRuns: RUNS }
      )
    })
  }

  it("REST historicalTrades rows → Ticks: every tick valid and ids increasing, or the whole page refused with a reason", () => {
    const decode = Schema.decodeUnknownExit(Schema.fromJsonString(HistoricalTradesWire))
    fc.assert(
      fc.property(fc.array(historicalRow, { maxLength: 8 }).map((rows) => JSON.stringify(rows)), (text) => {
        const exit = decode(text)
        if (Exit.isFailure(exit)) return true
        const page = historicalTicks("BTCUSDT", exit.value, 1_700_000_000_000)
        if (page._tag === "Invalid") return page.error.length > 0
        return page.ticks.every((t, i) => isTick(t) && (i === 0 || t.tradeId > page.ticks[i - 1].tradeId))
      }),
      { numRuns: RUNS }
    )
  })

  it("market.raw's hand-written JSON paths accept only what the Tick schema accepts, and give its text and value", () => {
    const encodeBySchema = Schema.encodeUnknownExit(Tick)
    const decodeBySchema = Schema.decodeUnknownExit(Tick)
    const valid = fc.record({
      symbol: fc.constantFrom("BTCUSDT", "ETHUSDT", "1000SATSUSDT"),
      price: fc.double({ min: Number.MIN_VALUE, max: 1e12, noNaN: true }),
      size: fc.oneof(fc.constant(0), fc.constant(-0), fc.double({ min: 0, max: 1e9, noNaN: true })),
      side: fc.constantFrom("BUY", "SELL"),
      tradeId: fc.oneof(fc.nat(), fc.maxSafeNat()),
      ts: fc.integer({ min: 0, max: 2 ** 45 }),
      receivedAt: fc.oneof(fc.integer({ min: 0, max: 2 ** 45 }), fc.double({ noNaN: true, noDefaultInfinity: true }))
    })
    // a valid tick with any one field replaced by anything, or an extra field, or not an object at all
    const field = fc.constantFrom("symbol", "price", "size", "side", "tradeId", "ts", "receivedAt", "extra")
    const candidates = fc.oneof(
      valid,
      fc.tuple(valid, field, fc.oneof(anything, fc.string(), fc.double(), fc.integer())).map(([t, k, v]) => ({ ...t, [k]: v })),
      anything
    )
    let fastEncoded = 0
    fc.assert(
      fc.property(candidates, (t) => {
        const text = tickJson.encode(t as Tick)
        const schema = encodeBySchema(t)
        if (text !== undefined) {
          fastEncoded++
          if (!Exit.isSuccess(schema) || text !== JSON.stringify(schema.value)) return false
        }
        const parsed = JSON.parse(JSON.stringify(t) ?? "null")
        const fast = tickJson.decode(parsed)
        if (fast === undefined) return true
        const bySchema = decodeBySchema(parsed)
        return Exit.isSuccess(bySchema) && JSON.stringify(fast) === JSON.stringify(bySchema.value) && Object.is(fast.size, bySchema.value.size)
      }),
      { numRuns: RUNS }
    )
    // every valid tick takes the fast paths (else they would be correct but useless)
    fc.assert(fc.property(valid, (t) => tickJson.encode(t as Tick) !== undefined && tickJson.decode(JSON.parse(JSON.stringify(t))) !== undefined))
    expect(fastEncoded).toBeGreaterThan(RUNS / 10)
  })

  it("bus messages of every topic: decoded (and re-encodable to the same value) or refused, never a throw", () => {
    const codecs = AllTopics.map((topic) => ({ topic, codec: topicCodec(topic) }))
    fc.assert(
      fc.property(fc.oneof(fc.string(), json, tradePayload.map((p) => JSON.stringify(p))), fc.nat(), (text, pick) => {
        const { codec } = codecs[pick % codecs.length]
        const exit = codec.decode(text)
        if (Exit.isFailure(exit)) return true
        const again = codec.decode(codec.encode(exit.value))
        return Exit.isSuccess(again) && JSON.stringify(again.value) === JSON.stringify(exit.value)
      }),
      { numRuns: RUNS }
    )
  })

  // the codec above sees 10,000 inputs; this checks the consumer path around it (delivery, dead letter, commit)
  it.effect("2,000 fuzzed market.raw messages through the in-memory bus: each delivered or dead-lettered with a reason", () =>
    Effect.gen(function*() {
      const RUNS = 2_000
      const bus = makeInMemoryBus()
      const inputs = fc.sample(fc.oneof(fc.string(), json, tradePayload.map((p) => JSON.stringify(p))), { numRuns: RUNS, seed: 42 })
      for (const text of inputs) yield* bus.publishRaw(MarketRaw.name, "k", text)
      let delivered = 0
      const consumer = yield* bus.subscribe(MarketRaw, { group: "fuzz" }).pipe(
        Stream.runForEach((d) => Effect.sync(() => delivered++).pipe(Effect.andThen(d.commit))),
        Effect.forkChild
      )
      while ((yield* bus.lag(MarketRaw, "fuzz")) > 0) yield* Effect.yieldNow
      yield* Fiber.interrupt(consumer)
      const letters = yield* bus.subscribe(DeadLetters, { group: "fuzz-dlq", ephemeral: true }).pipe(
        Stream.take(RUNS - delivered),
        Stream.runCollect
      )
      expect(delivered + letters.length).toBe(RUNS)
      for (const l of letters) {
        expect(l.value.stage).toBe("fuzz")
        expect(["not_json", "schema"]).toContain(l.value.reason)
        expect(l.value.raw.length).toBeLessThanOrEqual(DEAD_LETTER_RAW_MAX)
      }
    }).pipe(Effect.provideService(References.MinimumLogLevel, "Error")))
})
