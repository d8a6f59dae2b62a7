/**
 * The floor of tick→order: the least a client must do. WebSocket frame → JSON.parse → MA10/MA30 crossing (the same
 * rule as src/signals/SignalWorker) → HMAC-SHA256 signed query → HTTP POST over a keep-alive connection. Nothing else:
 * no bus, no schema, no logging.  argv: wsBaseUrl restBaseUrl
 *
 * Its order policy is the pipeline's (src/risk/RiskGate with open limits), so both place the same orders: spot,
 * long-only — a LONG crossing buys when flat, a SHORT crossing sells the open long — and no new order while one is in
 * flight (until its response). Ordering on every crossing instead queued requests behind one another at 10k/s.
 */
import { createHmac } from "node:crypto"
import { Agent, request } from "node:http"
import WebSocket from "ws"
import { SIM_API_KEY, SIM_API_SECRET } from "../../src/sim/SimExchange.ts"

const [wsBase, restBase] = process.argv.slice(2)
const agent = new Agent({ keepAlive: true, maxSockets: 8 })
const rest = new URL(restBase)
const prices = new Float64Array(30)
let count = 0
let sum10 = 0
let sum30 = 0
let lastSign = 0
/** BTC held, from the fills (net of the commission the simulator takes in BTC); a SELL closes it, as the pipeline's does. */
let held = 0
let inFlight = false
const STEP = 1e-5 // BTCUSDT's stepSize (src/sim/Markets.ts, as on Binance)

const place = (symbol: string, tradeId: number, side: "L" | "S") => {
  const quantity = side === "L" ? "0.001" : (Math.floor(held / STEP + 1e-9) * STEP).toFixed(5)
  const query = `symbol=${symbol}&side=${side === "L" ? "BUY" : "SELL"}&type=MARKET&quantity=${quantity}&newClientOrderId=at-${symbol}-${tradeId}-${side}` +
    `&newOrderRespType=FULL&recvWindow=5000&timestamp=${Date.now()}`
  const body = `${query}&signature=${createHmac("sha256", SIM_API_SECRET).update(query).digest("hex")}`
  const req = request({
    host: rest.hostname,
    port: rest.port,
    path: "/api/v3/order",
    method: "POST",
    agent,
    headers: { "X-MBX-APIKEY": SIM_API_KEY, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) }
  }, (res) => {
    let text = ""
    res.setEncoding("utf8")
    res.on("data", (chunk: string) => (text += chunk))
    res.on("end", () => {
      inFlight = false
      if (res.statusCode !== 200) return
      // the position comes from the fills, as the pipeline's does (orders.events)
      const order = JSON.parse(text) as { executedQty: string; fills: Array<{ commission: string; commissionAsset: string }> }
      let qty = Number(order.executedQty)
      if (side === "L") for (const f of order.fills) if (f.commissionAsset === "BTC") qty -= Number(f.commission)
      held += side === "L" ? qty : -qty
    })
  })
  inFlight = true
  req.on("error", () => {
    inFlight = false
  })
  req.end(body)
}

const ws = new WebSocket(`${wsBase}/stream?streams=btcusdt@trade`)
ws.on("message", (data) => {
  const t = JSON.parse(String(data)).data as { s: string; t: number; p: string }
  const price = Number(t.p)
  const i = count % 30
  if (count >= 10) sum10 -= prices[(count - 10) % 30]
  if (count >= 30) sum30 -= prices[i]
  prices[i] = price
  sum10 += price
  sum30 += price
  count++
  if (count < 30) return
  const diff = sum10 / 10 - sum30 / 30
  const sign = Math.abs(diff) <= (sum30 / 30) * 1e-12 ? 0 : diff > 0 ? 1 : -1
  if (sign === 0) return
  const previous = lastSign
  lastSign = sign
  if (previous === 0 || previous === sign || inFlight) return
  const long = held >= STEP
  if (sign > 0 ? !long : long) place(t.s, t.t, sign > 0 ? "L" : "S")
})
