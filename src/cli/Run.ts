/**
 * `autotrader run`: every stage of the registry in one process. Without EXCHANGE_WS_URL / EXCHANGE_REST_URL it
 * starts the embedded simulated exchange on loopback; with them it trades against that exchange (Binance, its
 * testnet, …). `BUS=kafka` runs the same stages over Kafka instead of the in-memory bus.
 */
import { type Duration, Effect, type Option } from "effect"
import { launch, loadRuntimeConfig } from "../runtime/Runtime.ts"

export const run = (forDuration: Option.Option<Duration.Duration>) =>
  Effect.gen(function*() {
    const config = yield* loadRuntimeConfig({ mode: "run" })
    if (!config.stages.some((s) => s.definition.name === "notify")) {
      yield* Effect.logInfo("Telegram notifier off: TELEGRAM_BOT_TOKEN is not set")
    }
    yield* launch(config, forDuration)
  })
