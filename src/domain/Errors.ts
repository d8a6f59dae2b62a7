/** Tagged errors shared across stages. Each one has a decision where it is handled (retry, dead-letter, stop). */
import { Schema } from "effect"

/** The transport failed (broker unreachable, topic missing). Decision: retry on a Schedule; readiness goes down. */
export class BusError extends Schema.TaggedError<BusError>()("BusError", {
  operation: Schema.String,
  topic: Schema.String,
  message: Schema.String
}) {}

/** A frame or message did not match its schema. Decision: count, log with the raw input, dead-letter, go on. */
export class DecodeError extends Schema.TaggedError<DecodeError>()("DecodeError", {
  source: Schema.String,
  raw: Schema.String,
  message: Schema.String
}) {}

/** Configuration is invalid. Decision: stop loudly at start-up. */
export class ConfigError extends Schema.TaggedError<ConfigError>()("ConfigError", {
  message: Schema.String
}) {}
