/**
 * What every `autotrader` entry point does around its commands: arguments normalised, the environment checked,
 * parse errors as one line, logging, exit codes. main.ts launches every command; ReplayMain.ts only `replay`, so a
 * replay process loads neither the live stages nor the simulator (a replay is timed as a whole process).
 */
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Effect, Exit, Runtime } from "effect"
import { CliOutput, Command } from "effect/cli"
import { exitIfHeldOpen } from "../runtime/Fatal.ts"
import { logFormatOf, loggingLayer } from "./AppConfig.ts"
import { prepareArgs } from "./Args.ts"
import { validateEnv } from "./Settings.ts"

export const ROOT_DESCRIPTION = "Streaming trading engine: ingest → signals → risk → orders"

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

/** Ours (src/domain/Errors.ts) and effect's Config.ConfigError both carry this tag. */
const isConfigError = (e: unknown): e is { readonly _tag: "ConfigError"; readonly message: string } =>
  typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "ConfigError"

/** Runs `root` on this process's arguments until it ends, then exits with its code. */
export const launch = async <Name extends string, I, C, E>(root: Command.Command<Name, I, C, E, never>): Promise<void> => {
  const args = prepareArgs(process.argv.slice(2))
  const wantsHelp = args.includes("--help") || args.includes("-h") || args.includes("--version") || args.includes("-v")
  const problems = wantsHelp ? [] : validateEnv(process.env)
  if (problems.length > 0) {
    // nothing has started: one line per problem, exit 1
    process.stderr.write(`${problems.join("\n")}\n`)
    process.exit(1)
  }

  if (!wantsHelp && (args[0] === "run" || args[0] === "service")) {
    const { probePort } = await import("./StartupChecks.ts")
    const portProblem = await probePort(Number(process.env.HTTP_PORT ?? 8080))
    if (portProblem !== undefined) {
      process.stderr.write(`${portProblem}\n`)
      process.exit(1)
    }
  }

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
}
