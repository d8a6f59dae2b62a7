/** The `autotrader` command line. */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import { Cause, Effect, Exit, Option, Runtime } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { MARKET_FAULTS_HELP, parseMarketFaults } from "../sim/MarketData.ts"
import * as SimExchangeServer from "../sim/SimExchangeServer.ts"
import { LoggingLive, parseDuration, symbolsConfig } from "./AppConfig.ts"
import { exitOnConfigError } from "../runtime/Fatal.ts"
import { replayCommand } from "./ReplayCommand.ts"
import { run } from "./Run.ts"
import { SERVICE_STAGES, service } from "./Service.ts"

const runCmd = Command.make(
  "run",
  {
    for: Flag.String("for").pipe(
      Flag.withDescription("Stop by itself after this long (e.g. 20s, 90s, 2m), draining first"),
      Flag.optional
    )
  },
  Effect.fn(function*(flags) {
    const duration = Option.isSome(flags.for) ? Option.some(yield* parseDuration(flags.for.value)) : Option.none()
    yield* run(duration)
  })
).pipe(Command.withDescription("Run every stage in one process (embedded simulated exchange unless EXCHANGE_* URLs are set)"))

const simCmd = Command.make(
  "sim-exchange",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("Port (0: the OS picks)"), Flag.withDefault(8090)),
    seed: Flag.Int("seed").pipe(Flag.withDefault(42)),
    rate: Flag.Finite("rate").pipe(Flag.withDescription("Trades per second per symbol"), Flag.withDefault(20)),
    host: Flag.String("host").pipe(Flag.withDefault("127.0.0.1")),
    faults: Flag.String("faults").pipe(Flag.withDescription(`Market-data faults, ${MARKET_FAULTS_HELP}`), Flag.withDefault(""))
  },
  Effect.fn(function*(flags) {
    const symbols = yield* symbolsConfig
    const parsed = parseMarketFaults(flags.faults)
    if ("error" in parsed) return yield* Effect.fail(new Error(parsed.error))
    const sim = yield* SimExchangeServer.make({
      symbols,
      port: flags.port,
      seed: flags.seed,
      ticksPerSecond: flags.rate,
      host: flags.host,
      marketFaults: parsed.faults
    })
    yield* Effect.logInfo("simulated exchange listening", { ws: sim.wsBaseUrl, rest: sim.restBaseUrl, symbols, seed: flags.seed, faults: parsed.faults })
    return yield* Effect.never
  }, Effect.scoped)
).pipe(Command.withDescription("Serve the simulated Binance-protocol exchange (WebSocket trade streams + signed REST)"))

const serviceCmd = Command.make(
  "service",
  { stage: Argument.Literals("stage", SERVICE_STAGES) },
  ({ stage }) => service(stage)
).pipe(Command.withDescription(`Run one stage as its own process over Kafka: ${SERVICE_STAGES.join(", ")}`))

const root = Command.make("autotrader").pipe(
  Command.withDescription("Streaming trading engine: ingest → signals → risk → orders"),
  Command.withSubcommands([runCmd, serviceCmd, simCmd, replayCommand])
)

root.pipe(
  Command.run({ version: "0.1.0" }),
  exitOnConfigError,
  Effect.provide([NodeServices.layer, LoggingLive]),
  NodeRuntime.runMain({
    // a signal-driven stop (Ctrl-C, SIGTERM) that drained cleanly is a success
    // a failure carrying an exit code (e.g. replay's bad inputs: 2, 65, 66, 73) exits with it; others with 1
    teardown: (exit, onExit) =>
      onExit(Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : Runtime.getErrorExitCode(Cause.squash(exit.cause)))
  })
)
