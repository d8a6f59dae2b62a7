import { DuckDBInstance } from "@duckdb/node-api"
import { Effect } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { Tick } from "../../src/domain/Messages.ts"
import * as TickStore from "../../src/storage/TickStore.ts"
import type { TickColumns } from "../../src/storage/TickStore.ts"

/** A fresh directory under the OS temp dir, removed when the test's scope closes. */
export const tempDir = (prefix = "autotrader-store-") =>
  Effect.acquireRelease(
    Effect.promise(() => mkdtemp(join(tmpdir(), prefix))),
    (dir) => Effect.promise(() => rm(dir, { recursive: true, force: true }))
  )

/** Runs SQL in a throwaway DuckDB and returns JS row objects. */
export const query = (sql: string) =>
  Effect.promise(async () => {
    const instance = await DuckDBInstance.create(":memory:")
    const c = await instance.connect()
    try {
      return (await c.runAndReadAll(sql)).getRowObjectsJS() as Array<Record<string, unknown>>
    } finally {
      c.closeSync()
      instance.closeSync()
    }
  })

/** Waits on real time for real I/O (DuckDB, the file system) to finish; polls `check`. */
export const eventually = <E, R>(check: Effect.Effect<boolean, E, R>, timeoutMs = 20_000) =>
  Effect.gen(function*() {
    const until = Date.now() + timeoutMs
    while (!(yield* check)) {
      if (Date.now() > until) return yield* Effect.die(new Error("condition not met in time"))
      yield* Effect.promise(() => new Promise((r) => setTimeout(r, 10)))
    }
  })

export const mkTick = (symbol: string, tradeId: number, ts: number, price: number, side: "BUY" | "SELL" = "BUY"): Tick => ({
  symbol,
  price,
  size: 0.5 + (tradeId % 7) / 100,
  side,
  tradeId,
  ts,
  receivedAt: ts + 3
})

/** Ticks of one symbol as the store's column buffers. */
export const columnsOf = (symbol: string, ticks: ReadonlyArray<Tick>): TickColumns => ({
  symbol,
  length: ticks.length,
  ts: Float64Array.from(ticks, (t) => t.ts),
  price: Float64Array.from(ticks, (t) => t.price),
  size: Float64Array.from(ticks, (t) => t.size),
  buy: Float64Array.from(ticks, (t) => (t.side === "BUY" ? 1 : 0)),
  tradeId: Float64Array.from(ticks, (t) => t.tradeId),
  receivedAt: Float64Array.from(ticks, (t) => t.receivedAt)
})

/** Writes ticks through the real store: one file per (symbol, UTC hour) and per `chunk` ticks of it. */
export const writeTicks = (dir: string, ticks: ReadonlyArray<Tick>, chunk = Infinity) =>
  Effect.scoped(
    Effect.gen(function*() {
      const store = yield* TickStore.make({ dataDir: dir })
      const groups = new Map<string, { key: TickStore.PartitionKey; ticks: Array<Tick> }>()
      for (const t of ticks) {
        const key = TickStore.partitionOf(t.symbol, t.ts)
        const id = `${key.symbol}/${key.date}/${key.hour}`
        let g = groups.get(id)
        if (g === undefined) groups.set(id, (g = { key, ticks: [] }))
        g.ticks.push(t)
      }
      for (const { key, ticks: part } of groups.values()) {
        for (let i = 0; i < part.length; i += chunk) yield* store.write(key, columnsOf(key.symbol, part.slice(i, i + chunk)))
      }
    })
  )
