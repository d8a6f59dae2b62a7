/** The `autotrader` command line. */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect, Exit, Option, Runtime } from "effect"
import { Argument, CliOutput, Command, Flag } from "effect/cli"
import { MARKET_FAULTS_HELP, parseMarketFaults } from "../sim/MarketData.ts"
import * as SimExchangeServer from "../sim/SimExchangeServer.ts"
import { logFormatOf, loggingLayer, parseDuration, symbolsConfig } from "./AppConfig.ts"
import { prepareArgs } from "./Args.ts"
import { exitIfHeldOpen } from "../runtime/Fatal.ts"
import { checkCommand, datasetCommand, trainCommand } from "./MlCommands.ts"
import { replayCommand } from "./ReplayCommand.ts"
import { run } from "./Run.ts"
import { SERVICE_STAGES, service } from "./Service.ts"
import { envHelp, validateEnv } from "./Settings.ts"
import { probePort } from "./StartupChecks.ts"

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
  Command.withDescription("Streaming trading engine: ingest → signals → risk → orders"),
  Command.withSubcommands([runCmd, serviceCmd, simCmd, replayCommand, datasetCommand, trainCommand, checkCommand])
)

/** Parse errors as one line each, pointing at the command's help, instead of the whole help page. */
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Effect.sync(() => {
        const command = event.commandPath.join(" ")
        const first = event.errors[0]
        process.stderr.write(`${command}: ${first === undefined ? "invalid invocation" : first.message} (see ${command} --help)\n`)
      })
      : CliOutput.defaultPresenter.present(event)
})

const args = prepareArgs(process.argv.slice(2))
const wantsHelp = args.includes("--help") || args.includes("-h") || args.includes("--version") || args.includes("-v")
const problems = wantsHelp ? [] : validateEnv(process.env)
if (problems.length > 0) {
  // nothing has started: one line per problem, exit 1
  process.stderr.write(`${problems.join("\n")}\n`)
  process.exit(1)
}

if (!wantsHelp && (args[0] === "run" || args[0] === "service")) {
  const portProblem = await probePort(Number(process.env.HTTP_PORT ?? 8080))
  if (portProblem !== undefined) {
    process.stderr.write(`${portProblem}\n`)
    process.exit(1)
  }
}

/** Ours (src/domain/Errors.ts) and effect's Config.ConfigError both carry this tag. */
const isConfigError = (e: unknown): e is { readonly _tag: "ConfigError"; readonly message: string } =>
  typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "ConfigError"

let reported = false
const format = logFormatOf(process.env, process.stdout.isTTY === true, args[0])

Command.runWith(root, { version: "0.1.0" })(args).pipe(
  // a configuration problem found while starting is one line, not a stack trace
  Effect.catch((e: unknown) =>
    isConfigError(e)
      ? Effect.sync(() => {
        reported = true
        process.stderr.write(`${e.message.split("\n").map((l) => l.trim()).filter((l) => l !== "").join("; ")}\n`)
      })
      : Effect.fail(e)
  ),
  Effect.provide([NodeServices.layer, loggingLayer(format), presenter]),
  NodeRuntime.runMain({
    // a signal-driven stop (Ctrl-C, SIGTERM) that drained cleanly is a success
    // a failure carrying an exit code (e.g. replay's bad inputs: 2, 65, 66, 73) exits with it; others with 1
    teardown: (exit, onExit) => {
      const code = reported ? 1 : Exit.isSuccess(exit) || Cause.hasInterruptsOnly(exit.cause) ? 0 : Runtime.getErrorExitCode(Cause.squash(exit.cause))
      onExit(code)
      exitIfHeldOpen(code)
    }
  })
)
