/**
 * Order manager: approved signal → signed MARKET order → `orders.events`. Never a duplicate, never a lost order,
 * never an unbounded loop. The order path is a bounded state machine:
 *
 * ```
 *   approved ──► place ──► Placed ──► settle ──► OrderFilled | OrderRejected
 *                 │  ▲ retry (429/418 after Retry-After, busy, refused connection, −1021 after a resync):
 *                 │  └ `placeSchedule`, at most `maxAttempts` signed requests → OrderFailed
 *                 ├─► refused (filters, balance) → OrderRejected;  credentials/unknown code → OrderFailed + halt
 *                 └─► unknown (timeout, drop, 5xx) → OrderUncertain ──► reconcile
 *   reconcile: look the order up (`lookupSchedule`, at most `maxLookups`):
 *        found ──► settle (a resting order is polled on the same bounded schedule, never reset)
 *        −2013 ──► wait until the LATEST attempt can no longer execute, look once more; still −2013 → not placed:
 *                  resend (a new attempt), at most `maxResends` times → OrderFailed + alert + symbol paused
 *        still unknown after the bound ──► OrderUncertain ("gave up …") + alert + symbol paused; the order is
 *                  reconciled in the background (`backgroundSchedule`, bounded) and its lane moves on.
 * ```
 *
 * Idempotency and crash safety:
 * - the client order id follows from the signal id, and the state of every signal handled is rebuilt from
 *   `orders.events` at start, so a redelivered approval is never sent twice;
 * - EVERY signed placement request is made durable before it leaves: `OrderSubmitted` (first) or `OrderAttempt`
 *   (further ones) carries its signed `timestamp` (`signedAt`, exchange clock) and `recvWindow`. An order the exchange
 *   does not know (−2013) is resent only once the latest attempt can no longer execute:
 *   exchange time > signedAt + recvWindow + `clockSkewMarginMs`. A restarted manager rebuilds the latest attempt from
 *   the events, so a retry held in transit across a crash cannot be doubled by a resend;
 * - 429/418 honour Retry-After and hold every request until then; −1021 resyncs the clock, bounded.
 * - scale-out: each drive carries the symbol's `Ownership`; before every signed request and every event it checks the
 *   symbol is still this instance's (else it stops: the new owner takes the order over from `orders.events`), and
 *   before a retry or a resend it catches up with `orders.events` (another instance may have sent or settled the
 *   order) and waits out the window of the latest attempt anyone made.
 *
 * Lanes: `handle` is called per symbol in FIFO order by `OrderService`; symbols run independently, so a stuck symbol
 * only holds its own lane, and a given-up order never holds even that (its reconciliation is in the background).
 */
import { BigDecimal, Clock, Data, Duration, Effect, Metric, Ref, Schedule } from "effect"
import { Bus } from "../bus/Bus.ts"
import type { BusError } from "../domain/Errors.ts"
import type { Alert, Approved, Control, OrderEvent, Origin } from "../domain/Messages.ts"
import { Alerts, ControlTopic, OrdersEvents } from "../domain/Topics.ts"
import { Exchange, type ExchangeOrder, type OrderRequest, type SymbolRules } from "../exchange/Exchange.ts"
import type { ExchangeError } from "../exchange/ExchangeErrors.ts"
import { traceLink, traceMark } from "../observability/LatencyTrace.ts"
import { decisionToAckSeconds, perAttributes, secondsBetween, tickToOrderSeconds } from "../observability/Metrics.ts"
import { classifyApiError } from "./ErrorPolicy.ts"
import { clientOrderIdFor, prepareMarketOrder, roundDownToStep } from "./OrderPrep.ts"

export interface OrderManagerOptions {
  readonly symbols: ReadonlyArray<string>
  /** recvWindow signed into every placement (ms): a request older than this (exchange clock) can no longer execute. */
  readonly recvWindowMs: number
  /** Signed placement requests per placement round before the order is given up (known not placed): 429, busy, refused. */
  readonly maxAttempts: number
  /** Lookups of an uncertain order (or polls of a resting one) before it is handed to background reconciliation. */
  readonly maxLookups: number
  /** First lookup / retry delay; grows exponentially (jittered) up to `maxBackoff`. */
  readonly lookupBackoff: Duration.Duration
  readonly maxBackoff: Duration.Duration
  /** Resends after the exchange said −2013 past the last attempt's window, before the signal ends as OrderFailed. */
  readonly maxResends: number
  /** −1021 answers (each followed by a clock resync) tolerated per round before giving up. */
  readonly maxResyncs: number
  /** Added to recvWindow before a not-found order counts as "can no longer execute": clock-offset error, transit. */
  readonly clockSkewMarginMs: number
  /** Background reconciliation of a given-up order: every `backgroundEvery`, at most `backgroundLookups` times. */
  readonly backgroundEvery: Duration.Duration
  readonly backgroundLookups: number
}

export const defaultOrderManagerOptions = (symbols: ReadonlyArray<string>): OrderManagerOptions => ({
  symbols,
  recvWindowMs: 5000,
  maxAttempts: 6,
  maxLookups: 10, // ≈ 65 s of lookups at 0.5 s doubling capped at 10 s
  lookupBackoff: Duration.millis(500),
  maxBackoff: Duration.seconds(10),
  maxResends: 2,
  maxResyncs: 2,
  clockSkewMarginMs: 1000,
  backgroundEvery: Duration.seconds(30),
  backgroundLookups: 120
})

/**
 * Whether this instance still owns a symbol (scale-out: its partition of `signals.approved` may move to another
 * instance at any time), and how to catch up with what other instances wrote on `orders.events`. Checked before
 * every signed request and every event about an order: a revoked owner stops driving it (the new owner rebuilds it
 * from `orders.events` and reconciles it), so two instances never send the same client order id side by side.
 */
export interface Ownership {
  readonly owned: Effect.Effect<boolean>
  /** `owned` read at once, where the bus can (in process): the first placement's fence without the interpreter. */
  readonly ownedNow?: () => boolean
  readonly catchUp: Effect.Effect<void, BusError>
}

/** A single instance: it always owns its symbols and nobody else writes `orders.events`. */
export const soleOwner: Ownership = { owned: Effect.succeed(true), ownedNow: () => true, catchUp: Effect.void }

export type Status = "submitted" | "uncertain" | "accepted" | "filled" | "rejected" | "failed"

interface OrderRecord {
  readonly signalId: string
  readonly clientOrderId: string
  readonly symbol: string
  readonly side: "BUY" | "SELL"
  readonly action: "OPEN" | "CLOSE"
  readonly qty: number
  readonly origin: Origin
  status: Status
  /** Signed placement requests made durable so far (OrderSubmitted = 1, OrderAttempt = its number). */
  attempts: number
  /** The latest attempt's signed timestamp (exchange clock) and window: until both have passed it may still execute. */
  signedAt: number
  recvWindowMs: number
  /** Whether any request for this order may have reached the exchange (false: refused connections only). */
  reachedExchange: boolean
  /** The ownership of the symbol under which this instance drives the order (set by each drive). */
  owner: Ownership
  /** The quantity as sent, when this instance prepared the order (else rounded again from `qty`). */
  readonly quantityText?: string
}

const FINAL: ReadonlySet<Status> = new Set(["filled", "rejected", "failed"])

const statusOf = (e: OrderEvent): Status => {
  switch (e._tag) {
    case "OrderSubmitted":
    case "OrderAttempt":
      return "submitted"
    case "OrderUncertain":
      return "uncertain"
    case "OrderAccepted":
      return "accepted"
    case "OrderFilled":
      return "filled"
    case "OrderRejected":
      return "rejected"
    case "OrderFailed":
      return "failed"
  }
}

export const ordersSent = Metric.counter("orders_sent_total", { description: "Order placement requests sent" })
export const ordersFilled = Metric.counter("orders_filled_total", { description: "Orders filled" })
// the same counters with their labels fixed: updated per order (see perAttributes)
const ordersSentBy = perAttributes((attributes) => Metric.counter("orders_sent_total", { description: "Order placement requests sent", attributes }))
const ordersFilledBy = perAttributes((attributes) => Metric.counter("orders_filled_total", { description: "Orders filled", attributes }))
export const ordersRejected = Metric.counter("orders_rejected_total", { description: "Orders rejected (exchange or local)" })
export const orderErrors = Metric.counter("orders_errors_total", { description: "Exchange errors seen by the order manager" })
export const ordersGivenUp = Metric.counter("orders_given_up_total", {
  description: "Orders whose retry, lookup or resend bound was hit (failed, or handed to background reconciliation)"
})
export const duplicatesSuppressed = Metric.counter("orders_duplicates_suppressed_total", {
  description: "Approved signals redelivered and not sent again"
})

export interface OrderManager {
  /** Rebuilds state from past `orders.events` (call before handling anything); idempotent, any order of events. */
  readonly rebuild: (events: Iterable<OrderEvent>) => void
  /** Handles one approved signal to a final state, or to "given up, reconciling in the background". Bounded. */
  readonly handle: (approved: Approved, owner?: Ownership) => Effect.Effect<void, BusError>
  /**
   * The tick → order path: places a new approval's first request at once, before it returns, and gives back what
   * `handle` would do after that request (its answer, retries, lookups, settle); undefined when the approval needs
   * `handle` (see `placeNow` below). Never both for one approval.
   */
  readonly placeNow: (approved: Approved, owner?: Ownership) => Effect.Effect<void, BusError> | undefined
  /** Orders a previous run left in flight, each with the effect that reconciles it (run them in their symbol's lane). */
  readonly inFlightOrders: Effect.Effect<ReadonlyArray<{ readonly symbol: string; readonly reconcile: (owner?: Ownership) => Effect.Effect<void, BusError> }>>
  /** Reconciles every order a previous run left in flight, one after the other. */
  readonly resumeInFlight: Effect.Effect<void, BusError>
  /** Observes an order event published by anyone (keeps state in step across instances). */
  readonly observe: (event: OrderEvent) => void
  /** An operator's /resume lifts the manager's halts (all, or the symbol's). */
  readonly control: (control: Control) => void
  /** @deprecated use `control`; `false` lifts every halt. */
  readonly setPaused: (paused: boolean) => void
  /** Loads / refreshes exchange filters. */
  readonly refreshRules: Effect.Effect<void, ExchangeError>
  readonly inFlight: Effect.Effect<number>
  /** What the manager knows of each signal (diagnostics, and the tests that rebuild from duplicated events). */
  readonly snapshot: Effect.Effect<ReadonlyArray<{
    readonly signalId: string
    readonly status: Status
    readonly attempts: number
    readonly signedAt: number
    readonly recvWindowMs: number
  }>>
}

// ---- outcomes of one step (typed, so each loop's Schedule retries exactly what it may retry) ----------------------

/** This request certainly did not execute and may be retried after a delay (429/418, busy, refused, −1021). */
class PlaceRetry extends Data.TaggedError("PlaceRetry")<{ readonly code: number; readonly reason: string; readonly sent: boolean }> {}
/** A lookup failed in a way worth trying again. */
class LookupRetry extends Data.TaggedError("LookupRetry")<{ readonly reason: string }> {}
/** The exchange does not know the order and the latest attempt can no longer execute. */
class NotPlaced extends Data.TaggedError("NotPlaced")<{ readonly reason: string }> {}
/** The symbol's partition moved to another instance: stop driving the order (the new owner takes it over). */
class Moved extends Data.TaggedError("Moved")<{ readonly symbol: string }> {}
type Fail = BusError | Moved

type PlaceResult =
  | { readonly _tag: "Placed"; readonly order: ExchangeOrder }
  | { readonly _tag: "Unknown"; readonly reason: string }
  | { readonly _tag: "Done" }

/** A placement request on the wire (`placeNow`), or to be written when `answer` runs: its durable event and its answer. */
interface Sent {
  readonly submitted: OrderEvent
  readonly answer: Effect.Effect<ExchangeOrder, ExchangeError>
}

type LookupResult =
  | { readonly _tag: "Found"; readonly order: ExchangeOrder }
  | { readonly _tag: "NotFound" }
  | { readonly _tag: "Unknown"; readonly reason: string }

const RESTING = new Set(["NEW", "PARTIALLY_FILLED", "PENDING_NEW"])

/**
 * `Effect.retry(self, { schedule, while: tag })`, with the retry machinery (schedule driver, metadata per attempt)
 * set up only after a first failure with that tag: the first placement of an order is on the tick → order path and
 * nearly always succeeds. Same attempts and delays: the first failure is replayed into the schedule.
 */
const retryAfterFirst = <A, E extends { readonly _tag: string }, R, T extends E["_tag"]>(
  self: Effect.Effect<A, E, R>,
  tag: T,
  schedule: Schedule.Schedule<unknown, unknown>
): Effect.Effect<A, E, R> =>
  Effect.catchIf(self, (e): e is Extract<E, { readonly _tag: T }> => e._tag === tag, (first) => {
    let replayed = false
    return Effect.retry(
      Effect.suspend(() => {
        if (replayed) return self
        replayed = true
        return Effect.fail(first)
      }),
      { schedule, while: (e) => e._tag === tag }
    )
  })

export const makeOrderManager = (options: OrderManagerOptions) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const exchange = yield* Exchange
    const records = new Map<string, OrderRecord>()
    const rules = new Map<string, SymbolRules>()
    const halted = new Map<string, string>() // symbol or "*" → reason
    const decidedAt = new Map<string, number>() // signal id → approval time, until the exchange answers (metrics)
    const background = new Set<string>() // signal ids reconciled in the background
    const notBefore = yield* Ref.make(0) // no request before this time (rate limit / ban)
    const scope = yield* Effect.scope
    const clock = yield* Clock.Clock

    /** Capped exponential backoff with jitter, `times` recurrences at most: the bound of every loop here. */
    const backoff = (times: number) =>
      Schedule.min([Schedule.exponential(options.lookupBackoff), Schedule.spaced(options.maxBackoff)]).pipe(
        Schedule.jittered,
        Schedule.upTo({ times: Math.max(0, times) })
      )
    // built once (a schedule is a description; each retry runs its own)
    const placeSchedule = backoff(options.maxAttempts - 1)
    const lookupSchedule = backoff(options.maxLookups - 1)
    const resendSchedule = Schedule.recurs(options.maxResends)

    const observe = (e: OrderEvent): void => {
      let r = records.get(e.signalId)
      if (r === undefined) {
        r = {
          signalId: e.signalId,
          clientOrderId: e.clientOrderId,
          symbol: e.symbol,
          side: e.side,
          action: e.action,
          qty: e.qty,
          origin: e.origin,
          status: statusOf(e),
          attempts: 0,
          signedAt: 0,
          recvWindowMs: options.recvWindowMs,
          // seen only through events (a previous run, another instance): assume a request may have reached it
          reachedExchange: true,
          owner: soleOwner
        }
        records.set(e.signalId, r)
      } else if (!FINAL.has(r.status)) r.status = statusOf(e)
      // attempts only grow, whatever order the events arrive in (rebuild from several partitions, redelivery)
      if (e._tag === "OrderSubmitted" || e._tag === "OrderAttempt") {
        const signedAt = e.signedAt ?? e.ts
        if (signedAt >= r.signedAt) {
          r.signedAt = signedAt
          r.recvWindowMs = e.recvWindowMs ?? options.recvWindowMs
        }
        r.attempts = Math.max(r.attempts, e._tag === "OrderAttempt" ? e.attempt : 1)
      }
    }

    /** The durable part of an event: fenced, applied here, published on orders.events. */
    const record = (event: OrderEvent): Effect.Effect<void, Fail> => {
      const publish = Effect.suspend(() => {
        observe(event)
        return bus.publish(OrdersEvents, event.symbol, event)
      })
      const r = records.get(event.signalId)
      return r === undefined ? publish : Effect.andThen(fence(r), publish)
    }

    const emit = (event: OrderEvent): Effect.Effect<void, Fail> => Effect.andThen(record(event), announce(event))

    /** What follows an event once it is durable: metrics and its log line. */
    const announce = (event: OrderEvent): Effect.Effect<void> =>
      Effect.gen(function*() {
        const base = { signalId: event.signalId, clientOrderId: event.clientOrderId, symbol: event.symbol, side: event.side, qty: event.qty }
        const labels = { symbol: event.symbol, side: event.side }
        const decided = decidedAt.get(event.signalId)
        if (event._tag === "OrderFilled" || event._tag === "OrderAccepted") {
          // the exchange took the order: latency of the whole path and of the order leg
          yield* Metric.update(tickToOrderSeconds.by(labels), secondsBetween(event.origin.receivedAt, event.ts))
          if (decided !== undefined) yield* Metric.update(decisionToAckSeconds.by(labels), secondsBetween(decided, event.ts))
        }
        if (FINAL.has(statusOf(event)) || event._tag === "OrderAccepted") decidedAt.delete(event.signalId)
        switch (event._tag) {
          case "OrderFilled":
            yield* Metric.update(ordersFilledBy(labels), 1)
            return yield* Effect.logInfo("order filled", { ...base, avgPrice: event.avgPrice, executedQty: event.executedQty, commission: event.commission, commissionAsset: event.commissionAsset, orderId: event.orderId })
          case "OrderRejected":
            yield* Metric.update(ordersRejected.pipe(Metric.withAttributes(labels)), 1)
            return yield* Effect.logWarning("order rejected", { ...base, code: event.code, reason: event.reason })
          case "OrderFailed":
            return yield* Effect.logError("order failed", { ...base, code: event.code, reason: event.reason })
          case "OrderUncertain":
            return yield* Effect.logWarning("order outcome unknown", { ...base, reason: event.reason })
          case "OrderAttempt":
            return yield* Effect.logInfo("order resent", { ...base, attempt: event.attempt })
          default:
            return yield* Effect.logInfo(event._tag === "OrderSubmitted" ? "order submitted" : "order accepted", base)
        }
      })

    /** Fails with Moved once the symbol is no longer this instance's: called before every signed request and event. */
    const fence = (r: OrderRecord): Effect.Effect<void, Moved> =>
      Effect.flatMap(r.owner.owned, (owned) => (owned ? Effect.void : Effect.fail(new Moved({ symbol: r.symbol }))))

    const alert = (level: Alert["level"], message: string, origin?: Origin) =>
      Effect.gen(function*() {
        const ts = yield* Clock.currentTimeMillis
        yield* bus.publish(Alerts, "orders", { source: "orders", level, message, ts, ...(origin === undefined ? {} : { origin }) })
      })

    /** Stops trading a symbol (or all): new approvals for it fail at once here, and the risk gate stops approving. */
    const halt = (symbol: string | undefined, reason: string, origin: Origin) =>
      Effect.gen(function*() {
        halted.set(symbol ?? "*", reason)
        yield* Effect.logError("trading halted", { symbol: symbol ?? "ALL", reason })
        yield* alert("error", `Trading halted for ${symbol ?? "ALL symbols"}: ${reason}`, origin)
        const ts = yield* Clock.currentTimeMillis
        // an operator's /resume lifts it
        yield* bus.publish(ControlTopic, "control", { command: "pause", by: "order-manager", ts, ...(symbol === undefined ? {} : { symbol }) })
      })

    const refreshRules = Effect.gen(function*() {
      const list = yield* exchange.exchangeInfo(options.symbols)
      for (const r of list) rules.set(r.symbol, r)
      yield* Effect.logDebug("exchange filters loaded", { symbols: list.map((r) => r.symbol) })
    })

    // no clock read unless a 429/418 ever set a hold (the first placement of an order is on the tick → order path)
    const waitForPermit = Effect.flatMap(Ref.get(notBefore), (until) =>
      until === 0
        ? Effect.void
        : Effect.flatMap(Clock.currentTimeMillis, (now) => (until > now ? Effect.sleep(Duration.millis(until - now)) : Effect.void)))

    const eventBase = (r: OrderRecord, ts: number) => ({
      signalId: r.signalId,
      clientOrderId: r.clientOrderId,
      symbol: r.symbol,
      side: r.side,
      action: r.action,
      qty: r.qty,
      ts,
      origin: r.origin
    })

    const now = Clock.currentTimeMillis
    const countError = (r: OrderRecord, e: ExchangeError) =>
      Metric.update(orderErrors.pipe(Metric.withAttributes({ symbol: r.symbol, kind: e._tag })), 1)

    /** 429/418: hold every request until Retry-After has passed. */
    const holdFor = (retryAfterMs: number, httpStatus: number, r: OrderRecord) =>
      Effect.gen(function*() {
        const ts = yield* now
        yield* Ref.update(notBefore, (n) => Math.max(n, ts + retryAfterMs))
        yield* Effect.logWarning("rate limited by the exchange; holding requests", { status: httpStatus, retryAfterMs, clientOrderId: r.clientOrderId })
        if (httpStatus === 418) yield* alert("warning", `Exchange ban (418): requests held for ${Math.round(retryAfterMs / 1000)} s`, r.origin)
      })

    const resync = Effect.gen(function*() {
      const offset = yield* exchange.syncTime.pipe(Effect.catch(() => Effect.succeed(Number.NaN)))
      yield* Effect.logWarning("timestamp outside recvWindow; clock resynced", { offsetMs: offset })
    })

    // ---- place ---------------------------------------------------------------------------------------------------

    const requestFor = (r: OrderRecord, signedAt: number): OrderRequest => ({
      symbol: r.symbol,
      side: r.side,
      type: "MARKET",
      quantity: r.quantityText ?? roundDownToStep(r.qty, rules.get(r.symbol)?.stepSize ?? 0),
      clientOrderId: r.clientOrderId,
      timestamp: signedAt,
      recvWindowMs: options.recvWindowMs
    })

    /**
     * One signed placement request, made durable (OrderSubmitted / OrderAttempt with its timestamp) before it leaves,
     * and what its answer means. `sent`: the request is already on the wire (`placeNow`), only its answer is awaited.
     */
    const placeOnce = (r: OrderRecord, resyncs: { n: number }, sent?: Sent): Effect.Effect<PlaceResult, PlaceRetry | Fail> =>
      Effect.gen(function*() {
        const attempt = sent ?? (yield* sendAttempt(r))
        if (attempt === undefined) return { _tag: "Done" } as const
        const { submitted, answer } = attempt
        // the event's metrics and log line once the request is answered, failed or interrupted (they sat between the
        // durable event and the request: ~a log line's formatting and write)
        const result = yield* answer.pipe(
          Effect.onExit(() => Effect.andThen(Metric.update(ordersSentBy({ symbol: r.symbol, side: r.side }), 1), announce(submitted))),
          Effect.result
        )
        if (result._tag === "Success") return { _tag: "Placed", order: result.success } as const
        const error = result.failure
        yield* countError(r, error)
        const at = yield* now
        switch (error._tag) {
          case "ExchangeRateLimited":
            yield* holdFor(error.retryAfterMs, error.httpStatus, r)
            return yield* new PlaceRetry({ code: -1003, reason: `rate limited (HTTP ${error.httpStatus})`, sent: true })
          case "ExchangeUnavailable":
            if (error.notSent === true) return yield* new PlaceRetry({ code: 0, reason: `not sent: ${error.reason}`, sent: false })
            return { _tag: "Unknown", reason: error.reason } as const
          case "ExchangeDecodeError":
            return { _tag: "Unknown", reason: `undecodable response: ${error.message}` } as const
          case "ExchangeApiError": {
            const decision = classifyApiError(error.code, error.msg)
            switch (decision) {
              case "resync": {
                const n = ++resyncs.n
                if (n > options.maxResyncs) {
                  // a bound: −1021 means "not executed", so the order certainly does not exist
                  yield* giveUpFailed(r, error.code, `${error.msg} (still after ${n - 1} clock resyncs); not placed`)
                  return { _tag: "Done" } as const
                }
                yield* resync
                return yield* new PlaceRetry({ code: error.code, reason: error.msg, sent: true })
              }
              case "backoff":
                return yield* new PlaceRetry({ code: error.code, reason: error.msg, sent: true })
              case "reconcile":
                return { _tag: "Unknown", reason: `${error.code} ${error.msg}` } as const
              case "reject":
                if (error.code === -1013) yield* refreshRules.pipe(Effect.ignore)
                yield* emit({ _tag: "OrderRejected", ...eventBase(r, at), code: error.code, reason: error.msg })
                return { _tag: "Done" } as const
              case "haltSymbol":
              case "haltAll":
                yield* halt(decision === "haltSymbol" ? r.symbol : undefined, `${error.code} ${error.msg}`, r.origin)
                yield* emit({ _tag: "OrderFailed", ...eventBase(r, at), code: error.code, reason: error.msg })
                return { _tag: "Done" } as const
            }
          }
        }
      }).pipe(Effect.tap(() => Effect.sync(() => {
        r.reachedExchange = true
      })), Effect.tapError((e) => Effect.sync(() => {
        if (e._tag !== "PlaceRetry" || e.sent) r.reachedExchange = true
      })))

    /** The request of one attempt on the wire, after its event is durable (both fenced); no request: Done. */
    const sendAttempt = (r: OrderRecord): Effect.Effect<Sent | undefined, Fail> =>
      Effect.gen(function*() {
        yield* waitForPermit
        if (r.attempts > 0) {
          // a retry or a resend, after a wait: catch up with what other instances wrote (an owner before us may have
          // sent or settled it) before signing another request with the same client order id
          yield* r.owner.catchUp
          if (FINAL.has(r.status)) return undefined
        }
        traceMark(r.origin.tickId, "submit")
        const signedAt = yield* exchange.serverTime
        const submitted = submittedEvent(r, yield* now, signedAt)
        // durable (fenced: still ours before the event) before the request leaves
        yield* record(submitted)
        traceLink(r.clientOrderId, r.origin.tickId, "post")
        yield* fence(r) // the publish above may have waited: still ours right before the request leaves?
        return { submitted, answer: exchange.placeOrder(requestFor(r, signedAt)) }
      })

    const submittedEvent = (r: OrderRecord, ts: number, signedAt: number): OrderEvent => {
      const attempt = r.attempts + 1
      const signed = { signedAt, recvWindowMs: options.recvWindowMs }
      return attempt === 1
        ? { _tag: "OrderSubmitted", ...eventBase(r, ts), ...signed }
        : { _tag: "OrderAttempt", ...eventBase(r, ts), ...signed, attempt }
    }

    /**
     * Placement with its bounded retry: `maxAttempts` signed requests in this round at most. `sent`: the round's first
     * request is already on the wire (`placeNow`); a retry sends anew.
     */
    const placeRound = (r: OrderRecord, sent?: Sent): Effect.Effect<PlaceResult, Fail> =>
      Effect.suspend(() => {
        // a plain counter per round: the round's attempts run one after the other in this fiber
        const resyncs = { n: 0 }
        let first = sent
        const attempt = Effect.suspend(() => {
          const s = first
          first = undefined
          return placeOnce(r, resyncs, s)
        })
        return retryAfterFirst(attempt, "PlaceRetry", placeSchedule).pipe(
          Effect.catchTag("PlaceRetry", (e) =>
            Effect.gen(function*() {
              yield* giveUpFailed(r, e.code, `${e.reason}; not placed after ${options.maxAttempts} attempts`)
              return { _tag: "Done" } as const
            }))
        )
      })

    // ---- look up -------------------------------------------------------------------------------------------------

    /** One lookup by client order id. −1021 resyncs the clock first (bounded by the caller's schedule). */
    const lookupOnce = (r: OrderRecord): Effect.Effect<LookupResult, LookupRetry | Fail> =>
      Effect.gen(function*() {
        yield* waitForPermit
        yield* fence(r)
        const result = yield* exchange.queryOrder(r.symbol, r.clientOrderId).pipe(Effect.result)
        if (result._tag === "Success") return { _tag: "Found", order: result.success } as const
        const error = result.failure
        yield* countError(r, error)
        switch (error._tag) {
          case "ExchangeRateLimited":
            yield* holdFor(error.retryAfterMs, error.httpStatus, r)
            return yield* new LookupRetry({ reason: `rate limited (HTTP ${error.httpStatus})` })
          case "ExchangeUnavailable":
            return yield* new LookupRetry({ reason: error.reason })
          case "ExchangeDecodeError":
            return yield* new LookupRetry({ reason: `undecodable response: ${error.message}` })
          case "ExchangeApiError": {
            if (error.code === -2013) return { _tag: "NotFound" } as const
            const decision = classifyApiError(error.code, error.msg)
            if (decision === "resync") yield* resync
            if (decision === "haltAll" || decision === "haltSymbol") {
              yield* halt(decision === "haltSymbol" ? r.symbol : undefined, `${error.code} ${error.msg}`, r.origin)
              return { _tag: "Unknown", reason: `${error.code} ${error.msg}` } as const
            }
            return yield* new LookupRetry({ reason: `${error.code} ${error.msg}` })
          }
        }
      })

    /** Lookups on the bounded backoff (the first after one backoff step: give the exchange a moment). */
    const lookupRound = (r: OrderRecord): Effect.Effect<LookupResult, Fail> =>
      Effect.sleep(options.lookupBackoff).pipe(
        Effect.andThen(lookupOnce(r)),
        Effect.retry({ schedule: lookupSchedule, while: (e) => e._tag === "LookupRetry" }),
        Effect.catchTag("LookupRetry", (e) =>
          Effect.succeed<LookupResult>({ _tag: "Unknown", reason: `${e.reason} (after ${options.maxLookups} lookups)` }))
      )

    /** ms until the latest attempt can no longer execute (exchange clock, with the skew margin); ≤ 0 = now. */
    const untilSafe = (r: OrderRecord) =>
      Effect.map(exchange.serverTime, (t) => r.signedAt + r.recvWindowMs + options.clockSkewMarginMs - t)

    /**
     * What happened to an order whose outcome is unknown. Not found counts only once the latest attempt can no
     * longer execute: before that, wait for its window to pass and look again (a held request may still arrive).
     */
    const reconcile = (r: OrderRecord): Effect.Effect<LookupResult | { readonly _tag: "NotPlaced" }, Fail> =>
      Effect.gen(function*() {
        const first = yield* lookupRound(r)
        if (first._tag !== "NotFound") return first
        const wait = yield* untilSafe(r)
        if (wait <= 0) return { _tag: "NotPlaced" } as const
        yield* Effect.logInfo("order not found yet; waiting until its last attempt can no longer execute", { clientOrderId: r.clientOrderId, waitMs: wait })
        yield* Effect.sleep(Duration.millis(wait))
        const second = yield* lookupRound(r)
        return second._tag === "NotFound" ? { _tag: "NotPlaced" } as const : second
      })

    // ---- settle --------------------------------------------------------------------------------------------------

    /** Turns what the exchange says about an order into its final event; a resting order is polled, bounded. */
    const settle = (r: OrderRecord, order: ExchangeOrder): Effect.Effect<void, Fail> =>
      Effect.gen(function*() {
        let current = order
        if (RESTING.has(current.status)) {
          if (r.status !== "accepted") yield* emit({ _tag: "OrderAccepted", ...eventBase(r, yield* now), orderId: current.orderId, status: current.status })
          const polled = yield* lookupOnce(r).pipe(
            Effect.flatMap((res) =>
              res._tag === "Found" && RESTING.has(res.order.status) ? Effect.fail(new LookupRetry({ reason: `still ${res.order.status}` })) : Effect.succeed(res)
            ),
            Effect.delay(options.lookupBackoff),
            Effect.retry({ schedule: lookupSchedule, while: (e) => e._tag === "LookupRetry" }),
            Effect.catchTag("LookupRetry", (e) => Effect.succeed<LookupResult>({ _tag: "Unknown", reason: `${e.reason} after ${options.maxLookups} polls` }))
          )
          if (polled._tag !== "Found") return yield* giveUpUncertain(r, polled._tag === "Unknown" ? polled.reason : "resting order disappeared")
          current = polled.order
        }
        const ts = yield* now
        if (BigDecimal.isPositive(current.executedQty)) {
          const fills = current.fills.length > 0 ? current.fills : yield* tradesOf(r, current)
          const commission = BigDecimal.toNumberUnsafe(BigDecimal.sumAll(fills.map((f) => BigDecimal.fromNumberUnsafe(f.commission))))
          const executedQty = BigDecimal.toNumberUnsafe(current.executedQty)
          const quoteQty = BigDecimal.toNumberUnsafe(current.quoteQty)
          return yield* emit({
            _tag: "OrderFilled",
            ...eventBase(r, ts),
            orderId: current.orderId,
            status: current.status,
            executedQty,
            avgPrice: BigDecimal.toNumberUnsafe(BigDecimal.divideUnsafe(current.quoteQty, current.executedQty)),
            quoteQty,
            commission,
            commissionAsset: fills[0]?.commissionAsset ?? "",
            fills
          })
        }
        return yield* emit({ _tag: "OrderRejected", ...eventBase(r, ts), code: 0, reason: `order ${current.status} without execution` })
      })

    // GET /api/v3/order carries no fills: ask for the order's trades; if that fails the fee stays unknown (0), not guessed.
    const tradesOf = (r: OrderRecord, order: ExchangeOrder) =>
      exchange.orderTrades(r.symbol, order.orderId).pipe(
        Effect.tapError((e) => Effect.logWarning("fills of a looked-up order unavailable; fees unknown", { clientOrderId: r.clientOrderId, error: e._tag })),
        Effect.orElseSucceed((): ExchangeOrder["fills"] => [])
      )

    // ---- bounds hit ----------------------------------------------------------------------------------------------

    /** A bound was hit and the order certainly does not exist: OrderFailed, an alert, the symbol paused. */
    const giveUpFailed = (r: OrderRecord, code: number, reason: string) =>
      Effect.gen(function*() {
        yield* Metric.update(ordersGivenUp.pipe(Metric.withAttributes({ symbol: r.symbol })), 1)
        yield* emit({ _tag: "OrderFailed", ...eventBase(r, yield* now), code, reason, ...(r.reachedExchange ? {} : { reachedExchange: false }) })
        yield* halt(r.symbol, `order ${r.clientOrderId} failed: ${reason}`, r.origin)
      })

    /**
     * A bound was hit and the outcome is still unknown: the order stays in flight (OrderUncertain saying so), an
     * operator is alerted, the symbol is paused, and a background fiber keeps reconciling it on a slow, bounded
     * schedule. The caller's lane moves on.
     */
    const giveUpUncertain = (r: OrderRecord, reason: string): Effect.Effect<void, Fail> =>
      Effect.gen(function*() {
        yield* Metric.update(ordersGivenUp.pipe(Metric.withAttributes({ symbol: r.symbol })), 1)
        yield* emit({ _tag: "OrderUncertain", ...eventBase(r, yield* now), reason: `gave up: ${reason}; reconciling in the background` })
        yield* halt(r.symbol, `order ${r.clientOrderId} (${r.side} ${r.qty}) outcome unknown: ${reason}. Check the exchange.`, r.origin)
        if (background.has(r.signalId)) return
        background.add(r.signalId)
        yield* backgroundReconcile(r).pipe(
          Effect.catchTag("Moved", () => Effect.logInfo("symbol moved to another instance; its new owner reconciles the order", { clientOrderId: r.clientOrderId })),
          Effect.ensuring(Effect.sync(() => background.delete(r.signalId))),
          Effect.catchCause((cause) => Effect.logError("background reconciliation stopped", { clientOrderId: r.clientOrderId, cause: String(cause) })),
          Effect.forkIn(scope)
        )
      })

    class StillUnknown extends Data.TaggedError("StillUnknown")<{ readonly reason: string }> {}

    /** Looks a given-up order up every `backgroundEvery`, `backgroundLookups` times at most; never resends (stale signal). */
    const backgroundReconcile = (r: OrderRecord): Effect.Effect<void, Fail> =>
      Effect.gen(function*() {
        if (FINAL.has(r.status)) return
        const res = yield* lookupOnce(r).pipe(Effect.catchTag("LookupRetry", (e) => Effect.fail(new StillUnknown({ reason: e.reason }))))
        if (res._tag === "Found") {
          if (RESTING.has(res.order.status)) return yield* new StillUnknown({ reason: `still ${res.order.status}` })
          return yield* settle(r, res.order)
        }
        if (res._tag === "Unknown") return yield* new StillUnknown({ reason: res.reason })
        if ((yield* untilSafe(r)) > 0) return yield* new StillUnknown({ reason: "not found yet, last attempt may still execute" })
        yield* emit({
          _tag: "OrderFailed",
          ...eventBase(r, yield* now),
          code: -2013,
          reason: "not placed (−2013 after its last attempt's window); not resent: the signal is stale",
          ...(r.reachedExchange ? {} : { reachedExchange: false })
        })
      }).pipe(
        Effect.delay(options.backgroundEvery),
        Effect.retry({ schedule: Schedule.spaced(options.backgroundEvery).pipe(Schedule.upTo({ times: Math.max(0, options.backgroundLookups - 1) })), while: (e) => e._tag === "StillUnknown" }),
        Effect.catchTag("StillUnknown", (e) =>
          alert("error", `Order ${r.clientOrderId} (${r.side} ${r.qty} ${r.symbol}) still unknown after ${options.backgroundLookups} background lookups (${e.reason}). Check the exchange by hand.`, r.origin))
      )

    // ---- the cycle -----------------------------------------------------------------------------------------------

    /**
     * place → (unknown → reconcile → not placed → place again)*, the resend loop bounded by `maxResends`.
     * `from: "reconcile"` starts with a lookup (an order left in flight by a previous run or redelivered in flight).
     */
    const drive = (r: OrderRecord, from: "place" | "reconcile", owner: Ownership, sent?: Sent): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        r.owner = owner
        let firstSent = sent // the first placement's request, already on the wire (placeNow)
        let resends = 0 // the cycle runs one attempt at a time in this fiber
        let start = from
        let resend = false
        const cycle: Effect.Effect<void, Fail | NotPlaced> = Effect.gen(function*() {
          if (resend) {
            // another instance may have sent or settled it since the lookups: catch up, and resend only if the
            // latest attempt anyone made (OrderAttempt of any instance) can no longer execute; else look again
            yield* r.owner.catchUp
            if (FINAL.has(r.status)) return
            if ((yield* untilSafe(r)) > 0) start = "reconcile"
          }
          resend = true
          if (start === "place") {
            const placed = yield* placeRound(r, firstSent)
            firstSent = undefined
            if (placed._tag === "Done") return
            if (placed._tag === "Placed") return yield* settle(r, placed.order)
            yield* emit({ _tag: "OrderUncertain", ...eventBase(r, yield* now), reason: placed.reason })
          }
          start = "place"
          const found = yield* reconcile(r)
          switch (found._tag) {
            case "Found":
              return yield* settle(r, found.order)
            case "Unknown":
              return yield* giveUpUncertain(r, found.reason)
            case "NotFound":
            case "NotPlaced": {
              const n = resends++
              if (n < options.maxResends) {
                yield* Effect.logWarning("order does not exist at the exchange (−2013) and can no longer execute; resending with the same client id", {
                  clientOrderId: r.clientOrderId,
                  attempt: r.attempts + 1
                })
              }
              return yield* new NotPlaced({ reason: `not found (−2013) after ${r.attempts} attempt(s)` })
            }
          }
        })
        yield* retryAfterFirst(cycle, "NotPlaced", resendSchedule).pipe(
          Effect.catchTag("NotPlaced", (e) => giveUpFailed(r, -2013, `${e.reason}; gave up after ${options.maxResends} resends`)),
          Effect.catchTag("Moved", () => Effect.logInfo("symbol moved to another instance; order left to its new owner", { symbol: r.symbol }))
        )
      }).pipe(Effect.annotateLogs({ clientOrderId: r.clientOrderId }))

    /** A new approval's record before its first attempt (quantity as approved; the exact one comes from OrderPrep). */
    const newRecord = (approved: Approved, owner: Ownership): OrderRecord => ({
      signalId: approved.id,
      clientOrderId: clientOrderIdFor(approved.id),
      symbol: approved.candidate.symbol,
      side: approved.orderSide,
      action: approved.action,
      qty: approved.qty,
      origin: approved.origin,
      status: "submitted",
      attempts: 0,
      signedAt: 0,
      recvWindowMs: options.recvWindowMs,
      reachedExchange: false,
      owner
    })

    // untraced: a span per approval sat between the tick and its order on the wire (the order's events trace it)
    const handle = Effect.fnUntraced(function*(approved: Approved, owner: Ownership = soleOwner) {
      traceMark(approved.origin.tickId, "lane")
      const existing = records.get(approved.id)
      if (existing !== undefined) {
        yield* Metric.update(duplicatesSuppressed, 1)
        if (FINAL.has(existing.status)) {
          return yield* Effect.logDebug("approved signal already handled; not sent again", { signalId: approved.id, status: existing.status })
        }
        if (background.has(existing.signalId)) {
          return yield* Effect.logDebug("approved signal is being reconciled in the background", { signalId: approved.id })
        }
        yield* Effect.logWarning("approved signal was in flight; reconciling instead of resending", { signalId: approved.id })
        return yield* drive(existing, "reconcile", owner)
      }
      const ts = yield* now
      const symbol = approved.candidate.symbol
      const r = newRecord(approved, owner)
      decidedAt.set(approved.id, approved.ts)
      const haltReason = halted.get(symbol) ?? halted.get("*")
      if (haltReason !== undefined) {
        return yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: 0, reason: `trading halted: ${haltReason}`, reachedExchange: false })
      }
      if (!rules.has(symbol)) {
        const loaded = yield* refreshRules.pipe(Effect.result)
        if (loaded._tag === "Failure" || !rules.has(symbol)) {
          const why = loaded._tag === "Failure" ? loaded.failure._tag : `no exchange rules for ${symbol}`
          return yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: 0, reason: `cannot load exchange filters: ${why}`, reachedExchange: false })
        }
      }
      const prepared = prepareMarketOrder(approved, rules.get(symbol)!, approved.candidate.price)
      if (prepared._tag === "Refused") {
        return yield* emit({ _tag: "OrderRejected", ...eventBase(r, ts), code: -1013, reason: `not sent: ${prepared.reason}`, reachedExchange: false })
      }
      const record: OrderRecord = { ...r, qty: prepared.quantity, quantityText: prepared.request.quantity }
      records.set(record.signalId, record)
      return yield* drive(record, "place", owner)
    }, (effect, approved) =>
      effect.pipe(
        Effect.catchTag("Moved", () => Effect.logInfo("symbol moved to another instance; approval left to its new owner")),
        Effect.annotateLogs({ signalId: approved.id })
      ))

    /**
     * The tick → order path (issue 11): a new approval's first request as plain code, from the approval to the signed
     * request written, before this returns. The steps are those `handle` → `drive` → `placeRound` → `sendAttempt` take
     * on a first attempt, in the same order: the record and its quantity, the fence, OrderSubmitted made durable on
     * orders.events, the fence again, the signed request. Run by the interpreter (a generator and wrappers per step,
     * the fence, clock and publish as effects) they cost ~0.2 ms p50 at 1k ticks/s, twice that on a cold CPU at 50/s.
     * What follows the request (its answer, retries, lookups, settle, the event's metrics and log line) is `drive`'s.
     *
     * Only the ordinary case: undefined, having done nothing, when the approval needs `handle`: seen before, a halt,
     * no exchange rules yet, refused by the filters, a rate-limit hold, the symbol not ours, a topic that cannot
     * take the event at once, or a bus, exchange or owner without the synchronous forms (Kafka: there the durable
     * publish is a round trip, which this would not shorten).
     */
    const placeNow = (approved: Approved, owner: Ownership = soleOwner): Effect.Effect<void, BusError> | undefined => {
      const now = exchange.now
      const publishNow = bus.publishNow
      const ownedNow = owner.ownedNow
      if (now === undefined || publishNow === undefined || ownedNow === undefined) return undefined
      traceMark(approved.origin.tickId, "lane")
      const symbol = approved.candidate.symbol
      const symbolRules = rules.get(symbol)
      if (records.has(approved.id) || symbolRules === undefined) return undefined
      // a 429/418 hold not over yet (no clock read unless one was ever set)
      const heldUntil = Ref.getUnsafe(notBefore)
      if (heldUntil !== 0 && heldUntil > clock.currentTimeMillisUnsafe()) return undefined
      if (halted.size > 0 && (halted.has(symbol) || halted.has("*"))) return undefined
      const prepared = prepareMarketOrder(approved, symbolRules, approved.candidate.price)
      if (prepared._tag === "Refused" || !ownedNow()) return undefined
      const r: OrderRecord = { ...newRecord(approved, owner), qty: prepared.quantity, quantityText: prepared.request.quantity }
      traceMark(r.origin.tickId, "submit")
      const signedAt = now.serverTime()
      const submitted = submittedEvent(r, clock.currentTimeMillisUnsafe(), signedAt)
      // durable before the request leaves (fenced just above; nothing since has waited)
      if (!publishNow(OrdersEvents, symbol, submitted)) return undefined
      records.set(r.signalId, r)
      decidedAt.set(r.signalId, approved.ts)
      observe(submitted)
      traceLink(r.clientOrderId, r.origin.tickId, "post")
      const annotated = <A, E>(effect: Effect.Effect<A, E>) => Effect.annotateLogs(effect, { signalId: r.signalId })
      // still ours right before the request leaves, as before every signed request
      if (!ownedNow()) return annotated(Effect.logInfo("symbol moved to another instance; order left to its new owner", { symbol }))
      return annotated(drive(r, "place", owner, { submitted, answer: now.placeOrder(requestFor(r, signedAt)) }))
    }

    const openRecords = () => [...records.values()].filter((r) => !FINAL.has(r.status) && !background.has(r.signalId))

    const inFlightOrders = Effect.sync(() =>
      openRecords().map((r) => ({
        symbol: r.symbol,
        reconcile: (owner: Ownership = soleOwner) =>
          Effect.suspend(() => (FINAL.has(r.status) || background.has(r.signalId) ? Effect.void : drive(r, "reconcile", owner)))
      }))
    )

    const resumeInFlight = Effect.gen(function*() {
      const open = yield* inFlightOrders
      if (open.length > 0) yield* Effect.logWarning("reconciling orders left in flight by a previous run", { count: open.length })
      for (const o of open) yield* o.reconcile()
    })

    const control = (c: Control): void => {
      if (c.command !== "resume") return
      if (c.symbol === undefined) halted.clear()
      else halted.delete(c.symbol)
    }

    const manager: OrderManager = {
      rebuild: (events) => {
        for (const e of events) observe(e)
      },
      handle,
      placeNow,
      inFlightOrders,
      resumeInFlight,
      observe,
      control,
      setPaused: (paused) => {
        if (!paused) halted.clear()
      },
      refreshRules,
      inFlight: Effect.sync(() => [...records.values()].filter((r) => !FINAL.has(r.status)).length),
      snapshot: Effect.sync(() =>
        [...records.values()]
          .map((r) => ({ signalId: r.signalId, status: r.status, attempts: r.attempts, signedAt: r.signedAt, recvWindowMs: r.recvWindowMs }))
          .sort((a, b) => (a.signalId < b.signalId ? -1 : a.signalId > b.signalId ? 1 : 0))
      )
    }
    return manager
  })
