/** The `autotrader` command line (bin/autotrader.js starts `replay` from ReplayMain.ts, which loads only what replay needs). */
import { Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { MARKET_FAULTS_HELP, parseMarketFaults } from "../sim/MarketData.ts"
import * as SimExchangeServer from "../sim/SimExchangeServer.ts"
import { parseDuration, symbolsConfig } from "./AppConfig.ts"
import { launch, ROOT_DESCRIPTION } from "./Launch.ts"
import { checkCommand, datasetCommand, trainCommand } from "./MlCommands.ts"
import { replayCommand } from "./ReplayCommand.ts"
import { run } from "./Run.ts"
import { SERVICE_STAGES, service } from "./Service.ts"
import { envHelp } from "./Settings.ts"

const runCmd = Command.make(
  "run",
  {
    for: Flag.String("for").pipe(
      Flag.withDescription("Stop by itself after this long (e.g. 20s, 90s, 2m), draining first; default: run until Ctrl-C"),
      Flag.optional
    )
  },
  Effect.fn(function*(flags) {
    const duration = Option.isSome(flags.for) ? Option.some(yield* parseDuration(flags.for.value)) : Option.none()
    yield* run(duration)
  })
).pipe(Command.withDescription(`Run every stage in one process (embedded simulated exchange unless EXCHANGE_* URLs are set)\n\n${envHelp("run")}`))

const simCmd = Command.make(
  "sim-exchange",
  {
    port: Flag.Int("port").pipe(Flag.withDescription("Port (0: the OS picks; default 8090)"), Flag.withDefault(8090)),
    seed: Flag.Int("seed").pipe(Flag.withDescription("Random seed of the price walk (default 42)"), Flag.withDefault(42)),
    rate: Flag.Finite("rate").pipe(Flag.withDescription("Trades per second per symbol (default 20)"), Flag.withDefault(20)),
    host: Flag.String("host").pipe(Flag.withDescription("Address to listen on (default 127.0.0.1)"), Flag.withDefault("127.0.0.1")),
    faults: Flag.String("faults").pipe(Flag.withDescription(`Market-data faults, ${MARKET_FAULTS_HELP}; default: none`), Flag.withDefault(""))
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
).pipe(Command.withDescription(`Serve the simulated Binance-protocol exchange (WebSocket trade streams + signed REST)\n\n${envHelp("sim-exchange")}`))

const serviceCmd = Command.make(
  "service",
  { stage: Argument.Literals("stage", SERVICE_STAGES).pipe(Argument.withDescription(`The stage to run: ${SERVICE_STAGES.join(" | ")}`)) },
  ({ stage }) => service(stage)
).pipe(Command.withDescription(`Run one stage as its own process over Kafka (BUS=kafka by default), logs in JSON\n\n${envHelp("service")}`))

const root = Command.make("autotrader").pipe(
  Command.withDescription(ROOT_DESCRIPTION),
  Command.withSubcommands([runCmd, serviceCmd, simCmd, replayCommand, datasetCommand, trainCommand, checkCommand])
)

await launch(root)
