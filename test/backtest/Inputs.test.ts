/** `autotrader replay` with bad inputs, as a user runs it: one line on stderr naming the problem, and its exit code. */
import { DuckDBInstance } from "@duckdb/node-api"
import { assert, describe, it } from "@effect/vitest"
import { Effect, Runtime } from "effect"
import { type BacktestOptions, runBacktest } from "../../src/backtest/Backtest.ts"
import { parseGrid } from "../../src/backtest/Grid.ts"
import { parseLatency } from "../../src/cli/ReplayCommand.ts"
import { spawn } from "node:child_process"
import { vi } from "vitest"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { query } from "../storage/support.ts"
import { storeTicks, tempDir, walkTicks } from "./support.ts"

const T0 = Date.UTC(2024, 4, 1, 10)

const replay = (args: ReadonlyArray<string>) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ["bin/autotrader.js", "replay", ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (d) => (stdout += d))
    child.stderr.on("data", (d) => (stderr += d))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

/** The lines a user reads on stderr (progress lines aside). */
const errorLines = (stderr: string) => stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("replaying…"))

const limits = { orderQty: 0.01, maxPosition: 1, maxTradesPerMinute: 3, maxTradesPerHour: 60 }
const base = (dir: string): BacktestOptions => ({ path: dir, fee: 0.001, slippageBps: 0, windows: { fast: 10, slow: 30 }, limits })

/** The one line `autotrader replay` prints for a failure, and the exit code the process ends with. */
const failureOf = (o: BacktestOptions) =>
  runBacktest(o).pipe(
    Effect.flip,
    Effect.map((e) => ({ line: `autotrader replay: ${e.message}`, code: Runtime.getErrorExitCode(e), reported: Runtime.getErrorReported(e) }))
  )

describe("replay input checks", () => {
  it.effect("each bad input: one line naming what is wrong and what is allowed, and its exit code", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("autotrader-inputs-")
      yield* storeTicks(dir, walkTicks(600, T0))
      // a Parquet file of another schema among the tick files
      const other = join(dir, "raw", "other.parquet")
      yield* query(`COPY (SELECT 1 AS id, 'x' AS name) TO '${other}' (FORMAT parquet)`)
      const b = base(dir)
      const cases: ReadonlyArray<readonly [string, BacktestOptions, number, RegExp]> = [
        ["negative fee", { ...b, fee: -1 }, 2, /^autotrader replay: --fee -1: must be 0 or more$/],
        ["negative slippage", { ...b, slippageBps: -5 }, 2, /^autotrader replay: --slippage-bps -5: must be 0 or more$/],
        ["negative maker fee", { ...b, makerFee: -0.001 }, 2, /^autotrader replay: --maker-fee -0.001: must be 0 or more$/],
        ["--from after --to", { ...b, from: Date.UTC(2024, 4, 2), to: Date.UTC(2024, 4, 1) }, 2, /^autotrader replay: --from 2024-05-02T00:00:00\.000Z is not before --to 2024-05-01T00:00:00\.000Z/],
        ["--from equal to --to", { ...b, from: T0, to: T0 }, 2, /is not before --to/],
        ["unknown symbol", { ...b, symbols: ["NOPEUSDT", "BTCUSDT"] }, 2, /^autotrader replay: --symbols: NOPEUSDT not in .* \(present: BTCUSDT, ETHUSDT\)$/],
        ["foreign schema under --strict", { ...b, strict: true }, 65, /^autotrader replay: .*other\.parquet: not a tick file: missing columns ts, symbol, price, size, side, trade_id, received_at .*\(--strict\)$/],
        ["unwritable report", { ...b, report: join(dir, "no-such-dir", "r.html") }, 73, /^autotrader replay: --report .*r\.html: cannot write here \(directory .*no-such-dir does not exist\)$/],
        ["report path is a directory", { ...b, report: dir }, 73, /^autotrader replay: --report .*: cannot write here \(is a directory\)$/],
        ["no such path", { ...b, path: join(dir, "nothing") }, 66, /^autotrader replay: .*nothing: no such file or directory$/],
        ["walk-forward of 0 folds", { ...b, walkForward: 0 }, 2, /^autotrader replay: --walk-forward 0: a number of folds from 1 to 50$/]
      ]
      for (const [name, options, code, line] of cases) {
        const f = yield* failureOf(options)
        assert.strictEqual(f.code, code, name)
        assert.match(f.line, line, name)
        assert.notInclude(f.line, "\n", name)
        assert.isFalse(f.reported, `${name}: printed once by the command, not again with a stack`)
      }
      // flags parsed by the command itself
      assert.strictEqual(parseLatency("5ms"), 5)
      assert.strictEqual(parseLatency("0.2s"), 200)
      assert.isUndefined(parseLatency("-5ms"))
      assert.match(parseGrid(["fats=5,10"]) as string, /^--grid: unknown key "fats" \(keys: fast, slow/)
      // without --strict the foreign file is named, skipped with a warning, and the run goes on
      const lenient = yield* runBacktest(b)
      assert.strictEqual(lenient.ticks, 600)
      assert.isTrue(lenient.warnings.some((w) => w.startsWith(`skipped ${other}: not a tick file`)))
    }), { timeout: 120_000 })

  it("as a process: the line on stderr, nothing on stdout, and the exit code", async () => {
    const dir = mkdtempSync(join(tmpdir(), "autotrader-inputs-"))
    try {
      await Effect.runPromise(Effect.scoped(storeTicks(dir, walkTicks(300, T0))))
      const [fee, symbols] = await Promise.all([replay([dir, "--fee", "-1"]), replay([dir, "--symbols", "NOPEUSDT"])])
      assert.strictEqual(fee.code, 2, fee.stderr)
      assert.deepStrictEqual(errorLines(fee.stderr), ["autotrader replay: --fee -1: must be 0 or more"])
      assert.strictEqual(fee.stdout, "")
      assert.strictEqual(symbols.code, 2, symbols.stderr)
      assert.deepStrictEqual(errorLines(symbols.stderr), [`autotrader replay: --symbols: NOPEUSDT not in ${dir} (present: BTCUSDT, ETHUSDT)`])
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }, 180_000)
})

describe("replay's DuckDB", () => {
  it.effect("the input checks and the merge read through ONE instance, closed when the backtest ends", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir("autotrader-onedb-")
      yield* storeTicks(dir, walkTicks(600, T0))
      const created: Array<DuckDBInstance> = []
      const closed = new Set<DuckDBInstance>()
      const create = DuckDBInstance.create.bind(DuckDBInstance)
      const spyCreate = vi.spyOn(DuckDBInstance, "create").mockImplementation(async (...args) => {
        const instance = await create(...args)
        created.push(instance)
        return instance
      })
      const closeSync = DuckDBInstance.prototype.closeSync
      const spyClose = vi.spyOn(DuckDBInstance.prototype, "closeSync").mockImplementation(function(this: DuckDBInstance) {
        closed.add(this)
        closeSync.call(this)
      })
      const outcome = yield* runBacktest(base(dir)).pipe(Effect.ensuring(Effect.sync(() => {
        spyCreate.mockRestore()
        spyClose.mockRestore()
      })))
      assert.strictEqual(outcome.ticks, 600)
      assert.strictEqual(created.length, 1)
      assert.isTrue(closed.has(created[0]))
    }))
})
