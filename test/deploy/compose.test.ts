/**
 * No Docker engine runs here, so the deployment files are validated statically: every container runs a real
 * `autotrader` subcommand, every variable they set is one the code reads, Kafka runs in KRaft mode, and the
 * image is built as documented.
 */
import { describe, expect, it } from "@effect/vitest"
import { Yaml } from "effect/encoding"
import { execFileSync } from "node:child_process"
import { readdirSync, readFileSync, statSync } from "node:fs"
import { join } from "node:path"
import { SERVICE_STAGES } from "../../src/cli/Service.ts"
import { SETTINGS } from "../../src/cli/Settings.ts"

const compose = Yaml.parse(readFileSync("docker-compose.yml", "utf8")) as {
  services: Record<string, { image?: string; build?: unknown; command?: Array<string>; environment?: Record<string, unknown>; profiles?: Array<string> }>
}
const ours = Object.entries(compose.services).filter(([, s]) => s.build !== undefined || s.image?.startsWith("autotrader") === true)

const sources = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? sources(path) : path.endsWith(".ts") ? [path] : []
  })

/**
 * Every env var name the code reads: through Config (`Config.String("NAME")`, `Config.Literals([...], "NAME")`, …)
 * or the start-up settings table (src/cli/Settings.ts, which test/cli/settings.test.ts keeps complete).
 */
const readByConfig = new Set([
  ...[...sources("src"), ...sources("layers")].flatMap((file) =>
    [...readFileSync(file, "utf8").matchAll(/Config\.\w+\(\s*(?:\[[^\]]*\]\s*,\s*|[A-Za-z.]+\s*,\s*)?"([A-Z][A-Z0-9_]*)"/g)].map((m) => m[1])
  ),
  ...SETTINGS.map((s) => s.name)
])

const envExample = readFileSync(".env.example", "utf8")
  .split("\n")
  .filter((l) => /^[A-Z][A-Z0-9_]*=/.test(l))
  .map((l) => l.slice(0, l.indexOf("=")))

const cliHelp = execFileSync(process.execPath, ["bin/autotrader.js", "--help"], { encoding: "utf8" })

describe("docker compose and Dockerfile", () => {
  it("the config scan finds the variables the code is known to read", () => {
    for (const name of ["SYMBOLS", "EXCHANGE_WS_URL", "EXCHANGE_API_SECRET", "BUS", "KAFKA_BROKERS", "ORDER_QTY", "HTTP_PORT"]) {
      expect(readByConfig.has(name), name).toBe(true)
    }
  })

  it("every autotrader container runs a real subcommand", () => {
    expect(ours.length).toBeGreaterThanOrEqual(7)
    for (const [name, service] of ours) {
      const [sub, arg] = service.command ?? ["run"]
      expect(cliHelp, `${name}: "${sub}" is not an autotrader subcommand`).toMatch(new RegExp(`^\\s+${sub}\\b`, "m"))
      if (sub === "service") expect(SERVICE_STAGES as ReadonlyArray<string>, name).toContain(arg)
    }
  })

  it("one container per stage", () => {
    const stages = ours.filter(([, s]) => s.command?.[0] === "service").map(([, s]) => s.command![1]).sort()
    expect(stages).toEqual([...SERVICE_STAGES].sort())
  })

  it("every variable set in compose or .env.example is one the config reads", () => {
    for (const [name, service] of ours) {
      for (const key of Object.keys(service.environment ?? {})) expect(readByConfig.has(key), `${name}: ${key}`).toBe(true)
    }
    expect(envExample.length).toBeGreaterThan(10)
    for (const key of envExample) expect(readByConfig.has(key), `.env.example: ${key}`).toBe(true)
  })

  it("Kafka runs in KRaft mode, no ZooKeeper; kafka-ui only behind a profile", () => {
    const kafka = compose.services.kafka
    expect(String(kafka.environment?.KAFKA_PROCESS_ROLES)).toMatch(/controller/)
    expect(Object.keys(compose.services).some((n) => /zookeeper/i.test(n))).toBe(false)
    expect(compose.services["kafka-ui"].profiles).toEqual(["ui"])
    for (const [, service] of ours) {
      if (service.command?.[0] === "service") expect(service.environment?.BUS ?? "kafka").toBe("kafka")
    }
  })

  it("the Dockerfile builds a non-root Node 24 image with production dependencies and a /health check", () => {
    const docker = readFileSync("Dockerfile", "utf8")
    expect(docker).toMatch(/^FROM node:24-slim AS deps/m)
    expect(docker).toMatch(/npm ci --omit=dev/)
    expect(docker).toMatch(/^USER node$/m)
    expect(docker).toMatch(/HEALTHCHECK[\s\S]*\/health/)
    expect(docker).toMatch(/ENTRYPOINT \["node", "bin\/autotrader.js"\]/)
    for (const dir of ["bin", "src", "layers"]) expect(docker).toMatch(new RegExp(`COPY ${dir} `))
  })
})
