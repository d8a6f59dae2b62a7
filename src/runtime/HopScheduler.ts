/**
 * The fiber scheduler of `run` and `service`: hand-offs between fibers (a Queue offer waking a taker, Stream.mergeAll's
 * per-element yield, a fork, a yield) run in a microtask rather than in the next event-loop turn.
 *
 * Why: Effect's default scheduler dispatches each such hand-off with setImmediate, so it waits for the rest of the
 * event loop (every socket read pending, timers) before the next fiber runs. A tick crosses four or five of them on
 * its way to an order (WebSocket callback → ingest, risk's merged inputs, the order lane), and at 1k ticks/s each cost
 * a loop turn with a frame in it: about 2 ms of the embedded tick → order p50 (see BENCHMARKS.md, tick section).
 *
 * Bounded: after `budget` microtask dispatches with no event-loop turn in between, dispatches go through setImmediate
 * again until the loop has turned, so a fiber that yields in a loop can never starve sockets and timers.
 */
import { Scheduler } from "effect"

export const makeHopScheduler = (budget = 256): Scheduler.Scheduler => {
  let chain = 0
  let resetPending = false
  const resetChain = () => {
    chain = 0
    resetPending = false
  }
  const dispatch = (run: () => void): (() => void) => {
    if (!resetPending) {
      resetPending = true
      setImmediate(resetChain)
    }
    if (chain++ < budget) {
      let cancelled = false
      queueMicrotask(() => {
        if (!cancelled) run()
      })
      return () => {
        cancelled = true
      }
    }
    const timer = setImmediate(run)
    return () => clearImmediate(timer)
  }
  return new Scheduler.MixedScheduler("async", dispatch)
}
