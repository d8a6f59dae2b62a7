import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Scope } from "effect"
import { type Delivery, makeCommitBehind } from "../../src/bus/Bus.ts"
import { BusError } from "../../src/domain/Errors.ts"

/** Deliveries whose commits are recorded and answered only when the test says so. */
const harness = Effect.gen(function*() {
  const commits: Array<{ partition: number; offset: number; answer: Deferred.Deferred<void, BusError> }> = []
  const delivery = (partition: number, offset: number): Delivery<unknown> => ({
    topic: "t",
    key: "k",
    value: offset,
    partition,
    offset,
    assignment: 1,
    assigned: Effect.succeed(true),
    commit: Effect.suspend(() => {
      const answer = Deferred.makeUnsafe<void, BusError>()
      commits.push({ partition, offset, answer })
      return Deferred.await(answer)
    })
  })
  /** Lets the forked commit fiber run up to its commit. */
  const settle = Effect.repeat(Effect.yieldNow, { times: 20 })
  return { commits, delivery, settle }
})

describe("makeCommitBehind", () => {
  it.effect("a batch never waits for an earlier commit; what is handled meanwhile is committed as its newest delivery per partition", () =>
    Effect.gen(function*() {
      const { commits, delivery, settle } = yield* harness
      const committer = makeCommitBehind()
      yield* committer.commit([delivery(0, 1)])
      yield* settle
      assert.deepStrictEqual(commits.map((c) => [c.partition, c.offset]), [[0, 1]])
      // the first commit is unanswered: the next batches are taken at once (they used to wait for it)
      yield* committer.commit([delivery(0, 2), delivery(1, 7)])
      yield* committer.commit([delivery(0, 3)])
      yield* settle
      assert.strictEqual(commits.length, 1, "one commit in flight at a time")
      Deferred.doneUnsafe(commits[0].answer, Exit.void)
      yield* settle
      assert.deepStrictEqual(commits.slice(1).map((c) => [c.partition, c.offset]).sort(), [[0, 3], [1, 7]])
      const flushed = yield* Effect.forkChild(committer.flush)
      yield* settle
      assert.isUndefined(flushed.pollUnsafe(), "flush waits for the commits in flight")
      for (const c of commits.slice(1)) Deferred.doneUnsafe(c.answer, Exit.void)
      yield* settle
      assert.isTrue(flushed.pollUnsafe() !== undefined && Exit.isSuccess(flushed.pollUnsafe()!))
      // nothing pending, nothing in flight: a new batch starts a new commit
      yield* committer.commit([delivery(2, 9)])
      yield* settle
      assert.deepStrictEqual(commits.slice(3).map((c) => [c.partition, c.offset]), [[2, 9]])
    }))

  it.effect("a failed commit fails the next commit and the flush", () =>
    Effect.gen(function*() {
      const { commits, delivery, settle } = yield* harness
      const committer = makeCommitBehind()
      yield* committer.commit([delivery(0, 1)])
      yield* settle
      Deferred.doneUnsafe(commits[0].answer, Exit.fail(new BusError({ operation: "commit", topic: "t", message: "refused" })))
      yield* settle
      const next = yield* Effect.exit(committer.commit([delivery(0, 2)]))
      assert.isTrue(Exit.isFailure(next))
      assert.isTrue(Exit.isFailure(yield* Effect.exit(committer.flush)))
      assert.strictEqual(commits.length, 1, "nothing after a failed commit is committed")
    }))
  it.effect("a commit that dies (a defect, not a BusError) fails the next commit and the flush too, with the defect", () =>
    Effect.gen(function*() {
      const { commits, delivery, settle } = yield* harness
      const committer = makeCommitBehind()
      yield* committer.commit([delivery(0, 1)])
      yield* settle
      Deferred.doneUnsafe(commits[0].answer, Exit.die(new Error("commit blew up")))
      yield* settle
      // before: the dead loop stayed "active", so this returned at once and nothing was ever committed again, silently
      const next = yield* Effect.exit(committer.commit([delivery(0, 2)]))
      assert.isTrue(Exit.isFailure(next))
      assert.include(String(Exit.isFailure(next) ? next.cause : ""), "commit blew up")
      assert.isTrue(Exit.isFailure(yield* Effect.exit(committer.flush)))
      assert.strictEqual(commits.length, 1, "nothing after a dead commit is committed")
    }))

  it.effect("with a scope, a caller that ends before its commit is answered (an order lane) leaves the commit running", () =>
    Effect.gen(function*() {
      const { commits, delivery, settle } = yield* harness
      const scope = yield* Scope.make()
      const committer = makeCommitBehind(scope)
      // the caller fiber ends right after handing over its delivery, as a lane fiber does when it has nothing left
      yield* Fiber.join(yield* Effect.forkChild(committer.commit([delivery(0, 1)])))
      yield* settle
      assert.deepStrictEqual(commits.map((c) => [c.partition, c.offset]), [[0, 1]])
      Deferred.doneUnsafe(commits[0].answer, Exit.void)
      yield* settle
      // a commit fiber taken along by its caller would have been interrupted: the flush and next commits would fail
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(committer.flush)))
      yield* committer.commit([delivery(0, 2)])
      yield* settle
      assert.deepStrictEqual(commits.map((c) => [c.partition, c.offset]), [[0, 1], [0, 2]])
      yield* Scope.close(scope, Exit.void)
    }))
})
