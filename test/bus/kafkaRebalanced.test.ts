/**
 * KafkaBus's classifier of commit refusals that mean "the group moved on", on the error shapes kafkajs 2.2.4 really
 * produces. No broker: the errors are built by kafkajs' own code (its protocol error table and the retrier that
 * `consumer.commitOffsets` runs in, node_modules/kafkajs/src/consumer/runner.js `commitOffsets`).
 */
import { assert, describe, it } from "@effect/vitest"
import { createRequire } from "node:module"
import { rebalanced } from "../../layers/KafkaBus.ts"

const require = createRequire(import.meta.url)
const { createErrorFromCode } = require("kafkajs/src/protocol/error.js") as { createErrorFromCode: (code: number) => Error & { type: string } }
const createRetry = require("kafkajs/src/retry/index.js") as (
  options: Record<string, unknown>
) => (fn: (bail: (e: unknown) => void) => Promise<unknown>) => Promise<unknown>
const { KafkaJSError, KafkaJSNonRetriableError } = require("kafkajs/src/errors.js") as {
  KafkaJSError: new(e: unknown, options?: { cause?: unknown }) => Error
  KafkaJSNonRetriableError: new(e: unknown, options?: { cause?: unknown }) => Error
}

const codes = { ILLEGAL_GENERATION: 22, UNKNOWN_MEMBER_ID: 25, REBALANCE_IN_PROGRESS: 27 } as const

/** What `consumer.commitOffsets` rejects with when the broker refuses the OffsetCommit with `code`. */
const refusedCommit = (code: number): Promise<unknown> =>
  createRetry({ retries: 2, initialRetryTime: 1 })(async () => {
    throw createErrorFromCode(code)
  }).then(
    () => assert.fail("the commit should have been refused"),
    (error: unknown) => error
  )

describe("KafkaBus rebalanced (commit refused because the group moved on)", () => {
  for (const [type, code] of Object.entries(codes)) {
    it(`${type}: as the commit path rejects (KafkaJSNonRetriableError, the protocol error in cause)`, async () => {
      const error = await refusedCommit(code)
      assert.strictEqual((error as Error).name, "KafkaJSNonRetriableError", "the shape this test is about")
      assert.strictEqual(((error as { cause?: { type?: string } }).cause)?.type, type)
      assert.isTrue(rebalanced(error))
    })
    it(`${type}: bare, in cause, in originalError, two wrappers deep`, () => {
      const protocol = createErrorFromCode(code)
      assert.strictEqual(protocol.name, "KafkaJSProtocolError")
      assert.isTrue(rebalanced(protocol))
      assert.isTrue(rebalanced(new KafkaJSNonRetriableError(protocol, { cause: protocol })))
      assert.isTrue(rebalanced(Object.assign(new Error(protocol.message), { originalError: protocol })))
      assert.isTrue(rebalanced(new KafkaJSError(new KafkaJSNonRetriableError(protocol, { cause: protocol }), { cause: new KafkaJSNonRetriableError(protocol, { cause: protocol }) })))
    })
  }

  it("other refusals are not a rebalance: they still fail the commit", async () => {
    // OFFSET_METADATA_TOO_LARGE (12), GROUP_AUTHORIZATION_FAILED (30), a plain error, a cycle
    assert.isFalse(rebalanced(await refusedCommit(12)))
    assert.isFalse(rebalanced(await refusedCommit(30)))
    assert.isFalse(rebalanced(new Error("Specified group generation id is not valid")))
    assert.isFalse(rebalanced(undefined))
    const cyclic: { cause?: unknown } = {}
    cyclic.cause = cyclic
    assert.isFalse(rebalanced(cyclic))
  })
})
