/**
 * Stored ticks back out of Parquet, in (ts, trade_id) order, streamed in DuckDB chunks (2048 rows) so a large
 * store is never held in memory (DuckDB sorts out of core). A directory is searched recursively (`data` and
 * `data/raw` both work); a single file works too. Duplicates of (symbol, trade_id) — a redelivery stored twice —
 * are dropped: they sort next to each other, so one comparison with the previous row finds them.
 */
import { DuckDBInstance, type DuckDBVector } from "@duckdb/node-api"
import { Effect, Option, Stream } from "effect"
import { readdir, stat } from "node:fs/promises"
import { join } from "node:path"
import type { Tick } from "../domain/Messages.ts"
import { StoreError, TMP_SUFFIX } from "./TickStore.ts"

export interface TickFilter {
  readonly symbols?: ReadonlyArray<string>
  /** Inclusive, epoch ms. */
  readonly from?: number
  /** Exclusive, epoch ms. */
  readonly to?: number
}

export interface SourceStats {
  rows: number
  duplicates: number
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`

/** The `read_parquet(…)` expression for a file or a directory tree; fails if there is no Parquet file. */
export const sourceOf = (path: string): Effect.Effect<string, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const info = await stat(path)
      if (info.isFile()) return `read_parquet(${sqlString(path)}, hive_partitioning = true)`
      const files = (await readdir(path, { recursive: true })).filter((f) => f.endsWith(".parquet") && !f.endsWith(TMP_SUFFIX))
      if (files.length === 0) throw new Error(`no .parquet files under ${path}`)
      return `read_parquet(${sqlString(join(path, "**", "*.parquet"))}, hive_partitioning = true, union_by_name = true)`
    },
    catch: (cause) => new StoreError({ operation: "open", path, message: cause instanceof Error ? cause.message : String(cause) })
  })

/** `symbols` (sorted) become numeric codes in the query: decoding a VARCHAR per row costs more than the signal. */
export const tickQuery = (source: string, filter: TickFilter, symbols: ReadonlyArray<string>): string => {
  const where: Array<string> = []
  if (filter.symbols !== undefined && filter.symbols.length > 0) where.push(`symbol IN (${filter.symbols.map(sqlString).join(", ")})`)
  if (filter.from !== undefined) where.push(`ts >= epoch_ms(${Math.floor(filter.from)}::BIGINT)`)
  if (filter.to !== undefined) where.push(`ts < epoch_ms(${Math.floor(filter.to)}::BIGINT)`)
  return (
    `SELECT epoch_ms(ts)::DOUBLE AS ts, ${symbolCode(symbols)} AS symbol, price, size, (side = 'BUY')::DOUBLE AS buy, trade_id::DOUBLE AS trade_id,` +
    ` epoch_ms(received_at)::DOUBLE AS received_at FROM ${source}` +
    (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
    " ORDER BY ts, trade_id, symbol"
  )
}

const symbolCode = (symbols: ReadonlyArray<string>): string =>
  symbols.length === 0 ? "0::DOUBLE" : `(CASE symbol ${symbols.map((s, i) => `WHEN ${sqlString(s)} THEN ${i}`).join(" ")} ELSE -1 END)::DOUBLE`

/** A DOUBLE column of a chunk as a Float64Array (our query has no NULLs); see TickStore's `fillDoubles`. */
const doubles = (vector: DuckDBVector, n: number): Float64Array => {
  const items = (vector as unknown as { readonly items?: unknown }).items
  if (items instanceof Float64Array) return items
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Number(vector.getItem(i))
  return out
}

/**
 * Ticks in (ts, trade_id) order, one array per DuckDB chunk, de-duplicated by (symbol, trade_id).
 * `stats` counts rows read and duplicates dropped.
 */
export const readTicks = (path: string, filter: TickFilter = {}, stats: SourceStats = { rows: 0, duplicates: 0 }) =>
  Stream.unwrap(
    Effect.gen(function*() {
      const source = yield* sourceOf(path)
      const fail = (cause: unknown) =>
        new StoreError({ operation: "read", path, message: cause instanceof Error ? cause.message : String(cause) })
      const connection = yield* Effect.acquireRelease(
        Effect.tryPromise({
          try: async () => {
            const instance = await DuckDBInstance.create(":memory:")
            return { instance, c: await instance.connect() }
          },
          catch: fail
        }),
        ({ c, instance }) =>
          Effect.sync(() => {
            c.closeSync()
            instance.closeSync()
          })
      )
      const where = filter.symbols !== undefined && filter.symbols.length > 0
        ? ` WHERE symbol IN (${filter.symbols.map(sqlString).join(", ")})`
        : ""
      const names = yield* Effect.tryPromise({
        try: async () =>
          (await connection.c.runAndReadAll(`SELECT DISTINCT symbol FROM ${source}${where} ORDER BY symbol`)).getRows().map((r) => String(r[0])),
        catch: fail
      })
      const result = yield* Effect.tryPromise({ try: () => connection.c.stream(tickQuery(source, filter, names)), catch: fail })
      let prevTs = Number.NaN
      let prevId = Number.NaN
      let prevSymbol = -1
      return Stream.paginate(undefined, () =>
        Effect.tryPromise({ try: () => result.fetchChunk(), catch: fail }).pipe(
          Effect.map((chunk): readonly [ReadonlyArray<Tick>, Option.Option<undefined>] => {
            const n = chunk?.rowCount ?? 0
            if (chunk === null || n === 0) return [[], Option.none()]
            const ts = doubles(chunk.getColumnVector(0), n)
            const symbols = doubles(chunk.getColumnVector(1), n)
            const price = doubles(chunk.getColumnVector(2), n)
            const size = doubles(chunk.getColumnVector(3), n)
            const buy = doubles(chunk.getColumnVector(4), n)
            const tradeId = doubles(chunk.getColumnVector(5), n)
            const receivedAt = doubles(chunk.getColumnVector(6), n)
            const out: Array<Tick> = []
            for (let i = 0; i < n; i++) {
              const code = symbols[i]
              if (ts[i] === prevTs && tradeId[i] === prevId && code === prevSymbol) {
                stats.duplicates++
                continue
              }
              prevTs = ts[i]
              prevId = tradeId[i]
              prevSymbol = code
              out.push({
                symbol: names[code],
                price: price[i],
                size: size[i],
                side: buy[i] === 1 ? "BUY" : "SELL",
                tradeId: tradeId[i],
                ts: ts[i],
                receivedAt: receivedAt[i]
              })
            }
            stats.rows += n
            return [out, Option.some(undefined)]
          })
        )
      )
    })
  )
