/**
 * `npm test` needs a Kafka broker for the Kafka tests. If none is running (scripts/kafka.sh status), start one for
 * the run and stop it afterwards; a broker that was already running (CI, a developer's) is left alone.
 */
import { spawnSync } from "node:child_process"

const kafka = (command: "status" | "start" | "stop") =>
  spawnSync("bash", ["scripts/kafka.sh", command], { stdio: command === "status" ? "ignore" : "inherit" }).status

export default function setup(): (() => void) | undefined {
  if (kafka("status") === 0) return undefined
  if (kafka("start") !== 0) throw new Error("the Kafka tests need a broker and scripts/kafka.sh start failed (Java 17 and Maven are required)")
  return () => {
    kafka("stop")
  }
}
