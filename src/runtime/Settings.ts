/** Helpers to read settings from the environment with their allowed range stated once. */
import { type Config, Effect } from "effect"
import { ConfigError } from "../domain/Errors.ts"

/**
 * A numeric setting checked against its allowed range: outside it, a ConfigError whose one line names the variable,
 * what is allowed and what was given.
 */
export const inRange = (
  name: string,
  config: Config.Config<number>,
  allowed: { readonly min?: number; readonly max?: number; readonly minExclusive?: number; readonly text: string }
): Effect.Effect<number, ConfigError | Config.ConfigError> =>
  Effect.gen(function*() {
    const n = yield* config
    const ok = Number.isFinite(n) &&
      (allowed.min === undefined || n >= allowed.min) &&
      (allowed.max === undefined || n <= allowed.max) &&
      (allowed.minExclusive === undefined || n > allowed.minExclusive)
    if (!ok) return yield* new ConfigError({ message: `${name} must be ${allowed.text} (got ${n})` })
    return n
  })

