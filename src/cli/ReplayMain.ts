/**
 * `autotrader replay …` as its own entry point (bin/autotrader.js picks it when the first argument is `replay`): the
 * same command, flags, help, errors and exit codes as through main.ts, without loading the live stages, the bus,
 * the exchange client or the simulator. A replay is timed as a whole process, start-up included.
 */
import { Command } from "effect/cli"
import { launch, ROOT_DESCRIPTION } from "./Launch.ts"
import { replayCommand } from "./ReplayCommand.ts"

await launch(Command.make("autotrader").pipe(Command.withDescription(ROOT_DESCRIPTION), Command.withSubcommands([replayCommand])))
