/**
 * Fatal start-up errors: a bad setting ends the process with exit 1 and one line naming the variable and what is
 * allowed (no stack, no restart loop). Both our ConfigError and effect's Config.ConfigError carry the tag "ConfigError".
 */
import { Effect, Runtime } from "effect"

/** Already logged on its one line: runMain must not print it again; the exit code is 1. */
export class StartupAborted extends Error {
  override readonly [Runtime.errorReported] = false
}

const isConfigError = (e: unknown): e is { readonly _tag: "ConfigError"; readonly message: string } =>
  typeof e === "object" && e !== null && (e as { _tag?: unknown })._tag === "ConfigError"

/** Collapses a multi-line message to one line (effect's Config errors list the path on separate lines). */
const oneLine = (text: string) => text.split("\n").map((l) => l.trim()).filter((l) => l.length > 0).join("; ")

export const exitOnConfigError = <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E | StartupAborted, R> =>
  self.pipe(
    Effect.catch((e: E): Effect.Effect<never, E | StartupAborted> =>
      isConfigError(e)
        ? Effect.logError(`invalid configuration: ${oneLine(e.message)}`).pipe(
          Effect.andThen(Effect.fail(new StartupAborted(e.message)))
        )
        : Effect.fail(e)
    )
  )
