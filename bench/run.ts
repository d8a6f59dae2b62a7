/**
 * `npm run bench`: every figure next to its floor, measured in the same run and interleaved (floor, subject, floor,
 * subject, …, each in a fresh process), so a busy machine slows both alike; the ratio is the figure that travels.
 * Writes BENCHMARKS.md: machine, Node, date, load before/after, per figure the median of RUNS runs and its spread.
 *
 *   node bench/run.ts [--runs N] [--only tick,kafka,stages,store,replay,extra|ml|backfill] [--rates 50,1000,10000]
 *   (--only kafka-latency: §2 without the sustained-rate search: floors, tick → order over Kafka and its traced hops)
 *   node bench/run.ts --child <name> [args…]     one measurement, JSON on stdout (used by the parent)
 *
 * Scenarios (each a function with its floor next to it): tickToOrder.ts (tick → order, measured by the simulator),
 * kafka.ts (produce → consume floors per client, our Bus over Kafka), stages.ts (decode, signal + risk on one core),
 * storage.ts (store vs bare DuckDB COPY, replay as a whole process on our tree and a foreign one).
 * Other areas' benchmarks (bench/ml.ts, bench/backtest.ts, bench/backfill.ts) join through `extraScenarios`.
 */
import { execFileSync } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { cpus, loadavg, tmpdir, totalmem } from "node:os"
import { join } from "node:path"
import { kafkaBusFigures, kafkajsFloor, platformaticFloor } from "./kafka.ts"
import { pipelineSection } from "./kafkaPipeline.ts"
import { cliBefore, k, median, ms, ratio, root, spread } from "./lib.ts"
import { decodeFloor, decodeStage, makeFrames, makeTicks, signalRiskFloor, signalRiskStage } from "./stages.ts"
import { replayFloor, replayProcess, storeFloor, storeStage, writeForeignTree, writeOwnTree } from "./storage.ts"
import { type Client, HOPS, type LatencyRun, tickToOrderRun } from "./tickToOrder.ts"

const STAGE_N = 500_000
const STORE_N = 1_000_000
const REPLAY_N = 2_000_000
const KAFKA_N = 50_000

// ---------------------------------------------------------------------------------------------------------------
// children: one measurement per fresh process

const children: Record<string, (args: ReadonlyArray<string>) => Promise<unknown>> = {
  "decode": async () => decodeStage(makeFrames(makeTicks(STAGE_N))),
  "decode-floor": async () => decodeFloor(makeFrames(makeTicks(STAGE_N))),
  "signal-risk": async () => signalRiskStage(makeTicks(STAGE_N)),
  "signal-risk-floor": async () => signalRiskFloor(makeTicks(STAGE_N)),
  "store": async () => storeStage(STORE_N),
  "store-floor": async () => storeFloor(STORE_N),
  "write-own": ([dir]) => writeOwnTree(dir, REPLAY_N),
  "write-foreign": ([dir]) => writeForeignTree(dir, REPLAY_N),
  "replay-floor": async ([dir]) => {
    const started = performance.now()
    const { rows } = await replayFloor(dir)
    return rows / ((performance.now() - started) / 1000)
  },
  "kafkajs": () => kafkajsFloor(KAFKA_N),
  "platformatic": () => platformaticFloor(KAFKA_N),
  "kafka-bus": () => kafkaBusFigures(KAFKA_N, "kafkajs"),
  "kafka-bus-platformatic": () => kafkaBusFigures(KAFKA_N, "platformatic")
}

const child = <T>(name: string, ...args: Array<string>): T =>
  JSON.parse(
    execFileSync(process.execPath, [import.meta.filename, "--child", name, ...args], {
      encoding: "utf8",
      maxBuffer: 16 << 20,
      stdio: ["ignore", "pipe", "inherit"],
      timeout: 600_000
    })
  ) as T

// ---------------------------------------------------------------------------------------------------------------
// the run

const argv = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`)
  return i === -1 ? undefined : argv[i + 1]
}
const RUNS = Number(flag("runs") ?? 3)
const only = flag("only")?.split(",")
const want = (section: string) => only === undefined || only.includes(section)
const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`)

/** `RUNS` rounds; each round runs every subject once, the order alternating between rounds. */
const interleaved = async <T>(subjects: ReadonlyArray<readonly [string, () => T | Promise<T>]>): Promise<Map<string, Array<T>>> => {
  const out = new Map(subjects.map(([name]) => [name, [] as Array<T>]))
  for (let r = 0; r < RUNS; r++) {
    const order = r % 2 === 0 ? subjects : [...subjects].reverse()
    for (const [name, run] of order) {
      const value = await run()
      out.get(name)!.push(value)
      log(`${name} ${r + 1}/${RUNS}: ${JSON.stringify(value)}`)
    }
  }
  return out
}

const sections: Array<string> = []

/** (1) tick → order, embedded, at three rates: floor vs `autotrader run`. */
const tickSection = async () => {
  const rates = flag("rates")?.split(",").map(Number) ?? [50, 1_000, 10_000]
  const seconds = (rate: number) => (rate <= 50 ? 24 : 6) // 50/s: ~40 orders per run, so its p50 is not one of 20
  const rows: Array<string> = []
  for (const rate of rates) {
    const clients: Array<Client> = ["floor", "embedded", ...(cliBefore !== undefined ? ["embedded-before" as const] : [])]
    const results = await interleaved<LatencyRun>(clients.map((c) => [c, () => tickToOrderRun(c, rate, seconds(rate), 2)] as const))
    const floor = results.get("floor")!
    const floorP50 = median(floor.map((r) => r.p50))
    for (const [client, runs] of results) {
      const p50 = median(runs.map((r) => r.p50))
      const p99 = median(runs.map((r) => r.p99))
      rows.push(
        `| ${rate.toLocaleString("en-US")}/s | ${client === "floor" ? "floor: bare client" : client === "embedded" ? "autotrader run" : "autotrader run, before (BENCH_BEFORE)"} | ${spread(runs.map((r) => r.p50), ms)} | ${
          spread(runs.map((r) => r.p99), ms)
        } | ${spread(runs.map((r) => r.max), ms)} | ${client === "floor" ? "1×" : `**${ratio(p50 / floorP50)}**`} | ${
          client === "floor" ? "–" : ratio(p99 / floorP50)
        } | ${median(runs.map((r) => r.orders))} | ${median(runs.map((r) => r.cpuPct)).toFixed(0)} % | ${median(runs.map((r) => r.rssMb)).toFixed(0)} |`
      )
    }
  }
  // where the milliseconds go at 1k/s: `autotrader run` with LATENCY_TRACE, beside a floor run
  const traced = await interleaved<LatencyRun>([
    ["floor", () => tickToOrderRun("floor", 1_000, 6, 2)],
    ["embedded-traced", () => tickToOrderRun("embedded-traced", 1_000, 6, 2)]
  ])
  const tracedRuns = traced.get("embedded-traced")!
  const tracedFloor = median(traced.get("floor")!.map((r) => r.p50))
  const hopRows = HOPS.map(([from, to, what], i) => {
    const p50s = tracedRuns.map((r) => r.hops?.[i]?.p50 ?? Number.NaN)
    return `| ${from} → ${to} | ${what} | ${spread(p50s, ms)} |`
  })
  const hopSum = median(tracedRuns.map((r) => (r.hops ?? []).reduce((s, h) => s + (Number.isFinite(h.p50) ? h.p50 : 0), 0)))
  sections.push(`## 1. Tick → order, embedded

Trade sent by the simulator (its own process) → order placement received by it, per order whose trade was sent after a 2 s warm-up; the order's client id names the trade (\`at-SYMBOL-TRADEID-L|S\`). One symbol, random walk, risk limits open (every approved crossing is an order; the position gate still alternates BUY/SELL and holds a new order while one is in flight), store off. **Floor**: \`bench/children/bare-client.ts\`: WebSocket frame → JSON.parse → MA10/MA30 crossing → HMAC-SHA256 → HTTP POST on a keep-alive agent, nothing else; its order policy is the pipeline's (long-only: a LONG crossing buys when flat, a SHORT crossing sells what the fills left it holding, nothing new while an order is in flight), so both place the same kind of orders and the 10k/s row compares like with like (the floor used to order on every crossing and queued requests at 10k/s). CPU: % of one core over the measured window; RSS at its end. Target at 1k/s: p50 ≤ 1.5× floor p50, p99 ≤ 3× floor p50.

| rate | client | p50 ms | p99 ms | max ms | p50 / floor p50 | p99 / floor p50 | orders | CPU | RSS MB |
|---|---|---|---|---|---|---|---|---|---|
${rows.join("\n")}

**Where the milliseconds go at 1k/s** (\`LATENCY_TRACE\`, src/observability/LatencyTrace.ts): each stage marks the tick it hands on; the simulator's send and receive times close the path; per order, the time between consecutive points; median per hop over the orders of a run (median of ${RUNS} runs and spread). Traced run: p50 ${spread(tracedRuns.map((r) => r.p50), ms)} ms against a floor of ${ms(tracedFloor)} ms in the same rounds (${ratio(median(tracedRuns.map((r) => r.p50)) / tracedFloor)}); sum of the hop medians ${ms(hopSum)} ms. The floor's own path is the first and last hop plus its JSON.parse, MA and HMAC.

| hop | what happens in it | p50 ms |
|---|---|---|
${hopRows.join("\n")}

**Issue 11 work on this path** (measured 2026-12-01 23:17–23:24 UTC on the shared 2-core machine, load 6.6–13.8, so ratios to the floor of the same round, not milliseconds, are the figures):
- *Floor made fair*: the bare client used to order on every crossing; at 10k/s its requests queued behind each other (p50 692 ms). It now has the pipeline's order policy (long-only, sells what its fills left, nothing new while an order is in flight): 10k/s floor p50 1.50 ms, same kind of orders as the pipeline.
- *Profile before* (\`node --cpu-prof\` on \`autotrader run\` at 1k/s, 7 s of the measured window, load ~15): Effect runtime 52 % of the busy CPU, the in-memory bus's Schema encode of every published value 12 %, log writes (console.log, writeUtf8String) ~8 %, GC 7 %, frame decode 6 %. Fiber hand-offs through Effect's scheduler (a Queue offer waking its taker, Stream.mergeAll's per-element yield) each waited for an event-loop turn (setImmediate) with socket reads in it.
- *Changes*: hand-offs dispatched in a microtask, bounded to 256 in a row per loop turn (src/runtime/HopScheduler.ts); the in-memory bus keeps the published value and encodes only for a reader that needs the encoded form; JSON log lines leave in one write per loop turn; risk reads candidates straight from the bus (no merged queue). Per-candidate Info lines stay (operators' audit trail in JSON; the console already folds them).
- *Before → after at 1k/s* (same rounds, interleaved): \`autotrader run\` before these changes (d5592d0) p50 3.05 ms = 4.82× floor, p99 111.9 ms; after 2.78 ms = 4.41×, p99 71.6 ms. The scheduler alone (A/B, two rounds, floor 0.68/0.62 ms): p50 3.17/3.07 → 2.88/2.77 ms, p99 108/72 → 39/25 ms. At 10k/s the runs spread too widely under this load to separate (p50 4–42 ms either way).
- *Where it went then* (1k/s, before the order-leg work below): the four stages and three bus hops from frame to the order stage ~0.45 ms together; the order leg the rest: the lane hand-off ~0.2, the order manager (record, rules, BigDecimal quantity) ~0.25, OrderSubmitted made durable before the request ~0.2, signing and writing the request ~0.65 (Effect.tryPromise with an AbortController, Effect.timeout racing two fibers and a sleep per request, spans), the loopback to the simulator ~0.45 (the floor's too). Profile: busy CPU 35 % of a core, Effect runtime 43 %, log string writes 8 %, GC 6 %.
- *The order leg* (2026-12-02 01:00–01:45 UTC, load 11–17; single rounds unless said, ratio = p50 / floor p50 of the same round, hops from the traced run): (1) REST request: its deadline a timer on the request itself (no Effect.timeout race, no AbortController), no span on placeOrder, URL, headers and HMAC key built once: post → written 0.55 → 0.38 ms. (2) No span per approval (Effect.fnUntraced), retry schedules built once, the quantity sent kept from the order's preparation; a job arriving at an idle symbol lane starts the lane fiber at once (forkIn, startImmediately) and runs on the consumer's turn up to the request on the wire, instead of a queue hand-off: orders → lane 0.20 → 0.05 ms, ratio 3.64× → 2.92×. (3) The next order's request opened ahead, after an order's answer, with its kept-alive connection attached: \`end\` then writes at once, where a request opened when the order is ready got its connection a process tick later, behind every pending microtask (marking \`written\` at the socket's attachment had shown post → written 0.63 ms): post → received ~0.7 → ~0.5 ms, ratio 2.92× → 2.27–2.75×. (4) Metrics of the path keyed once per label set (perAttributes), JSON lines stringified without a replacer: risk → approved 0.07 → 0.04, approved → orders 0.16 → 0.12 ms. (5) Risk publishes a batch's approvals as they are (Effect.all with unbounded concurrency forked two fibers, one for an empty rejections publish, per approval at 1k/s): A/B 2 rounds against (4) 2.86× → 2.48×. Tried and dropped: yielding after a stage's publish so the next stage runs before the stage's own log lines (A/B 2.38× → 2.52×: no gain). The OrderSubmitted write-ahead stays before the request (issue #9's no-duplicate guarantee); the fence by assignment before every signed request is unchanged.
- *Before → after, A/B interleaved, 3 rounds at 1k/s* (01:40–01:46 UTC, load ~12, \`BENCH_BEFORE\` = dc79974): p50 **3.38 → 1.91 ms**, 4.61× → **2.61×** the floor (0.73 ms); p99 88.8 → 53.6 ms (121× → 73× the floor's p50; the floor's own p99 4.9 ms, 4.2–92.7 across rounds). Traced: 2.37× (floor 0.77 ms); hops frame → order stage ~0.35 ms, orders → lane 0.06, lane → submit 0.23, submit → post 0.19, post → received ~0.65 ms. The request is written synchronously now and \`written\` is marked when \`end\` returns: on this loaded 2-core machine the simulator, woken by the write, often runs its handler before our process resumes, so post → written looks long and written → received negative; read the two together.
- *The first placement's Effect overhead* (2026-12-02 02:00–02:13 UTC, load 7–16): the request goes on the wire before the OrderSubmitted's metrics and Info line (written when the request is answered, failed or interrupted; the event itself is still durable and fenced before it); one fence before the event and one before the request (was three); the retry machinery (schedule driver, metadata per attempt) set up only after a first retryable failure, which is replayed into the same schedule (same attempts and delays); no clock read for the rate-limit hold unless a 429/418 set one; per-round counters as plain variables; the exchange's serverTime a map, not a generator. The order stage alone (approval published → placeOrder called, fake exchange, three extra orders.events followers, JSON logger, 2,000 orders, A/B interleaved twice): p50 80/88 → 67/58 µs, p90 190/183 → 154/132 µs. \`bench/run.ts --only tick --rates 1000 --runs 2\`, A/B against 6b02d70: p50 1.79 → 1.70 ms, **2.24× → 2.13×** the floor (0.80 ms); traced lane → submit 0.23 → 0.16, submit → post 0.19 → 0.15 ms; frame → order stage ~0.35 ms and post → received ~0.5 ms unchanged. A quieter round (load ~1, 2 runs each) against 6b02d70: p50 1.65 → 1.27 ms, 2.72× → 2.08× the floor (0.61 ms); traced lane → submit 0.13, submit → post 0.12 ms. Tried and dropped: JSON log lines formatted at their flush instead of where logged (A/B in the same quiet conditions, 2 runs: p50 1.36 → 1.47 ms, p99 3.9 → 5.0 ms: the whole turn's lines formatted at once delay the next frame).
- *The first placement as plain code* (2026-12-02 04:10–05:25 UTC, load 3–11, A/B against caca316): \`OrderManager.placeNow\`, taken by the order stage when the symbol's lane is idle, does the first attempt's steps in the same order as the interpreted path (record and quantity, fence, OrderSubmitted appended durably to orders.events, fence again, request signed and written) as plain code, and hands the answer to the same retry, lookup and settle code; anything unusual (a duplicate, a halt, rules not loaded, a refusal, a rate-limit hold until it is over, a symbol not ours, a full topic, a Kafka bus) returns with nothing done and takes the interpreted path. The quantity checks of a rules object are kept per quantity, and the notional is compared in floats only when it is far above the minimum. Traced hops at 1k/s: approved → orders 0.154 → 0.02, orders → lane 0.05 → 0.01, lane → submit 0.14 → 0.02, submit → post 0.13 → 0.02 ms; at 50/s 0.51, 0.12, 0.40, 0.29 → 0.04, 0.008, 0.05, 0.04 ms. Why approved → orders had cost three times the other bus hops: risk wrote its Info line and metrics before publishing (~0.06 ms), and the in-memory bus ran every waiting reader inline in subscription order, so the operator view and risk's own follower ran before the order stage (~0.05 ms) and the four orders.events followers between the durable OrderSubmitted and the request it guards (~0.10 ms); observers (state followers, the operator view, the notifier) are now woken in a microtask once the publisher reaches its next wait, the stages inline, and risk publishes before it logs. \`bench/run.ts --only tick --rates 50,1000 --runs 2\` against caca316 (05:21–05:26 UTC, load 3.7–4.9): 50/s p50 3.81 → 2.38 ms, **2.04× → 1.27×** the floor (1.87 ms); 1k/s 1.37 → 1.02 ms, **2.09× → 1.56×** (floor 0.65 ms).
- *The in-memory bus at capacity*: a topic holding its 250,000 messages (BUS_CAPACITY) dropped its oldest with \`entries.splice(0, n)\` on every publish, moving the whole array: 0.5 ms per publish once a long run had filled market.raw (after ~1.4 h of a 50 trades/s symbol); a head index and a compaction when half the array is dropped slots make it 12 µs (3–4 µs below capacity). The benchmark's runs are too short to reach it; a trader's day is not.
- *Targets* (the full run of 2026-12-02 05:45 UTC above, load 1.6–2.4, \`BENCH_BEFORE\` = caca316, this session's start): p50 at 1k/s **1.55×** the floor (2.40× before; the traced run 1.38×), the 1.5× target missed by a hair; at 50 trades/s, the rate of the issue's outside measurement, **1.50×** (2.27× before) and our p99 (3.40 ms) within the floor's own (3.75 ms); p99 at 1k/s 8× the floor's p50 (target 3×; the floor's own p99 is 3.2× its p50). From frame to request written the hops now sum to ~0.2 ms; the order leg is ~0.07 ms of it. What is left of the p50 gap is CPU per tick rather than a wait on the path: \`autotrader run\` uses 29 % of a core at 1k/s against the floor's 7 %, on ticks that mostly never become an order (the Effect stream and fiber machinery of ingest, signals and risk per tick), so a frame more often arrives while the process is still busy. The next step is what the order leg got: each stage's batch as one synchronous pass, the interpreter only for the unusual (the store's sink went the same way: GC 180 → 15 ms, §4). p99: V8's young-generation collections (~25 MB allocated per second at 1k/s, a scavenge about every second, 1–13 ms on a quiet machine and 40+ ms on a loaded one) land on about one order in a hundred; the floor allocates next to nothing. The same synchronous passes cut the allocation; a larger young generation (\`--max-semi-space-size\`) was tried at load ~4 and could not be told apart from noise.
`)
}

/** (2) Kafka: client floors, our Bus, and tick → order with the stages as processes over the broker. */
const kafkaSection = async () => {
  const floors = await interleaved<{ p50: number; p99: number; perSec: number }>([
    ["kafkajs", () => child("kafkajs")],
    ["@platformatic/kafka", () => child("platformatic")],
    ["KafkaBus (kafkajs)", () => child("kafka-bus")],
    ["KafkaBus (platformatic)", () => child("kafka-bus-platformatic")]
  ])
  const base = floors.get("kafkajs")!
  const floorRows = [...floors].map(([name, runs]) =>
    `| ${name} | ${spread(runs.map((r) => r.p50), ms)} | ${spread(runs.map((r) => r.p99), ms)} | ${spread(runs.map((r) => r.perSec), k)} | ${
      ratio(median(runs.map((r) => r.perSec)) / median(base.map((r) => r.perSec)))
    } |`
  )
  const pipeline = await pipelineSection(interleaved, log, { ms, spread, median }, median(base.map((r) => r.p50)), cliBefore, want("kafka"))
  sections.push(`## 2. Over Kafka (local single-node broker)

Floors: a bare producer → consumer round trip in one process per client (idempotent producer, acks=all, 3 partitions, consumer max wait 50 ms), one message every 3 ms for latency; ${k(KAFKA_N)} tick-sized JSON messages in 1,000-message sends, consumed and committed per batch, for throughput. **KafkaBus**: the same through our Bus (Schema encode/decode, queue, stream, \`commitBatch\`).

| client | round trip p50 ms | p99 ms | produce → consume msgs/s | vs kafkajs |
|---|---|---|---|---|
${floorRows.join("\n")}

${pipeline}`)
}

/** (3) stage throughput on one core. */
const stagesSection = async () => {
  const r = await interleaved<number>([
    ["decode", () => child("decode")],
    ["decode-floor", () => child("decode-floor")],
    ["signal-risk", () => child("signal-risk")],
    ["signal-risk-floor", () => child("signal-risk-floor")]
  ])
  const row = (label: string, name: string, floorLabel: string) => {
    const s = r.get(name)!
    const f = r.get(`${name}-floor`)!
    return `| ${label} | ${spread(s, k)} | ${floorLabel} | ${spread(f, k)} | ${ratio(median(s) / median(f))} |`
  }
  sections.push(`## 3. Stage throughput (one core, ${k(STAGE_N)} pre-generated items, no sockets)

| stage | items/s | floor | floor items/s | stage / floor |
|---|---|---|---|---|
${row("decode: Binance trade frame → Tick (\`decodeTradeFrame\`: shape checked by hand, Schema path for anything unusual)", "decode", "JSON.parse + Number() of the fields")}
${row("signal + risk: \`stepSignal\` → \`decide\` (+ fill applied)", "signal-risk", "MA10/MA30 ring buffer + crossing flag")}
`)
}

/** (4) store vs bare COPY; replay as a whole process on our tree and a foreign one. */
const storageSection = async () => {
  const parts: Array<string> = []
  if (want("store")) {
    const r = await interleaved<{ perSec: number; peakRssMb: number }>([
      ["store", () => child("store")],
      ["store-floor", () => child("store-floor")]
    ])
    const s = r.get("store")!.map((x) => x.perSec)
    const f = r.get("store-floor")!.map((x) => x.perSec)
    parts.push(`| store: \`makeStoreSink\` → \`TickStore\` (512-tick batches, background writes, fsync + rename) | ${spread(s, k)} | bare DuckDB appender + COPY zstd, same ${k(STORE_N)} rows | ${spread(f, k)} | **${ratio(median(s) / median(f))}** (target ≥ 0.8×) |`)
  }
  if (want("replay")) {
    const own = mkdtempSync(join(tmpdir(), "bench-own-"))
    const foreign = mkdtempSync(join(tmpdir(), "bench-foreign-"))
    try {
      child("write-own", own)
      child("write-foreign", foreign)
      const cpuPerSec = new Map<string, Array<number>>([["own", []], ["foreign", []]])
      const replayRun = (tree: string, dir: string) => () => {
        const x = replayProcess(dir, REPLAY_N)
        cpuPerSec.get(tree)!.push(REPLAY_N / x.cpuSeconds)
        return x.perSec
      }
      const before = cliBefore
      const r = await interleaved<number>([
        ["replay own", replayRun("own", own)],
        ["replay foreign", replayRun("foreign", foreign)],
        ...(before === undefined ? [] : [["replay foreign (before)", () => replayProcess(foreign, REPLAY_N, before).perSec] as const]),
        ["floor own", () => child<number>("replay-floor", own)],
        ["floor foreign", () => child<number>("replay-floor", foreign)]
      ])
      for (const tree of ["own", "foreign"]) {
        const s = r.get(`replay ${tree}`)!
        const f = r.get(`floor ${tree}`)!
        parts.push(`| replay, ${tree === "own" ? "the store's own tree" : "a foreign tree"}: \`autotrader replay <dir>\` as a whole process (per CPU-second of the process: ${spread(cpuPerSec.get(tree)!, k)}) | ${spread(s, k)} | bare DuckDB \`read_parquet … ORDER BY ts, trade_id\` (dedup) reading every row | ${spread(f, k)} | ${ratio(median(s) / median(f))} (target ${k(1_000_000)} ticks/s wall: ${median(s) >= 1_000_000 ? "met" : "missed"}) |`)
      }
      const b = r.get("replay foreign (before)")
      if (b !== undefined) {
        parts.push(`| replay, foreign tree, **before** this work (BENCH_BEFORE checkout) | ${spread(b, k)} | this checkout on the same tree | ${spread(r.get("replay foreign")!, k)} | ${ratio(median(r.get("replay foreign")!) / median(b))} after / before |`)
      }
    } finally {
      rmSync(own, { recursive: true, force: true })
      rmSync(foreign, { recursive: true, force: true })
    }
  }
  sections.push(`## 4. Store and replay

Store: ${k(STORE_N)} ticks, two symbols. Replay: ${k(REPLAY_N)} ticks; the store's own tree is what the store wrote (sorted files, marked in the footer); the foreign tree is the same Hive layout written by DuckDB directly: 10-minute files per symbol, rows shuffled inside each file, 25,000-row row groups, no sorted mark, and the first two files (both BTCUSDT) rewritten under a second name (snappy, 30,000-row row groups): ${k(REPLAY_N / 10)} duplicate rows the replay must drop. Replay wall time is spawn → exit of \`node bin/autotrader.js replay <dir>\` (start-up included: \`replay\` has its own entry point, src/cli/ReplayMain.ts, that loads neither the live stages nor the simulator); it runs signal + risk + paper fills per tick. Its CPU-seconds (all threads) give a rate that waits less on a loaded machine's cores.

| subject | ticks/s | floor | floor rows/s | subject / floor |
|---|---|---|---|---|
${parts.join("\n")}

**Store work of 2026-12-02** (issue 11; the store was 0.73× its floor in the 02:37 run and 0.79× median of 5 pairs after it): \`node --cpu-prof\` over the timed window showed GC 180 ms (15 ms after), an \`Effect.gen\` per 512-tick batch that also took the commit lock each time, buffers of a busy symbol doubling from 1,024 to 131,072 rows (six arrays allocated and copied each time, ~111 ms), and DuckDB's appender closing slower on a table emptied by \`DELETE\`. Now a batch that only buffers is one synchronous pass (Effect work only for a write behind, an hour's rotation, a commit that is due, a failed write to raise), a full buffer's successor starts at \`flushRows\`, each file gets a fresh buffer table (\`CREATE OR REPLACE\`: the appender's close 366 → 208 ms over 10 × 100k rows), and the file's fsync and size share one open; the temporary name, fsync before rename, rename, directory fsync, names and partitions are unchanged. 10 interleaved rounds at load 5.5–11 (floor, before = caca316, after; CPU of the timed window, since wall ratios at that load favour whichever process waits less): 0.72× → 1.15× the floor. The floor still does less than the store must: no fsync, rename or directory fsync, 2 files of 500k rows against the store's 10 of 100k (\`flushRows\` bounds the memory).
`)
}

/**
 * Other areas' scenarios. bench/backtest.ts (issue #14) runs as its own process and prints JSON; any other
 * bench/<name>.ts exporting `benchSection(runs): Promise<string>` (a Markdown section measured with its own floor)
 * is run when it exists (bench/ml.ts, bench/backfill.ts).
 */
const extraSection = async () => {
  if (want("extra") && existsSync(join(import.meta.dirname, "backtest.ts"))) {
    try {
      const out = JSON.parse(execFileSync(process.execPath, [join(import.meta.dirname, "backtest.ts"), "1000000"], { encoding: "utf8", maxBuffer: 16 << 20, timeout: 600_000 })) as {
        single: { ticksPerSec: number; processCpuSeconds?: number; ticks: number }
        grid: { comboTicksPerSec: number; combinations: number; processCpuSeconds?: number }
        report: { reportSeconds: number; bytes: number }
      }
      sections.push(`## Backtest (bench/backtest.ts, 1M ticks, one run)

| scenario | figure | floor | ratio |
|---|---|---|---|
| grid of ${out.grid.combinations} MA-window combinations in one pass | ${k(out.grid.comboTicksPerSec)} tick-combinations/s | one combination, same tree: ${k(out.single.ticksPerSec)} ticks/s | ${ratio(out.grid.comboTicksPerSec / out.single.ticksPerSec)} |
| HTML report for the replay | +${out.report.reportSeconds.toFixed(2)} s, ${(out.report.bytes / 1024).toFixed(0)} KB | the replay without it | – |
`)
    } catch (e) {
      sections.push(`## Backtest\n\nbench/backtest.ts failed in this run: ${String(e).slice(0, 300)}\n`)
    }
  }
  for (const name of ["ml", "backfill"]) {
    if (!want("extra") && !want(name)) continue
    const file = join(import.meta.dirname, `${name}.ts`)
    if (!existsSync(file)) continue
    const mod = (await import(file)) as { benchSection?: (runs: number) => Promise<string> }
    if (typeof mod.benchSection === "function") sections.push(await mod.benchSection(RUNS))
    else log(`bench/${name}.ts has no benchSection(runs) export; skipped`)
  }
}

const main = async () => {
  const loadBefore = loadavg()
  const started = new Date()
  if (want("tick")) await tickSection()
  if (want("kafka") || want("kafka-latency")) await kafkaSection()
  if (want("stages")) await stagesSection()
  if (want("store") || want("replay")) await storageSection()
  if (want("extra") || want("ml") || want("backfill")) await extraSection()
  const loadAfter = loadavg()
  const cpu = cpus()
  const fmtLoad = (l: ReadonlyArray<number>) => l.map((x) => x.toFixed(2)).join(" / ")
  const md = `# Benchmarks

Generated by \`npm run bench\` (bench/run.ts), ${started.toISOString().slice(0, 16).replace("T", " ")} UTC, ${((Date.now() - started.getTime()) / 60_000).toFixed(0)} min.
**Machine:** ${cpu[0]?.model ?? "unknown CPU"}, ${cpu.length} cores, ${(totalmem() / 1_073_741_824).toFixed(0)} GB RAM, Node ${process.version}, ${process.platform}/${process.arch}.
**Load average** (1 / 5 / 15 min) before: ${fmtLoad(loadBefore)}; after: ${fmtLoad(loadAfter)}.

Every figure is paired with a floor measured in the same run, interleaved with it (floor and subject alternate, each run a fresh process), so a busy machine slows both; absolute figures move with the load, **ratios are the figures to compare**. Cells: **median** (min–max) of ${RUNS} runs.

${sections.join("\n")}`
  writeFileSync(join(root, only === undefined ? "BENCHMARKS.md" : "BENCHMARKS.partial.md"), md)
  console.log(md)
}

if (argv[0] === "--child") {
  const run = children[argv[1]]
  if (run === undefined) throw new Error(`unknown benchmark ${argv[1]}; known: ${Object.keys(children).join(", ")}`)
  process.stdout.write(JSON.stringify((await run(argv.slice(2))) ?? null))
  process.exit(0)
} else await main()
