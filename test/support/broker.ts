/**
 * A Kafka broker of a test's own (never the shared one on 19092): started and stopped with scripts/kafka.sh on a
 * free port pair, its data in a directory the test owns.
 */
import { spawn } from "node:child_process"
import { createServer } from "node:net"

/** A free port P with P+1 free too (the broker's controller listens there). */
export const freePortPair = async (): Promise<number> => {
  const listen = (port: number) =>
    new Promise<number | undefined>((resolve) => {
      const server = createServer()
      server.once("error", () => resolve(undefined))
      server.listen(port, "127.0.0.1", () => {
        const p = (server.address() as { port: number }).port
        server.close(() => resolve(p))
      })
    })
  for (let i = 0; i < 20; i++) {
    const p = await listen(0)
    if (p !== undefined && p < 65000 && (await listen(p + 1)) !== undefined) return p
  }
  throw new Error("no free port pair")
}

export const kafka = (command: "start" | "stop", port: number, dataDir: string) =>
  new Promise<void>((resolve, reject) => {
    const child = spawn("bash", ["scripts/kafka.sh", command], {
      env: { ...process.env, KAFKA_PORT: String(port), KAFKA_DATA_DIR: dataDir, KAFKA_HEAP: "384m" },
      stdio: ["ignore", "ignore", "pipe"]
    })
    let stderr = ""
    child.stderr!.on("data", (d: Buffer) => (stderr += d))
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`kafka.sh ${command} failed (${code}): ${stderr}`))))
  })
