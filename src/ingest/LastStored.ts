/**
 * Where the last run stopped: the highest stored trade id per symbol (and its trade time), read from the tick
 * store's Parquet tree. Cheap: file names carry each file's first and last trade id
 * (`part-<HH>-<first>-<last>.parquet`), so only the newest date partition is listed and DuckDB opens just the two
 * files with the highest last id to read the row itself.
 */
import { DuckDBInstance } from "@duckdb/node-api"
import { Effect, Schema } from "effect"
import { readdir } from "node:fs/promises"
import { join } from "node:path"

export class LastStoredError extends Schema.TaggedError<LastStoredError>()("LastStoredError", {
  path: Schema.String,
  message: Schema.String
}) {}

export interface StoredTrade {
  readonly tradeId: number
  /** Trade time, epoch ms. */
  readonly ts: number
}

const PART = /^part-\d{2}-(\d+)-(\d+)\.parquet$/

const listDir = async (dir: string): Promise<Array<string>> => {
  try {
    return await readdir(dir)
  } catch (e) {
    if ((e as { code?: string }).code === "ENOENT") return []
    throw e
  }
}

const sqlString = (s: string): string => `'${s.replace(/'/g, "''")}'`

/** Newest files of `symbol` (by their last trade id), at most `n`. Empty when the symbol has nothing stored. */
const newestFiles = async (dataDir: string, symbol: string, n: number): Promise<Array<string>> => {
  const symbolDir = join(dataDir, "raw", `symbol=${symbol}`)
  const dates = (await listDir(symbolDir)).filter((d) => /^date=\d{4}-\d{2}-\d{2}$/.test(d)).sort().reverse()
  for (const date of dates) {
    const files = (await listDir(join(symbolDir, date)))
      .map((name) => ({ name, m: PART.exec(name) }))
      .filter((f): f is { name: string; m: RegExpExecArray } => f.m !== null)
      .sort((a, b) => Number(b.m[2]) - Number(a.m[2]))
      .slice(0, n)
    if (files.length > 0) return files.map((f) => join(symbolDir, date, f.name))
  }
  return []
}

/** The last stored trade of each symbol that has any (symbols without stored ticks are absent). */
export const lastStoredTrades = (
  dataDir: string,
  symbols: ReadonlyArray<string>
): Effect.Effect<ReadonlyMap<string, StoredTrade>, LastStoredError> =>
  Effect.tryPromise({
    try: async () => {
      const result = new Map<string, StoredTrade>()
      const wanted = new Map<string, Array<string>>()
      for (const symbol of symbols) {
        const files = await newestFiles(dataDir, symbol, 2)
        if (files.length > 0) wanted.set(symbol, files)
      }
      if (wanted.size === 0) return result
      const instance = await DuckDBInstance.create(":memory:", { threads: "1" })
      const connection = await instance.connect()
      try {
        for (const [symbol, files] of wanted) {
          const reader = await connection.runAndReadAll(
            `SELECT trade_id, epoch_ms(ts) FROM read_parquet([${files.map(sqlString).join(", ")}]) ORDER BY trade_id DESC LIMIT 1`
          )
          const row = reader.getRows()[0]
          if (row !== undefined) result.set(symbol, { tradeId: Number(row[0]), ts: Number(row[1]) })
        }
      } finally {
        connection.closeSync()
        instance.closeSync()
      }
      return result
    },
    catch: (e) => new LastStoredError({ path: dataDir, message: e instanceof Error ? e.message : String(e) })
  }).pipe(Effect.withSpan("Ingest.lastStoredTrades"))
