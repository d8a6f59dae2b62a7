/**
 * Order manager: approved signal → signed MARKET order → `orders.events`. Never a duplicate, never a lost order:
 * - the client order id follows from the signal id, and the state of every signal handled is rebuilt from
 *   `orders.events` at start, so a redelivered approval is never sent twice;
 * - `OrderSubmitted` is published BEFORE the REST call, so a crash mid-call is seen as "in flight" on restart;
 * - an unknown outcome (timeout, dropped connection, 5xx) is never assumed to be a failure: the order is looked up
 *   (`GET /api/v3/order?origClientOrderId=`) and resent only when the exchange says it does not exist (−2013)
 *   AND the original request can no longer execute (its timestamp is older than recvWindow);
 * - 429/418 honour Retry-After and hold every request until then; −1021 resyncs the clock and retries once.
 */
import { Clock, Duration, Effect, Metric, Ref } from "effect"
import { Bus } from "../bus/Bus.ts"
import type { BusError } from "../domain/Errors.ts"
import type { Alert, Approved, OrderEvent, Origin } from "../domain/Messages.ts"
import { Alerts, ControlTopic, OrdersEvents } from "../domain/Topics.ts"
import { Exchange, type ExchangeOrder, type OrderRequest, type SymbolRules } from "../exchange/Exchange.ts"
import type { ExchangeError } from "../exchange/ExchangeErrors.ts"
import { decisionToAckSeconds, secondsBetween, tickToOrderSeconds } from "../observability/Metrics.ts"
import { classifyApiError } from "./ErrorPolicy.ts"
import { clientOrderIdFor, prepareMarketOrder, roundDownToStep } from "./OrderPrep.ts"

export interface OrderManagerOptions {
  readonly symbols: ReadonlyArray<string>
  /** Binance recvWindow used for signed requests (ms): an order older than this can no longer execute. */
  readonly recvWindowMs: number
  /** Attempts for throttled requests before the order is given up (known not placed). */
  readonly maxAttempts: number
  /** Lookups of an uncertain order before it is left in flight and an operator is alerted. */
  readonly maxLookups: number
  readonly lookupBackoff: Duration.Duration
}

export const defaultOrderManagerOptions = (symbols: ReadonlyArray<string>): OrderManagerOptions => ({
  symbols,
  recvWindowMs: 5000,
  maxAttempts: 6,
  maxLookups: 20,
  lookupBackoff: Duration.millis(500)
})

type Status = "submitted" | "uncertain" | "accepted" | "filled" | "rejected" | "failed"

interface OrderRecord {
  readonly signalId: string
  readonly clientOrderId: string
  readonly symbol: string
  readonly side: "BUY" | "SELL"
  readonly action: "OPEN" | "CLOSE"
  readonly qty: number
  readonly origin: Origin
  status: Status
  /** Clock time of the last send; resending is safe only once it is older than recvWindow. */
  sentAt: number
}

const FINAL: ReadonlySet<Status> = new Set(["filled", "rejected", "failed"])

const statusOf = (e: OrderEvent): Status => {
  switch (e._tag) {
    case "OrderSubmitted":
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
export const ordersRejected = Metric.counter("orders_rejected_total", { description: "Orders rejected (exchange or local)" })
export const orderErrors = Metric.counter("orders_errors_total", { description: "Exchange errors seen by the order manager" })
export const duplicatesSuppressed = Metric.counter("orders_duplicates_suppressed_total", {
  description: "Approved signals redelivered and not sent again"
})

export interface OrderManager {
  /** Rebuilds state from past `orders.events` (call before handling anything). */
  readonly rebuild: (events: Iterable<OrderEvent>) => void
  /** Handles one approved signal to a final or in-flight state. */
  readonly handle: (approved: Approved) => Effect.Effect<void, BusError>
  /** Reconciles every order a previous run left in flight. */
  readonly resumeInFlight: Effect.Effect<void, BusError>
  /** Observes an order event published by anyone (keeps state in step across instances). */
  readonly observe: (event: OrderEvent) => void
  readonly setPaused: (paused: boolean) => void
  /** Loads / refreshes exchange filters. */
  readonly refreshRules: Effect.Effect<void, ExchangeError>
  readonly inFlight: Effect.Effect<number>
}

export const makeOrderManager = (options: OrderManagerOptions) =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const exchange = yield* Exchange
    const records = new Map<string, OrderRecord>()
    const rules = new Map<string, SymbolRules>()
    const halted = new Map<string, string>() // symbol or "*" → reason
    const decidedAt = new Map<string, number>() // signal id → approval time, until the exchange answers (metrics)
    const notBefore = yield* Ref.make(0) // no request before this time (rate limit / ban)

    const observe = (e: OrderEvent): void => {
      const existing = records.get(e.signalId)
      const status = statusOf(e)
      if (existing === undefined) {
        records.set(e.signalId, {
          signalId: e.signalId,
          clientOrderId: e.clientOrderId,
          symbol: e.symbol,
          side: e.side,
          action: e.action,
          qty: e.qty,
          origin: e.origin,
          status,
          sentAt: e.ts
        })
      } else if (!FINAL.has(existing.status)) {
        existing.status = status
        if (e._tag === "OrderSubmitted") existing.sentAt = e.ts
      }
    }

    const emit = (event: OrderEvent): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        observe(event)
        yield* bus.publish(OrdersEvents, event.symbol, event)
        const base = { signalId: event.signalId, clientOrderId: event.clientOrderId, symbol: event.symbol, side: event.side, qty: event.qty }
        const labels = { symbol: event.symbol, side: event.side }
        const decided = decidedAt.get(event.signalId)
        if (event._tag === "OrderFilled" || event._tag === "OrderAccepted") {
          // the exchange took the order: latency of the whole path and of the order leg
          yield* Metric.update(tickToOrderSeconds.pipe(Metric.withAttributes(labels)), secondsBetween(event.origin.receivedAt, event.ts))
          if (decided !== undefined) yield* Metric.update(decisionToAckSeconds.pipe(Metric.withAttributes(labels)), secondsBetween(decided, event.ts))
        }
        if (FINAL.has(statusOf(event)) || event._tag === "OrderAccepted") decidedAt.delete(event.signalId)
        switch (event._tag) {
          case "OrderFilled":
            yield* Metric.update(ordersFilled.pipe(Metric.withAttributes(labels)), 1)
            return yield* Effect.logInfo("order filled", { ...base, avgPrice: event.avgPrice, executedQty: event.executedQty, commission: event.commission, orderId: event.orderId })
          case "OrderRejected":
            yield* Metric.update(ordersRejected.pipe(Metric.withAttributes(labels)), 1)
            return yield* Effect.logWarning("order rejected", { ...base, code: event.code, reason: event.reason })
          case "OrderFailed":
            return yield* Effect.logError("order failed", { ...base, code: event.code, reason: event.reason })
          case "OrderUncertain":
            return yield* Effect.logWarning("order outcome unknown, looking it up", { ...base, reason: event.reason })
          default:
            return yield* Effect.logInfo(event._tag === "OrderSubmitted" ? "order submitted" : "order accepted", base)
        }
      })

    const alert = (level: Alert["level"], message: string, origin?: Origin) =>
      Effect.gen(function*() {
        const ts = yield* Clock.currentTimeMillis
        yield* bus.publish(Alerts, "orders", { source: "orders", level, message, ts, ...(origin === undefined ? {} : { origin }) })
      })

    const halt = (symbol: string | undefined, reason: string, origin: Origin) =>
      Effect.gen(function*() {
        halted.set(symbol ?? "*", reason)
        yield* Effect.logError("trading halted", { symbol: symbol ?? "ALL", reason })
        yield* alert("error", `Trading halted for ${symbol ?? "ALL symbols"}: ${reason}`, origin)
        const ts = yield* Clock.currentTimeMillis
        // tell the risk gate to stop approving; an operator's /resume lifts it
        yield* bus.publish(ControlTopic, "control", { command: "pause", by: "order-manager", ts })
      })

    const refreshRules = Effect.gen(function*() {
      const list = yield* exchange.exchangeInfo(options.symbols)
      for (const r of list) rules.set(r.symbol, r)
      yield* Effect.logDebug("exchange filters loaded", { symbols: list.map((r) => r.symbol) })
    })

    const waitForPermit = Effect.gen(function*() {
      const until = yield* Ref.get(notBefore)
      const now = yield* Clock.currentTimeMillis
      if (until > now) yield* Effect.sleep(Duration.millis(until - now))
    })

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

    /** Turns what the exchange says about an order into events; polls until a resting order is final. */
    const settle = (r: OrderRecord, order: ExchangeOrder): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        const ts = yield* now
        if (order.status === "NEW" || order.status === "PARTIALLY_FILLED" || order.status === "PENDING_NEW") {
          if (r.status !== "accepted") yield* emit({ _tag: "OrderAccepted", ...eventBase(r, ts), orderId: order.orderId, status: order.status })
          return yield* lookup(r, 0)
        }
        if (order.executedQty > 0) {
          const fills = order.fills.length > 0 ? order.fills : yield* tradesOf(r, order)
          const commission = fills.reduce((sum, f) => sum + f.commission, 0)
          return yield* emit({
            _tag: "OrderFilled",
            ...eventBase(r, ts),
            orderId: order.orderId,
            status: order.status,
            executedQty: order.executedQty,
            avgPrice: order.quoteQty / order.executedQty,
            quoteQty: order.quoteQty,
            commission,
            commissionAsset: fills[0]?.commissionAsset ?? "",
            fills
          })
        }
        return yield* emit({ _tag: "OrderRejected", ...eventBase(r, ts), code: 0, reason: `order ${order.status} without execution` })
      })

    // GET /api/v3/order carries no fills: ask for the order's trades; if that fails the fee stays unknown (0), not guessed.
    const tradesOf = (r: OrderRecord, order: ExchangeOrder) =>
      exchange.orderTrades(r.symbol, order.orderId).pipe(
        Effect.tapError((e) => Effect.logWarning("fills of a looked-up order unavailable; fees unknown", { clientOrderId: r.clientOrderId, error: e._tag })),
        Effect.orElseSucceed((): ExchangeOrder["fills"] => [])
      )

    const requestFor = (r: OrderRecord): OrderRequest => {
      const step = rules.get(r.symbol)?.stepSize ?? 0
      return { symbol: r.symbol, side: r.side, type: "MARKET", quantity: roundDownToStep(r.qty, step), clientOrderId: r.clientOrderId }
    }

    /** Sends (or resends) the order. `attempt` counts throttled tries; `resynced` allows one −1021 retry. */
    const send = (r: OrderRecord, attempt: number, resynced: boolean): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        yield* waitForPermit
        r.sentAt = yield* now
        yield* Metric.update(ordersSent.pipe(Metric.withAttributes({ symbol: r.symbol, side: r.side })), 1)
        const result = yield* exchange.placeOrder(requestFor(r)).pipe(Effect.result)
        if (result._tag === "Success") return yield* settle(r, result.success)
        return yield* onError(r, result.failure, attempt, resynced, "send")
      })

    const onError = (
      r: OrderRecord,
      error: ExchangeError,
      attempt: number,
      resynced: boolean,
      phase: "send" | "lookup"
    ): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        yield* Metric.update(orderErrors.pipe(Metric.withAttributes({ symbol: r.symbol, kind: error._tag })), 1)
        const ts = yield* now
        switch (error._tag) {
          case "ExchangeRateLimited": {
            yield* Ref.set(notBefore, ts + error.retryAfterMs)
            yield* Effect.logWarning("rate limited by the exchange; holding requests", {
              status: error.httpStatus,
              retryAfterMs: error.retryAfterMs,
              clientOrderId: r.clientOrderId
            })
            if (error.httpStatus === 418) yield* alert("warning", `Exchange ban (418): requests held for ${Math.round(error.retryAfterMs / 1000)} s`, r.origin)
            if (attempt + 1 >= options.maxAttempts) {
              return phase === "send"
                ? yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: -1003, reason: `rate limited ${attempt + 1} times; not placed` })
                : yield* leaveInFlight(r, "rate limited while looking the order up")
            }
            return phase === "send" ? yield* send(r, attempt + 1, resynced) : yield* lookup(r, attempt + 1)
          }
          case "ExchangeUnavailable":
          case "ExchangeDecodeError": {
            const reason = error._tag === "ExchangeUnavailable" ? error.reason : `undecodable response: ${error.message}`
            if (phase === "send") yield* emit({ _tag: "OrderUncertain", ...eventBase(r, ts), reason })
            return yield* lookup(r, phase === "send" ? 0 : attempt + 1)
          }
          case "ExchangeApiError": {
            if (phase === "lookup" && error.code === -2013) return yield* notFound(r, attempt)
            const decision = classifyApiError(error.code, error.msg)
            switch (decision) {
              case "resync":
                if (!resynced) {
                  const offset = yield* exchange.syncTime.pipe(Effect.catch(() => Effect.succeed(Number.NaN)))
                  yield* Effect.logWarning("timestamp outside recvWindow; clock resynced", { offsetMs: offset })
                  return phase === "send" ? yield* send(r, attempt, true) : yield* lookup(r, attempt)
                }
                return phase === "send"
                  ? yield* emit({ _tag: "OrderRejected", ...eventBase(r, ts), code: error.code, reason: error.msg })
                  : yield* leaveInFlight(r, error.msg)
              case "backoff":
                if (attempt + 1 >= options.maxAttempts) {
                  return phase === "send"
                    ? yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: error.code, reason: `${error.msg} (gave up after ${attempt + 1})` })
                    : yield* leaveInFlight(r, error.msg)
                }
                yield* Effect.sleep(backoffDelay(attempt))
                return phase === "send" ? yield* send(r, attempt + 1, resynced) : yield* lookup(r, attempt + 1)
              case "reconcile":
                if (phase === "send") yield* emit({ _tag: "OrderUncertain", ...eventBase(r, ts), reason: `${error.code} ${error.msg}` })
                return yield* lookup(r, phase === "send" ? 0 : attempt + 1)
              case "reject":
                if (error.code === -1013) yield* refreshRules.pipe(Effect.ignore)
                return phase === "send"
                  ? yield* emit({ _tag: "OrderRejected", ...eventBase(r, ts), code: error.code, reason: error.msg })
                  : yield* leaveInFlight(r, error.msg)
              case "haltSymbol":
              case "haltAll":
                yield* halt(decision === "haltSymbol" ? r.symbol : undefined, `${error.code} ${error.msg}`, r.origin)
                return phase === "send"
                  ? yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: error.code, reason: error.msg })
                  : yield* leaveInFlight(r, error.msg)
            }
          }
        }
      })

    const backoffDelay = (attempt: number) =>
      Duration.millis(Math.min(Duration.toMillis(options.lookupBackoff) * 2 ** attempt, 10_000))

    /** GET the order by client id. Found → settle; −2013 → notFound; otherwise back off and try again. */
    const lookup = (r: OrderRecord, attempt: number): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        if (attempt >= options.maxLookups) return yield* leaveInFlight(r, `still unknown after ${attempt} lookups`)
        yield* Effect.sleep(backoffDelay(Math.min(attempt, 5)))
        yield* waitForPermit
        const result = yield* exchange.queryOrder(r.symbol, r.clientOrderId).pipe(Effect.result)
        if (result._tag === "Success") return yield* settle(r, result.success)
        return yield* onError(r, result.failure, attempt, false, "lookup")
      })

    /**
     * The exchange does not know the order. Resending is safe only once the original request can no longer
     * execute: Binance refuses a request whose timestamp is older than recvWindow.
     */
    const notFound = (r: OrderRecord, attempt: number): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        const t = yield* now
        const safeAt = r.sentAt + options.recvWindowMs + 1000
        if (t < safeAt) {
          yield* Effect.sleep(Duration.millis(safeAt - t))
          return yield* lookup(r, attempt + 1)
        }
        yield* Effect.logWarning("order does not exist at the exchange (−2013); resending with the same client id", {
          clientOrderId: r.clientOrderId
        })
        yield* emit({ _tag: "OrderSubmitted", ...eventBase(r, t) })
        return yield* send(r, 0, false)
      })

    const leaveInFlight = (r: OrderRecord, reason: string) =>
      Effect.gen(function*() {
        yield* Effect.logError("order outcome still unknown; left in flight for reconciliation", { clientOrderId: r.clientOrderId, reason })
        yield* alert("error", `Order ${r.clientOrderId} (${r.side} ${r.qty} ${r.symbol}) outcome unknown: ${reason}. Check the exchange.`, r.origin)
      })

    const handle = (approved: Approved): Effect.Effect<void, BusError> =>
      Effect.gen(function*() {
        const existing = records.get(approved.id)
        if (existing !== undefined) {
          yield* Metric.update(duplicatesSuppressed, 1)
          if (FINAL.has(existing.status)) {
            return yield* Effect.logDebug("approved signal already handled; not sent again", { signalId: approved.id, status: existing.status })
          }
          yield* Effect.logWarning("approved signal was in flight; reconciling instead of resending", { signalId: approved.id })
          return yield* lookup(existing, 0)
        }
        const ts = yield* now
        const symbol = approved.candidate.symbol
        const r: OrderRecord = {
          signalId: approved.id,
          clientOrderId: clientOrderIdFor(approved.id),
          symbol,
          side: approved.orderSide,
          action: approved.action,
          qty: approved.qty,
          origin: approved.origin,
          status: "submitted",
          sentAt: ts
        }
        decidedAt.set(approved.id, approved.ts)
        const haltReason = halted.get(symbol) ?? halted.get("*")
        if (haltReason !== undefined) {
          return yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: 0, reason: `trading halted: ${haltReason}` })
        }
        if (!rules.has(symbol)) {
          const loaded = yield* refreshRules.pipe(Effect.result)
          if (loaded._tag === "Failure" || !rules.has(symbol)) {
            const why = loaded._tag === "Failure" ? loaded.failure._tag : `no exchange rules for ${symbol}`
            return yield* emit({ _tag: "OrderFailed", ...eventBase(r, ts), code: 0, reason: `cannot load exchange filters: ${why}` })
          }
        }
        const prepared = prepareMarketOrder(approved, rules.get(symbol)!, approved.candidate.price)
        if (prepared._tag === "Refused") {
          return yield* emit({ _tag: "OrderRejected", ...eventBase(r, ts), code: -1013, reason: `not sent: ${prepared.reason}` })
        }
        const record: OrderRecord = { ...r, qty: prepared.quantity }
        yield* emit({ _tag: "OrderSubmitted", ...eventBase(record, ts) })
        return yield* send(records.get(record.signalId)!, 0, false)
      }).pipe(Effect.annotateLogs({ signalId: approved.id }))

    const resumeInFlight = Effect.gen(function*() {
      const open = [...records.values()].filter((r) => !FINAL.has(r.status))
      if (open.length > 0) yield* Effect.logWarning("reconciling orders left in flight by a previous run", { count: open.length })
      for (const r of open) yield* lookup(r, 0)
    })

    const manager: OrderManager = {
      rebuild: (events) => {
        for (const e of events) observe(e)
      },
      handle,
      resumeInFlight,
      observe,
      setPaused: (paused) => {
        if (!paused) halted.clear()
      },
      refreshRules,
      inFlight: Effect.sync(() => [...records.values()].filter((r) => !FINAL.has(r.status)).length)
    }
    return manager
  })
