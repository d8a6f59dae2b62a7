/**
 * `autotrader replay` starts from its own entry point (src/cli/ReplayMain.ts): a replay is timed as a whole process,
 * so it must not load the live stages, the bus, the exchange client, the simulator or onnxruntime. Same help as
 * through the full command line.
 */
import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { join } from "node:path"

const root = join(import.meta.dirname, "..", "..")
const bin = join(root, "bin", "autotrader.js")
// an --import hook that prints every module URL the process loaded when it exits
const hook = `data:text/javascript,${encodeURIComponent(`
import { registerHooks } from "node:module"
import { writeSync } from "node:fs"
const seen = []
registerHooks({ load(url, context, next) { seen.push(url); return next(url, context) } })
process.on("exit", () => writeSync(2, "LOADED " + JSON.stringify(seen) + "\\n"))
`)}`

/** `autotrader <args>` to its exit: what it printed and every module it loaded. */
const run = (args: ReadonlyArray<string>) => {
  const r = spawnSync(process.execPath, ["--import", hook, bin, ...args], { encoding: "utf8", timeout: 120_000, cwd: root })
  const line = r.stderr.split("\n").find((l) => l.startsWith("LOADED "))
  expect(line, r.stderr).toBeDefined()
  return { code: r.status, stdout: r.stdout, modules: JSON.parse(line!.slice("LOADED ".length)) as Array<string> }
}

describe("replay's entry point", () => {
  it("loads only what a replay needs, and prints the same help as the full command line", () => {
    const replay = run(["replay", "--help"])
    const full = run(["help", "replay"]) // `help replay` goes through main.ts
    expect(replay.code).toBe(0)
    expect(replay.stdout).toBe(full.stdout)
    expect(replay.stdout).toContain("--grid")
    expect(replay.modules.some((m) => m.endsWith("/src/cli/ReplayMain.ts"))).toBe(true)
    expect(full.modules.some((m) => m.endsWith("/src/cli/main.ts"))).toBe(true)
    const unwanted = replay.modules.filter((m) =>
      m.endsWith("/src/cli/main.ts") ||
      /\/src\/(runtime\/Stages|bus\/|sim\/|ingest\/|orders\/OrderManager|notify\/|ml\/)|\/layers\/|node_modules\/(onnxruntime-node|kafkajs|@platformatic|ws|grammy)\//.test(m)
    )
    expect(unwanted).toEqual([])
    expect(replay.modules.length).toBeLessThan(full.modules.length)
  })
})
