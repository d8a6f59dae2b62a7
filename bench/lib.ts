/** Small helpers shared by the benchmark scenarios: statistics, child processes, /proc sampling. */
import { type ChildProcess, execFileSync, fork, spawn } from "node:child_process"
import { openSync, readFileSync } from "node:fs"
import { join } from "node:path"

export const root = join(import.meta.dirname, "..")
export const cli = join(root, "bin", "autotrader.js")
/** BENCH_BEFORE=<checkout of an earlier commit>: its CLI runs beside this one where a scenario offers "before". */
export const cliBefore = process.env.BENCH_BEFORE === undefined ? undefined : join(process.env.BENCH_BEFORE, "bin", "autotrader.js")

export const sorted = (xs: ReadonlyArray<number>): Array<number> => [...xs].sort((a, b) => a - b)
/** Nearest-rank percentile of an ascending array (p in 0..100). */
export const pct = (asc: ReadonlyArray<number>, p: number): number =>
  asc.length === 0 ? Number.NaN : asc[Math.min(asc.length - 1, Math.max(0, Math.ceil((p / 100) * asc.length) - 1))]
export const median = (xs: ReadonlyArray<number>): number => pct(sorted(xs), 50)

/** "median (min–max)" of several runs. */
export const spread = (xs: ReadonlyArray<number>, fmt: (x: number) => string): string => {
  if (xs.length === 0) return "–"
  const s = sorted(xs)
  return xs.length === 1 ? fmt(s[0]) : `**${fmt(median(s))}** (${fmt(s[0])}–${fmt(s[s.length - 1])})`
}
export const ms = (x: number) => (Number.isFinite(x) ? x < 10 ? x.toFixed(2) : x.toFixed(1) : "–")
export const k = (x: number) => (Number.isFinite(x) ? `${Math.round(x / 1000).toLocaleString("en-US")}k` : "–")
export const ratio = (x: number) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "–")

/** CPU seconds (user + system) and RSS of a live process, from /proc. */
export const procStat = (pid: number): { cpuSec: number; rssMb: number; peakRssMb: number } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ")
    const ticks = Number(fields[11]) + Number(fields[12]) // utime, stime (fields 14, 15)
    const status = readFileSync(`/proc/${pid}/status`, "utf8")
    const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? Number.NaN)
    return { cpuSec: ticks / 100, rssMb: kb("VmRSS") / 1024, peakRssMb: kb("VmHWM") / 1024 }
  } catch {
    return undefined
  }
}

/** All descendants' pids (a process started through a shell or npm has children). */
export const withChildren = (pid: number): Array<number> => {
  try {
    const out = execFileSync("ps", ["-o", "pid=", "--ppid", String(pid)], { encoding: "utf8" })
    return [pid, ...out.split("\n").map((l) => Number(l.trim())).filter((n) => n > 0).flatMap(withChildren)]
  } catch {
    return [pid]
  }
}

export const sleep = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))

/** Forks a bench child script (IPC channel) and resolves its first message of `type`. */
export const forkChild = (script: string, args: ReadonlyArray<string>, env: NodeJS.ProcessEnv = {}): ChildProcess =>
  fork(join(import.meta.dirname, "children", script), [...args], { env: { ...process.env, ...env }, stdio: ["ignore", "ignore", "inherit", "ipc"] })

export const nextMessage = <T extends { type: string }>(child: ChildProcess, type: T["type"], timeoutMs = 60_000): Promise<T> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.off("message", on)
      reject(new Error(`no "${type}" from child within ${timeoutMs} ms`))
    }, timeoutMs)
    const on = (m: unknown) => {
      if (typeof m === "object" && m !== null && (m as T).type === type) {
        clearTimeout(timer)
        child.off("message", on)
        resolve(m as T)
      }
    }
    child.on("message", on)
  })

/** Starts `autotrader <args>` with `env`, its output discarded (what it logs is still formatted and written). */
/** BENCH_PROF_DIR=dir: every autotrader process writes a CPU profile there (`node --cpu-prof`), stopped with SIGINT. */
const profDir = process.env.BENCH_PROF_DIR
/** BENCH_LOG_DIR=dir: their output goes to dir/<args>.log instead of nowhere. */
const logDir = process.env.BENCH_LOG_DIR
export const startCli = (args: ReadonlyArray<string>, env: NodeJS.ProcessEnv, entry = cli): ChildProcess =>
  spawn(process.execPath, [...(profDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${profDir}`]), entry, ...args], {
    env: { ...process.env, ...env },
    stdio: ["ignore", logDir === undefined ? "ignore" : openSync(join(logDir, `${args.join("-")}.log`), "a"), "inherit"]
  })

export const stop = async (child: ChildProcess): Promise<void> => {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()))
  if (profDir !== undefined) {
    child.kill("SIGINT")
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000)
    await exited
    clearTimeout(timer)
  } else {
    child.kill("SIGKILL")
    await exited
  }
}
