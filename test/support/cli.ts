/** `bin/autotrader.js` as a child process, the way an operator runs it: env in, output and exit code out. */
import { spawn } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

export interface CliRun {
  readonly child: ReturnType<typeof spawn>
  /** stdout and stderr as received so far. */
  readonly output: () => string
  readonly stdout: () => string
  readonly exited: Promise<number | null>
  /** Resolves with the first match of `pattern` in the output (rejects after `timeoutMs` or on exit). */
  readonly waitFor: (pattern: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>
  /** Base URL of the process's HTTP server, from its "Listening on" line. */
  readonly httpBase: (timeoutMs?: number) => Promise<string>
  readonly stop: () => Promise<number | null>
}

/** Quiet, fast defaults: the OS picks the port, the store writes to a temp dir, the simulator trades briskly. */
export const startCli = (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}): CliRun => {
  const dataDir = mkdtempSync(join(tmpdir(), "autotrader-cli-"))
  const merged: Record<string, string> = {}
  for (const [k, v] of Object.entries({ ...process.env, HTTP_PORT: "0", DATA_DIR: dataDir, STORE_ENABLED: "false", SIM_TICKS_PER_SECOND: "100", ...env })) {
    if (v !== undefined) merged[k] = v
  }
  const child = spawn(process.execPath, ["bin/autotrader.js", ...args], { env: merged, stdio: ["ignore", "pipe", "pipe"] })
  let out = ""
  let stdout = ""
  const listeners = new Set<() => void>()
  const changed = () => {
    for (const l of listeners) l()
  }
  child.stdout.on("data", (d) => {
    out += d
    stdout += d
    changed()
  })
  child.stderr.on("data", (d) => {
    out += d
    changed()
  })
  let done = false
  const exited = new Promise<number | null>((resolve) =>
    child.on("exit", (code) => {
      done = true
      rmSync(dataDir, { recursive: true, force: true })
      changed()
      resolve(code)
    })
  )
  const waitFor = (pattern: RegExp, timeoutMs = 30_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const check = () => {
        const m = out.match(pattern)
        if (m !== null) return finish(() => resolve(m))
        if (done) finish(() => reject(new Error(`exited before ${pattern}:\n${out.slice(-3000)}`)))
      }
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${pattern} within ${timeoutMs} ms:\n${out.slice(-3000)}`))), timeoutMs)
      const finish = (f: () => void) => {
        clearTimeout(timer)
        listeners.delete(check)
        f()
      }
      listeners.add(check)
      check()
    })
  return {
    child,
    output: () => out,
    stdout: () => stdout,
    exited,
    waitFor,
    httpBase: async (timeoutMs) => {
      const m = await waitFor(/Listening on http:\/\/[^:]+:(\d+)/, timeoutMs)
      return `http://127.0.0.1:${m[1]}`
    },
    stop: () => {
      if (!done) child.kill("SIGTERM")
      return exited
    }
  }
}
