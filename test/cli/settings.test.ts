/**
 * Configuration and command line as an operator meets them: every bad value stops the process before anything
 * starts, with one line naming the variable, the value and what is allowed, exit 1; help is reachable and
 * complete; the settings table covers every variable the code reads.
 */
import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { createServer, type Server } from "node:net"
import { join } from "node:path"
import { prepareArgs } from "../../src/cli/Args.ts"
import { closeMatches, SETTINGS, validateEnv } from "../../src/cli/Settings.ts"
import { startCli } from "../support/cli.ts"

/** Runs the CLI to its exit; `lines` is its whole output, split. */
const runToExit = async (args: ReadonlyArray<string>, env: Record<string, string | undefined> = {}) => {
  const run = startCli(args, env)
  const code = await run.exited
  return { code, output: run.output(), lines: run.output().split("\n").filter((l) => l.trim() !== "") }
}

/** Signs that something started: the simulator, the HTTP server, the pipeline. */
const STARTED = /embedded simulated exchange started|Listening on|autotrader running|market data/

describe("bad configuration stops the process before anything starts", () => {
  const cases: ReadonlyArray<readonly [Record<string, string>, RegExp]> = [
    [{ ORDER_QTY: "-1" }, /^ORDER_QTY="-1" is not allowed: expected a number greater than 0$/],
    [{ RISK_MAX_TRADES_PER_MINUTE: "-3" }, /^RISK_MAX_TRADES_PER_MINUTE="-3" is not allowed: expected an integer from 1 to \d+$/],
    [{ HTTP_PORT: "99999" }, /^HTTP_PORT="99999" is not allowed: expected an integer from 0 to 65535$/],
    [{ SYMBOLS: "" }, /^SYMBOLS="" is not allowed: expected a non-empty comma-separated list/],
    [{ LOG_LEVEL: "loud" }, /^LOG_LEVEL="loud" is not allowed: expected one of Trace, Debug, Info, Warn, Error/],
    [{ BUS: "kafka", KAFKA_CLIENT: "librdkafka" }, /^KAFKA_CLIENT="librdkafka" is not allowed: expected one of kafkajs, platformatic$/],
    [{ EXCHANGE_REST_URL: "ftp://x", EXCHANGE_WS_URL: "ws://x:1" }, /^EXCHANGE_REST_URL="ftp:\/\/x" is not allowed: expected a http:\/\/ or https:\/\/ URL$/],
    [{ SYMBOLS: "NOTASYMBOL" }, /^SYMBOLS: NOTASYMBOL is not a symbol on the embedded simulated exchange \(close matches: .*BTCUSDT/]
  ]
  it("each value: one line naming it, exit 1, nothing started", async () => {
    // concurrently: each case is a process start, and they do not share anything
    const results = await Promise.all(cases.map(([env]) => runToExit(["run", "--for", "5s"], env)))
    results.forEach(({ code, lines, output }, i) => {
      const [env, expected] = cases[i]
      const label = Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")
      expect(code, label).toBe(1)
      expect(lines, `${label}: ${output}`).toHaveLength(1)
      expect(lines[0], label).toMatch(expected)
      expect(output, label).not.toMatch(STARTED)
    })
  }, 120_000)

  it("several problems: one line each, all reported at once", async () => {
    const { code, lines } = await runToExit(["run"], { ORDER_QTY: "abc", HTTP_PORT: "-1", STORE_COMPRESSION: "lz4" })
    expect(code).toBe(1)
    expect(lines).toHaveLength(3)
    expect(lines.map((l) => l.split("=")[0]).sort()).toEqual(["HTTP_PORT", "ORDER_QTY", "STORE_COMPRESSION"])
  }, 120_000)

  it("a port in use names HTTP_PORT, exit 1, nothing starts", async () => {
    const server: Server = createServer()
    const port = await new Promise<number>((resolve) => server.listen(0, "0.0.0.0", () => resolve((server.address() as { port: number }).port)))
    try {
      const { code, lines, output } = await runToExit(["run", "--for", "5s"], { HTTP_PORT: String(port) })
      expect(code).toBe(1)
      expect(lines).toEqual([`HTTP_PORT=${port} cannot be used: another process is listening on it (EADDRINUSE); choose a free port, or 0 to let the OS pick`])
      expect(output).not.toMatch(STARTED)
    } finally {
      server.close()
    }
  }, 120_000)

  it("an unreachable exchange names the URL and the cause (ECONNREFUSED), exit 1", async () => {
    const server: Server = createServer()
    const port = await new Promise<number>((resolve) => server.listen(0, "127.0.0.1", () => resolve((server.address() as { port: number }).port)))
    await new Promise((r) => server.close(r)) // a port nothing listens on
    const { code, output } = await runToExit(["run", "--for", "5s"], { EXCHANGE_WS_URL: `ws://127.0.0.1:${port}`, EXCHANGE_REST_URL: `http://127.0.0.1:${port}` })
    expect(code).toBe(1)
    expect(output).toContain(`cannot check SYMBOLS against the exchange: GET http://127.0.0.1:${port}/api/v3/exchangeInfo: connect ECONNREFUSED`)
    expect(output).not.toMatch(/autotrader running|market data/)
  }, 120_000)

  it("LOG_LEVEL accepts any case (info, WARN) and the run starts", async () => {
    for (const level of ["info", "WARN"]) {
      const { code, output } = await runToExit(["run", "--for", "2s"], { LOG_LEVEL: level, LOG_FORMAT: "json" })
      expect(code, output).toBe(0)
      if (level === "info") expect(output).toContain("\"message\":\"autotrader running\"")
      else expect(output).not.toContain("\"level\":\"INFO\"")
    }
  }, 120_000)
})

describe("command line", () => {
  it("bare autotrader and `autotrader help` print the help, exit 0", async () => {
    for (const { code, output } of await Promise.all([runToExit([]), runToExit(["help"])])) {
      expect(code).toBe(0)
      expect(output).toMatch(/USAGE\s+autotrader <subcommand>/)
      for (const sub of ["run", "service", "sim-exchange", "replay"]) expect(output).toMatch(new RegExp(`^\\s+${sub}\\b`, "m"))
    }
  }, 120_000)

  it("each subcommand's help lists its choices, defaults and environment variables", async () => {
    const [service, run, sim] = await Promise.all([runToExit(["help", "service"]), runToExit(["run", "--help"]), runToExit(["sim-exchange", "--help"])])
    expect(service.code).toBe(0)
    expect(service.output).toContain("ingest | signals | risk | orders | notify | store")
    expect(service.output).toMatch(/ENVIRONMENT/)
    expect(service.output).toMatch(/^\s+BUS\s+.*one of memory, kafka.*default: memory \(service: kafka\)/m)
    expect(run.output).toMatch(/--for/)
    expect(run.output).toMatch(/^\s+HTTP_PORT\s+.*an integer from 0 to 65535; default: 8080/m)
    expect(run.output).toMatch(/^\s+LOG_LEVEL\s+.*any case/m)
    expect(sim.output).toMatch(/--rate.*default 20/)
  }, 120_000)

  it("--for=-5s and --for -5s: one line naming the flag and what is allowed, exit 1", async () => {
    const all = [["run", "--for=-5s"], ["run", "--for", "-5s"], ["run", "--for", "soon"]]
    for (const { code, lines } of await Promise.all(all.map((args) => runToExit(args)))) {
      expect(code).toBe(1)
      expect(lines).toHaveLength(1)
      expect(lines[0]).toMatch(/^--for "(-5s|soon)" is not allowed: expected a positive duration like 500ms, 20s, 2m, 1h$/)
    }
  }, 120_000)

  it("a parse error is one line pointing at the command's help", async () => {
    const { code, lines } = await runToExit(["service", "bogus"])
    expect(code).toBe(1)
    expect(lines).toEqual([expect.stringMatching(/^autotrader service: Invalid value for argument <stage>: "bogus".*\(see autotrader service --help\)$/)])
  }, 120_000)

  it("prepareArgs: help forms and negative-looking values", () => {
    expect(prepareArgs([])).toEqual(["--help"])
    expect(prepareArgs(["help", "run"])).toEqual(["run", "--help"])
    expect(prepareArgs(["run", "--for", "-5s"])).toEqual(["run", "--for=-5s"])
    expect(prepareArgs(["run", "--for", "5s"])).toEqual(["run", "--for", "5s"])
  })
})

describe("the settings table", () => {
  const sources = (dir: string): Array<string> =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name)
      return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : []
    })
  const readByCode = new Set(
    [...sources("src"), ...sources("layers")].flatMap((file) =>
      [...readFileSync(file, "utf8").matchAll(/Config\.(?!withDefault)\w+\(\s*(?:\[[^\]]*\]\s*,\s*|[A-Za-z.]+\s*,\s*)?"([A-Z][A-Z0-9_]*)"/g)].map((m) => m[1])
    )
  )
  const names = new Set(SETTINGS.map((s) => s.name))

  it("lists every variable the code reads (a new variable must say what it allows)", () => {
    expect(readByCode.size).toBeGreaterThan(20)
    expect([...readByCode].filter((n) => !names.has(n))).toEqual([])
  })

  it(".env.example documents exactly the table's variables (optional ones commented out), each with a valid example value", () => {
    const example = readFileSync(".env.example", "utf8").split("\n").filter((l) => /^#?[A-Z][A-Z0-9_]*=/.test(l)).map((l) => l.replace(/^#/, ""))
    const env = Object.fromEntries(example.map((l) => [l.slice(0, l.indexOf("=")), l.slice(l.indexOf("=") + 1)]))
    expect(Object.keys(env).sort()).toEqual([...names].sort())
    const { SYMBOLS, ...rest } = env
    expect(validateEnv({ ...rest, SYMBOLS })).toEqual([])
  })

  it("defaults pass their own rules (the table cannot contradict itself)", () => {
    const defaults = Object.fromEntries(
      SETTINGS.filter((s) => s.default !== undefined && !/[( ]/.test(s.default) && s.default !== "").map((s) => [s.name, s.default!])
    )
    expect(validateEnv(defaults)).toEqual([])
  })

  it("close matches rank near misses first", () => {
    expect(closeMatches("BTCUSD", ["ETHUSDT", "BTCUSDT", "BNBUSDT"])[0]).toBe("BTCUSDT")
    expect(closeMatches("ETHUSTD", ["ETHUSDT", "BTCUSDT", "SOLUSDT"], 1)).toEqual(["ETHUSDT"])
  })
})
