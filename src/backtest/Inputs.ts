/**
 * Checks a replay's inputs before anything runs, each failure one line with its exit code:
 * 2 bad flag value (negative fee or slippage, --from ≥ --to, unknown symbol, bad grid), 65 data that is not tick
 * data (no tick file; a foreign Parquet file under --strict), 66 a path that does not exist, 73 a report path that
 * cannot be written.
 */
import { DuckDBInstance } from "@duckdb/node-api"
import { Data, Effect, Runtime } from "effect"
import { access, constants, readdir, stat } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import type { DuckDBSession } from "../storage/ParquetSource.ts"
import { TMP_SUFFIX } from "../storage/TickStore.ts"

export const EXIT_USAGE = 2
export const EXIT_DATA = 65
export const EXIT_NO_INPUT = 66
export const EXIT_CANT_CREATE = 73

/** A bad replay input: printed as one line by the command, exit code by kind. */
export class ReplayInputError extends Data.TaggedError("ReplayInputError")<{ readonly message: string; readonly exitCode: number }> {
  override get [Runtime.errorExitCode](): number {
    return this.exitCode
  }
  /** The command prints the one line itself; the runtime must not log it again with a stack. */
  override readonly [Runtime.errorReported] = false
}

export const usage = (message: string) => new ReplayInputError({ message, exitCode: EXIT_USAGE })

/** The tick file columns replay reads (`symbol` may come from a `symbol=` directory instead). */
export const TICK_COLUMNS = ["ts", "symbol", "price", "size", "side", "trade_id", "received_at"] as const

export interface Preflight {
  /** Tick files to read. */
  readonly files: ReadonlyArray<string>
  /** Parquet files that are not tick files, and why (skipped with a warning unless --strict). */
  readonly skipped: ReadonlyArray<{ readonly path: string; readonly why: string }>
  /** Symbols present in the tick files (sorted). */
  readonly symbols: ReadonlyArray<string>
  /** Time range of the ticks per the footers (epoch ms), clipped to --from/--to; undefined when unknown. */
  readonly minTs: number | undefined
  readonly maxTs: number | undefined
}

const sql = (s: string): string => `'${s.replaceAll("'", "''")}'`
const hiveSymbol = (path: string): string | undefined => /(?:^|[\\/])symbol=([^\\/]+)/.exec(path)?.[1]

/** What is wrong with a file's schema for replay, or undefined when it is a tick file. */
export const schemaProblem = (path: string, columns: ReadonlyMap<string, { readonly type: string; readonly converted: string; readonly logical: string }>): string | undefined => {
  const missing = TICK_COLUMNS.filter((c) => !columns.has(c) && !(c === "symbol" && hiveSymbol(path) !== undefined))
  if (missing.length > 0) return `missing column${missing.length > 1 ? "s" : ""} ${missing.join(", ")}`
  const ts = columns.get("ts")!
  if (!/TIMESTAMP|Timestamp/.test(`${ts.converted} ${ts.logical}`) && ts.type !== "INT96") return `column ts is ${ts.type}, not a timestamp`
  return undefined
}

/**
 * Lists the Parquet files, sorts out those that are not tick files, and reads symbols and time range from the footers,
 * through `duckdb` when given (the replay's own, kept open for the merge), else a DuckDB of its own.
 */
export const preflight = (path: string, filter: { readonly from?: number; readonly to?: number }, duckdb?: DuckDBSession) =>
  Effect.gen(function*() {
    const info = yield* Effect.promise(() => stat(path).catch(() => undefined))
    if (info === undefined) return yield* new ReplayInputError({ message: `${path}: no such file or directory`, exitCode: EXIT_NO_INPUT })
    const all = info.isFile()
      ? [path]
      : (yield* Effect.promise(() => readdir(path, { recursive: true })))
        .filter((f) => f.endsWith(".parquet") && !f.endsWith(TMP_SUFFIX))
        .map((f) => join(path, f))
        .sort()
    if (all.length === 0) return yield* new ReplayInputError({ message: `${path}: no .parquet tick files here`, exitCode: EXIT_DATA })
    return yield* Effect.tryPromise({
      try: async () => {
        const instance = duckdb === undefined ? await DuckDBInstance.create(":memory:", { threads: "1" }) : undefined
        const c = duckdb?.connection ?? (await instance!.connect())
        try {
          const schemaOf = async (files: ReadonlyArray<string>) =>
            (await c.runAndReadAll(
              `SELECT file_name, name, type, converted_type, logical_type FROM parquet_schema([${files.map(sql).join(", ")}])`
            )).getRowObjectsJS()
          const columns = new Map<string, Map<string, { type: string; converted: string; logical: string }>>()
          const skipped: Array<{ path: string; why: string }> = []
          const add = (rows: ReadonlyArray<Record<string, unknown>>) => {
            for (const r of rows) {
              const file = String(r.file_name)
              let m = columns.get(file)
              if (m === undefined) columns.set(file, (m = new Map()))
              m.set(String(r.name), { type: String(r.type ?? ""), converted: String(r.converted_type ?? ""), logical: String(r.logical_type ?? "") })
            }
          }
          try {
            add(await schemaOf(all))
          } catch {
            // one unreadable file fails the whole list: find it (them) file by file
            for (const f of all) {
              try {
                add(await schemaOf([f]))
              } catch (e) {
                skipped.push({ path: f, why: `not a Parquet file DuckDB can read (${e instanceof Error ? e.message.split("\n")[0] : String(e)})` })
              }
            }
          }
          const files: Array<string> = []
          for (const f of all) {
            const cols = columns.get(f)
            if (cols === undefined) continue
            const problem = schemaProblem(f, cols)
            if (problem === undefined) files.push(f)
            else skipped.push({ path: f, why: `not a tick file: ${problem} (tick files have ${TICK_COLUMNS.join(", ")})` })
          }
          const symbols = new Set<string>()
          let minTs: number | undefined
          let maxTs: number | undefined
          if (files.length > 0) {
            const list = `[${files.map(sql).join(", ")}]`
            const rows = (await c.runAndReadAll(
              `SELECT file_name,` +
                ` min(CASE WHEN path_in_schema = 'symbol' THEN stats_min_value END) AS sym_min,` +
                ` max(CASE WHEN path_in_schema = 'symbol' THEN stats_max_value END) AS sym_max,` +
                ` epoch_ms(min(CASE WHEN path_in_schema = 'ts' THEN TRY_CAST(stats_min_value AS TIMESTAMP) END))::DOUBLE AS min_ts,` +
                ` epoch_ms(max(CASE WHEN path_in_schema = 'ts' THEN TRY_CAST(stats_max_value AS TIMESTAMP) END))::DOUBLE AS max_ts` +
                ` FROM parquet_metadata(${list}) GROUP BY file_name`
            )).getRowObjectsJS()
            const mixed: Array<string> = []
            for (const r of rows) {
              const file = String(r.file_name)
              const hive = hiveSymbol(file)
              if (r.sym_min !== null && r.sym_min !== undefined && r.sym_min === r.sym_max) symbols.add(String(r.sym_min))
              else if (hive !== undefined && !columns.get(file)?.has("symbol")) symbols.add(hive)
              else mixed.push(file)
              const lo = r.min_ts === null ? undefined : Number(r.min_ts)
              const hi = r.max_ts === null ? undefined : Number(r.max_ts)
              if (lo !== undefined && Number.isFinite(lo)) minTs = minTs === undefined ? lo : Math.min(minTs, lo)
              if (hi !== undefined && Number.isFinite(hi)) maxTs = maxTs === undefined ? hi : Math.max(maxTs, hi)
            }
            if (mixed.length > 0) {
              const distinct = await c.runAndReadAll(
                `SELECT DISTINCT symbol FROM read_parquet([${mixed.map(sql).join(", ")}], hive_partitioning = true, union_by_name = true)`
              )
              for (const r of distinct.getRows()) symbols.add(String(r[0]))
            }
          }
          if (filter.from !== undefined) minTs = minTs === undefined ? filter.from : Math.max(minTs, filter.from)
          if (filter.to !== undefined) maxTs = maxTs === undefined ? filter.to : Math.min(maxTs, filter.to)
          return { files, skipped, symbols: [...symbols].sort(), minTs, maxTs } satisfies Preflight
        } finally {
          if (instance !== undefined) {
            c.closeSync()
            instance.closeSync()
          }
        }
      },
      catch: (cause) =>
        new ReplayInputError({ message: `${path}: cannot read (${cause instanceof Error ? cause.message.split("\n")[0] : String(cause)})`, exitCode: EXIT_DATA })
    })
  })

/** Fails unless `path` can be created or overwritten (checked before the run, so a long replay is not wasted). */
export const checkWritable = (path: string) =>
  Effect.tryPromise({
    try: async () => {
      const full = resolve(path)
      const existing = await stat(full).catch(() => undefined)
      if (existing?.isDirectory() === true) throw new Error("is a directory")
      if (existing !== undefined) await access(full, constants.W_OK)
      else {
        const dir = dirname(full)
        const d = await stat(dir).catch(() => undefined)
        if (d === undefined) throw new Error(`directory ${dir} does not exist`)
        if (!d.isDirectory()) throw new Error(`${dir} is not a directory`)
        await access(dir, constants.W_OK)
      }
    },
    catch: (cause) =>
      new ReplayInputError({
        message: `--report ${path}: cannot write here (${cause instanceof Error ? (cause as NodeJS.ErrnoException).code ?? cause.message : String(cause)})`,
        exitCode: EXIT_CANT_CREATE
      })
  })
