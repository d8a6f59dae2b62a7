/** The MA windows from env, on their own so that `replay` reads them without loading the signals stage and the bus. */
import { Config, Effect } from "effect"
import { ConfigError } from "../domain/Errors.ts"
import { DEFAULT_WINDOWS, type SignalWindows, windowsProblem } from "./SignalWorker.ts"

/** The MA windows from `SIGNAL_FAST` / `SIGNAL_SLOW` (default 10 / 30 trades); the same for live and replay. */
export const signalWindowsConfig = Config.all({
  fast: Config.Int("SIGNAL_FAST").pipe(Config.withDefault(DEFAULT_WINDOWS.fast)),
  slow: Config.Int("SIGNAL_SLOW").pipe(Config.withDefault(DEFAULT_WINDOWS.slow))
}).pipe(
  Effect.flatMap((w: SignalWindows) => {
    const problem = windowsProblem(w)
    return problem === undefined
      ? Effect.succeed(w)
      : Effect.fail(new ConfigError({ message: `SIGNAL_FAST / SIGNAL_SLOW: ${problem}` }))
  })
)
