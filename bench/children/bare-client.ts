/**
 * The floor of tick→order: the least a client must do. WebSocket frame → JSON.parse → MA10/MA30 crossing (the same
 * rule as src/signals/SignalWorker) → HMAC-SHA256 signed query → HTTP POST over a keep-alive connection. Nothing else:
 * no bus, no schema, no risk, no logging.  argv: wsBaseUrl restBaseUrl
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

const place = (symbol: string, tradeId: number, side: "L" | "S") => {
  const query = `symbol=${symbol}&side=${side === "L" ? "BUY" : "SELL"}&type=MARKET&quantity=0.001&newClientOrderId=at-${symbol}-${tradeId}-${side}` +
    `&newOrderRespType=FULL&recvWindow=5000&timestamp=${Date.now()}`
  const body = `${query}&signature=${createHmac("sha256", SIM_API_SECRET).update(query).digest("hex")}`
  const req = request({
    host: rest.hostname,
    port: rest.port,
    path: "/api/v3/order",
    method: "POST",
    agent,
    headers: { "X-MBX-APIKEY": SIM_API_KEY, "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) }
  }, (res) => res.resume())
  req.on("error", () => undefined)
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
  if (previous !== 0 && previous !== sign) place(t.s, t.t, sign > 0 ? "L" : "S")
})
