/**
 * The Binance stand-in of the tick→order benchmarks, in its own process: it sends random-walk trades at a fixed rate
 * and times, for each order placement it receives, trade sent → order received (the order's client id names the
 * trade that caused it: at-SYMBOL-TRADEID-L|S). Protocol over IPC: → ready {ws, rest}; → connected (first stream
 * client); ← go; → result {latencies (ms), timeline, trades, orders}.
 */
import { startSimExchange } from "../../src/sim/SimExchange.ts"

const [rate, warmupSec, seconds] = process.argv.slice(2).map(Number)
const symbol = "BTCUSDT"
/** performance.now() when each trade id was sent (ids are 1, 2, 3 … for the one symbol); a Map of millions costs GC. */
let sentAt = new Float64Array(1 << 20)
const sentAtOf = (tradeId: number): number | undefined => (tradeId < sentAt.length && sentAt[tradeId] > 0 ? sentAt[tradeId] : undefined)
let measureFrom = Number.POSITIVE_INFINITY
const latencies: Array<number> = []
/** Per measured order: trade id, trade sent and order received as epoch ms (joined with the client's LATENCY_TRACE). */
const timeline: Array<[number, number, number]> = []
let orders = 0
const ORDER_ID = /^at-[A-Z0-9]+-(\d+)-[LS]$/

const sim = await startSimExchange({
  symbols: [symbol],
  seed: 7,
  onTradeSent: (_symbol, tradeId) => {
    if (tradeId >= sentAt.length) {
      const grown = new Float64Array(Math.max(sentAt.length * 2, tradeId + 1))
      grown.set(sentAt)
      sentAt = grown
    }
    sentAt[tradeId] = performance.now()
  },
  onOrderRequest: (clientOrderId, receivedAt) => {
    orders++
    const id = ORDER_ID.exec(clientOrderId)
    const sent = id === null ? undefined : sentAtOf(Number(id[1]))
    if (sent !== undefined && sent >= measureFrom) {
      latencies.push(receivedAt - sent)
      timeline.push([Number(id![1]), performance.timeOrigin + sent, performance.timeOrigin + receivedAt])
    }
  }
})
const send = (m: object) => process.send?.(m)
send({ type: "ready", ws: sim.wsBaseUrl, rest: sim.restBaseUrl })
const poll = setInterval(() => {
  if (sim.streamClients() > 0) {
    clearInterval(poll)
    send({ type: "connected" })
  }
}, 20)

process.on("message", (m: { type: string }) => {
  if (m.type !== "go") return
  const started = performance.now()
  let emitted = 0
  let measuredTrades = 0
  const timer = setInterval(() => {
    const now = performance.now()
    const elapsed = (now - started) / 1000
    if (elapsed >= warmupSec && measureFrom === Number.POSITIVE_INFINITY) measureFrom = now
    const due = Math.min(Math.floor(elapsed * rate) - emitted, 5_000)
    for (let i = 0; i < due; i++) sim.tick(symbol)
    emitted += Math.max(due, 0)
    if (now >= measureFrom) measuredTrades += Math.max(due, 0)
    if (elapsed >= warmupSec + seconds) {
      clearInterval(timer)
      const measuredSec = (now - measureFrom) / 1000
      // orders in flight for the last trades still count
      setTimeout(() => {
        send({ type: "result", latencies, timeline, trades: measuredTrades, sent: emitted, orders, seconds, measuredSec })
        void sim.close().then(() => process.exit(0))
      }, 300)
    }
  }, 1)
})
