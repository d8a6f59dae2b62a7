/** A scoped DuckDB connection for the ML commands, and the small helpers they share. */
import { DuckDBInstance, type DuckDBConnection } from "@duckdb/node-api"
import { Effect, Schema } from "effect"
import { readdir, stat } from "node:fs/promises"
import { join } from "node:path"

/** Anything the ML loop cannot do, with what it was doing and why (one line for the operator). */
export class MlError extends Schema.TaggedError<MlError>()("MlError", {
  operation: Schema.String,
  message: Schema.String
}) {}

export const fail = (operation: string) => (cause: unknown) =>
  new MlError({ operation, message: cause instanceof Error ? cause.message : String(cause) })

export const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`

/** An in-memory DuckDB, closed with the scope. `threads`: DuckDB's default (all cores) unless given. */
export const duck = (threads?: number) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const instance = await DuckDBInstance.create(":memory:", threads === undefined ? {} : { threads: String(threads) })
        return { instance, connection: await instance.connect() }
      },
      catch: fail("open duckdb")
    }),
    ({ connection, instance }) =>
      Effect.sync(() => {
        connection.closeSync()
        instance.closeSync()
      })
  ).pipe(Effect.map(({ connection }) => connection))

export const run = (c: DuckDBConnection, operation: string, sql: string) =>
  Effect.tryPromise({ try: () => c.run(sql), catch: fail(operation) }).pipe(Effect.asVoid)

export const rows = (c: DuckDBConnection, operation: string, sql: string) =>
  Effect.tryPromise({
    try: async () => (await c.runAndReadAll(sql)).getRowObjectsJS() as Array<Record<string, unknown>>,
    catch: fail(operation)
  })

/** Numeric columns of a query as Float64Arrays (NULL → NaN), read chunk by chunk. */
export const numericColumns = (c: DuckDBConnection, operation: string, sql: string, names: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: async () => {
      const result = await c.stream(sql)
      const parts: Array<Array<Array<number>>> = names.map(() => [])
      let n = 0
      for (;;) {
        const chunk = await result.fetchChunk()
        if (chunk === null || chunk.rowCount === 0) break
        n += chunk.rowCount
        for (let j = 0; j < names.length; j++) {
          const values = chunk.getColumnValues(j)
          const out = new Array<number>(values.length)
          for (let i = 0; i < values.length; i++) {
            const v = values[i]
            out[i] = v === null ? Number.NaN : typeof v === "bigint" ? Number(v) : Number(v)
          }
          parts[j].push(out)
        }
      }
      const columns: Record<string, Float64Array> = {}
      names.forEach((name, j) => {
        const a = new Float64Array(n)
        let k = 0
        for (const part of parts[j]) {
          a.set(part, k)
          k += part.length
        }
        columns[name] = a
      })
      return { length: n, columns }
    },
    catch: fail(operation)
  })

/** The Parquet files of a Hive tick tree (`raw/symbol=S/date=D/*.parquet`), optionally for some symbols only. */
export const tickFiles = (storeDir: string, symbols?: ReadonlyArray<string>) =>
  Effect.tryPromise({
    try: async () => {
      const info = await stat(storeDir).catch(() => undefined)
      if (info === undefined) throw new Error(`${storeDir} does not exist`)
      if (info.isFile()) return [storeDir]
      const raw = join(storeDir, "raw")
      const symbolDirs = (await readdir(raw).catch(() => [] as Array<string>)).filter((d) => d.startsWith("symbol="))
      const files: Array<string> = []
      for (const sd of symbolDirs) {
        if (symbols !== undefined && !symbols.includes(sd.slice("symbol=".length))) continue
        for (const dd of await readdir(join(raw, sd))) {
          if (!dd.startsWith("date=")) continue
          for (const f of await readdir(join(raw, sd, dd))) if (f.endsWith(".parquet") && !f.startsWith(".")) files.push(join(raw, sd, dd, f))
        }
      }
      if (files.length === 0) {
        throw new Error(`no tick files under ${raw}/symbol=*/date=*/*.parquet${symbols === undefined ? "" : ` for ${symbols.join(",")}`}`)
      }
      return files.sort()
    },
    catch: fail("list tick files")
  })

/** Reads a Parquet file's key-value metadata as strings. */
export const parquetMetadata = (c: DuckDBConnection, path: string) =>
  rows(c, "read parquet metadata", `SELECT decode(key) AS key, decode(value) AS value FROM parquet_kv_metadata(${sqlString(path)})`).pipe(
    Effect.map((rs) => Object.fromEntries(rs.map((r) => [String(r.key), String(r.value)])) as Record<string, string>)
  )
