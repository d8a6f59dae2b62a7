/** Child process for the crash test: writes a small file, then a large one, and is killed (SIGKILL) mid-write. */
import { Effect } from "effect"
import * as TickStore from "../../src/storage/TickStore.ts"

const dir = process.argv[2]
const columns = (n: number, firstId: number): TickStore.TickColumns => {
  const f = (g: (i: number) => number) => Float64Array.from({ length: n }, (_, i) => g(i))
  return {
    symbol: "BTCUSDT",
    length: n,
    ts: f((i) => 1_700_000_000_000 + i),
    price: f((i) => 100 + (i % 1000) / 100),
    size: f(() => 0.01),
    buy: f((i) => i % 2),
    tradeId: f((i) => firstId + i),
    receivedAt: f((i) => 1_700_000_000_005 + i)
  }
}
const key = TickStore.partitionOf("BTCUSDT", 1_700_000_000_000)
const big = columns(3_000_000, 10_000)
await Effect.runPromise(
  Effect.scoped(
    Effect.gen(function*() {
      const store = yield* TickStore.make({ dataDir: dir })
      yield* store.write(key, columns(1000, 1))
      process.stdout.write("written 1\n")
      for (let k = 2; ; k++) {
        process.stdout.write(`writing ${k}\n`)
        yield* store.write(key, big)
        process.stdout.write(`written ${k}\n`)
      }
    })
  )
)
