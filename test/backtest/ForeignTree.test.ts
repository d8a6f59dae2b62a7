/**
 * A tree written by another tool — files cut at other times than the store's hours, rows shuffled inside each file,
 * several row groups, no sorted mark, one file rewritten under a second name (duplicates) — replays to exactly the
 * result of the same ticks in the store's own tree: same fills, round trips, PnL and counts, duplicates dropped.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { mkdir, writeFile } from "node:fs/promises"
import { join } from "node:path"
import { replay } from "../../src/backtest/Replay.ts"
import type { RiskLimits } from "../../src/risk/RiskGate.ts"
import { query } from "../storage/support.ts"
import { storeTicks, tempDir, walkTicks } from "./support.ts"

const T0 = Date.UTC(2024, 4, 2, 9, 40)
const limits: RiskLimits = { orderQty: 0.01, maxPosition: 1, maxTradesPerMinute: 5, maxTradesPerHour: 100 }
const paper = { fee: 0.001, slippageBps: 1 }

/** `ticks` as DuckDB writes them for another tool: 20-minute files per symbol, shuffled, 2,048-row row groups. */
const writeForeign = (dir: string, csv: string) =>
  Effect.gen(function*() {
    const slots = yield* query(
      `SELECT DISTINCT symbol, strftime(epoch_ms(ts), '%Y-%m-%d') AS date, ts // 1200000 AS slot FROM read_csv('${csv}') ORDER BY ALL`
    )
    let duplicated = 0
    for (const [i, s] of slots.entries()) {
      const d = join(dir, "raw", `symbol=${s.symbol}`, `date=${s.date}`)
      yield* Effect.promise(() => mkdir(d, { recursive: true }))
      const select = `SELECT epoch_ms(ts)::TIMESTAMP_MS AS ts, symbol, price, size, side, trade_id::BIGINT AS trade_id, epoch_ms(received_at)::TIMESTAMP_MS AS received_at` +
        ` FROM read_csv('${csv}') WHERE symbol = '${s.symbol}' AND ts // 1200000 = ${s.slot} ORDER BY hash(trade_id)`
      yield* query(`COPY (${select}) TO '${join(d, `export-${i}.parquet`)}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 2048)`)
      if (i === 1) {
        // the same rows again under another name, other compression and row groups
        yield* query(`COPY (${select}) TO '${join(d, `export-${i}-rewritten.parquet`)}' (FORMAT parquet, COMPRESSION snappy, ROW_GROUP_SIZE 4096)`)
        duplicated = Number((yield* query(`SELECT count(*) AS n FROM read_parquet('${join(d, `export-${i}.parquet`)}')`))[0].n)
      }
    }
    return duplicated
  })

describe("replay of a foreign tree", () => {
  it.effect("gives the same fills, trades and PnL as the same ticks in the store's own tree, duplicates dropped", () =>
    Effect.gen(function*() {
      const ticks = walkTicks(24_000, T0, { stepMs: 400, seed: 7 }) // 2 symbols, 2 h 40 min: 3–4 store files each
      const own = yield* tempDir()
      const foreign = yield* tempDir()
      yield* storeTicks(own, ticks)
      const csv = join(foreign, "ticks.csv")
      yield* Effect.promise(() =>
        writeFile(csv, ["ts,symbol,price,size,side,trade_id,received_at", ...ticks.map((t) => `${t.ts},${t.symbol},${t.price},${t.size},${t.side},${t.tradeId},${t.receivedAt}`)].join("\n"))
      )
      const duplicated = yield* writeForeign(foreign, csv)
      assert.isAbove(duplicated, 500)

      const a = yield* replay(own, {}, limits, paper)
      const b = yield* replay(join(foreign, "raw"), {}, limits, paper)
      assert.isAbove(a.result.fills.length, 10)
      assert.strictEqual(a.summary.duplicates, 0)
      assert.strictEqual(b.summary.duplicates, duplicated)
      assert.deepStrictEqual({ ...b.summary, duplicates: 0 }, a.summary)
      assert.deepStrictEqual(b.result.fills, a.result.fills)
      assert.deepStrictEqual(b.result.trades, a.result.trades)
      assert.deepStrictEqual(b.result.points, a.result.points)
      assert.deepStrictEqual([...b.result.rejections], [...a.result.rejections])
      assert.strictEqual(b.result.endingEquity, a.result.endingEquity)
    }))
})
