/**
 * `npm run chaos [-- --minutes N] [--seed S] [--rate R] [--broker-restarts K] [--fault-rate F] [--held-retry-share H]
 * [--recv-window MS] [--kill-gap MIN,MAX] [--instances 1|2] [--brokers HOST:PORT] [--keep]`: the chaos harness
 * (scripts/chaos/harness.ts) for N minutes of chaos (default 5), then its checks. Exit 0 only when every check passed.
 * `npm run chaos --minutes 5` (without `--`) works too: npm hands the flag over as npm_config_minutes.
 */
import { formatReport, runChaos } from "./harness.ts"

const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const i = args.indexOf(`--${name}`)
  if (i !== -1) return args[i + 1]
  const eq = args.find((a) => a.startsWith(`--${name}=`))
  if (eq !== undefined) return eq.slice(name.length + 3)
  return process.env[`npm_config_${name.replaceAll("-", "_")}`]
}
const number = (name: string, fallback: number, min: number, max: number): number => {
  // `npm run chaos --minutes 5` reaches us as npm_config_minutes=true and a positional "5"
  const positional = name === "minutes" && /^\d+(\.\d+)?$/.test(args[0] ?? "") ? args[0] : undefined
  const given = flag(name)
  const raw = given === undefined || given === "true" ? positional : given
  if (raw === undefined || raw === "") return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n < min || n > max) {
    console.error(`chaos: --${name} must be a number from ${min} to ${max} (got "${raw}")`)
    process.exit(2)
  }
  return n
}

const minutes = number("minutes", 5, 0.25, 240)
const gap = flag("kill-gap")
const killGapMs = gap === undefined ? undefined : gap.split(",").map(Number)
if (killGapMs !== undefined && (killGapMs.length !== 2 || !killGapMs.every((n) => Number.isFinite(n) && n >= 0) || killGapMs[0] > killGapMs[1])) {
  console.error(`chaos: --kill-gap must be MIN,MAX in ms with MIN <= MAX (got "${gap}")`)
  process.exit(2)
}
const brokers = flag("brokers")
const options = {
  durationMs: minutes * 60_000,
  seed: flag("seed") === undefined ? undefined : number("seed", 1, 0, 2 ** 31),
  ticksPerSecond: number("rate", 50, 1, 2000),
  brokerRestarts: number("broker-restarts", Math.max(1, Math.min(12, Math.round(minutes))), 0, 100),
  heldRetryShare: number("held-retry-share", 0.2, 0, 1),
  recvWindowMs: number("recv-window", 5000, 1000, 60000),
  faultRate: number("fault-rate", 0.5, 0, 1),
  instances: number("instances", 1, 1, 2) === 2 ? (2 as const) : (1 as const),
  ...(killGapMs === undefined ? {} : { killGapMs: [killGapMs[0], killGapMs[1]] as const }),
  // an existing broker (no broker restarts then: the harness only stops a broker it started)
  ...(brokers === undefined ? {} : { brokers }),
  keep: args.includes("--keep")
}

// Ctrl-C / SIGTERM: exit through process.exit so the harness's exit hook kills the stages and stops its broker
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130))

const report = await runChaos(options).catch((error: unknown) => {
  console.error(`chaos: the run could not complete: ${error instanceof Error ? error.message : String(error)}`)
  return process.exit(1)
})
console.log(formatReport(report))
process.exit(report.violations.length === 0 ? 0 : 1)
