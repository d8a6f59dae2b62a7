/** Test harness: the notifier against the Bot API stand-in, over the in-memory bus, with receipts and captured logs. */
import { Effect, Layer, Logger, Redacted, Stream } from "effect"
import type { Scope } from "effect"
import { Bus } from "../../src/bus/Bus.ts"
import type { Topic } from "../../src/domain/Topics.ts"
import { type NotifierEvent, type NotifierOptions, runNotifier } from "../../src/notify/Notifier.ts"
import { Telegram } from "../../src/notify/Telegram.ts"
import { Recorder } from "./BotApiStandIn.ts"

export interface LogLine {
  readonly level: string
  readonly message: string
  readonly annotations: Record<string, unknown>
  /** The whole entry as JSON (to search for leaked secrets). */
  readonly raw: string
}

/** A logger layer recording every log line, and the recorder to wait on. */
export const captureLogs = () => {
  const logs = new Recorder<LogLine>()
  const logger = Logger.map(Logger.formatStructured, (entry) => {
    // Effect.log("text", { fields }) arrives as ["text", { fields }]
    const message = Array.isArray(entry.message) ? String(entry.message[0]) : String(entry.message)
    logs.push({ level: entry.level, message, annotations: entry.annotations, raw: JSON.stringify(entry) + (entry.cause ?? "") })
  })
  return { logs, layer: Logger.layer([logger]) }
}

/** Starts the notifier (in the test's scope) against `apiRoot`; returns its receipts. */
export const startNotifier = (
  apiRoot: string,
  token: string,
  options: Omit<NotifierOptions, "onEvent">
): Effect.Effect<Recorder<NotifierEvent>, never, Bus | Scope.Scope> =>
  Effect.gen(function*() {
    const events = new Recorder<NotifierEvent>()
    yield* runNotifier({ ...options, onEvent: (e) => Effect.sync(() => events.push(e)) }).pipe(
      Effect.provide(Telegram.layer({ token: Redacted.make(token), apiRoot, timeoutSeconds: 10 })),
      Effect.forkScoped
    )
    return events
  })

/**
 * Everything published on `topic`, read by a committing group of its own (so a small bus that trims its log
 * cannot drop what the test waits for). The group joins asynchronously: prove it is there before a flood.
 */
export const collect = <A>(topic: Topic<A>): Effect.Effect<Recorder<A>, never, Bus | Scope.Scope> =>
  Effect.gen(function*() {
    const bus = yield* Bus
    const out = new Recorder<A>()
    yield* bus.subscribe(topic, { group: `test-${topic.name}` }).pipe(
      Stream.runForEach((d) => Effect.sync(() => out.push(d.value)).pipe(Effect.andThen(d.commit))),
      Effect.ignore,
      Effect.forkScoped
    )
    return out
  })

export const withLogs = <A, E, R>(layer: Layer.Layer<never>, self: Effect.Effect<A, E, R>) => Effect.provide(self, layer)
