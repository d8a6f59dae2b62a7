/**
 * Stored ticks back out of Parquet, in (ts, trade_id, symbol) order, de-duplicated by (symbol, trade_id, ts).
 *
 * No global sort: the store writes each file for one symbol and one UTC hour, so files barely overlap in time.
 * Each file is read on its own (a file the store wrote is already in order and streamed in 2048-row chunks; any other
 * is sorted by DuckDB by (ts, trade_id) in one job and its chunks taken without a thread hop) and the
 * per-file streams are k-way merged here, in JS, by (ts, trade_id, symbol). A file is opened only when the merge
 * reaches its first timestamp (from the Parquet footer's statistics), so at any time only the files overlapping
 * the current instant are open (plus a small look-ahead): memory is bounded by that, not by the tree.
 * The next chunk of every open file and the next file are fetched while the current rows are merged, so DuckDB's
 * decoding overlaps with the replay's own work.
 *
 * A directory is searched recursively (`data` and `data/raw` both work); a single file works too. Duplicates — a
 * redelivery stored twice — have the same (ts, trade_id, symbol), so they meet next to each other in the merged
 * order and one comparison with the previous row drops them, whichever files they are in.
 */
import {
  type DuckDBConnection,
  type DuckDBDataChunk,
  DuckDBInstance,
  type DuckDBResult,
  type DuckDBVector
} from "@duckdb/node-api"
import { Effect, Option, type Scope, Stream } from "effect"
import { readdir, stat } from "node:fs/promises"
import { createRequire } from "node:module"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import type { Tick } from "../domain/Messages.ts"
import { SORTED_KEY, SORTED_VALUE, StoreError, TMP_SUFFIX } from "./TickStore.ts"

export interface TickFilter {
  readonly symbols?: ReadonlyArray<string>
  /** Inclusive, epoch ms. */
  readonly from?: number
  /** Exclusive, epoch ms. */
  readonly to?: number
  /** Read exactly these files instead of every `*.parquet` under the path (replay's checked list). */
  readonly files?: ReadonlyArray<string>
  /**
   * Read through this open DuckDB (replay's, already used by its input checks) instead of one of the merge's own;
   * its owner closes it. One instance per replay: creating and closing one costs ~20 ms CPU and 50-100 ms of a
   * loaded machine's wall time, and its Parquet metadata cache keeps the footers the checks already read.
   */
  readonly duckdb?: DuckDBSession
}

/** An open DuckDB instance and a connection for small queries (footers, symbols). */
export interface DuckDBSession {
  readonly instance: DuckDBInstance
  readonly connection: DuckDBConnection
}

export interface SourceStats {
  rows: number
  duplicates: number
}

const sqlString = (s: string): string => `'${s.replaceAll("'", "''")}'`

/** The Parquet files at `path` (a file, or every `*.parquet` under a directory), sorted; fails if there is none. */
export const listFiles = (path: string): Effect.Effect<ReadonlyArray<string>, StoreError> =>
  Effect.tryPromise({
    try: async () => {
      const info = await stat(path)
      if (info.isFile()) return [path]
      const files = (await readdir(path, { recursive: true }))
        .filter((f) => f.endsWith(".parquet") && !f.endsWith(TMP_SUFFIX))
        .map((f) => join(path, f))
        .sort()
      if (files.length === 0) throw new Error(`no .parquet files under ${path}`)
      return files
    },
    catch: (cause) => new StoreError({ operation: "open", path, message: cause instanceof Error ? cause.message : String(cause) })
  })

/** What the footer says about one file. */
export interface FileInfo {
  readonly path: string
  readonly rows: number
  /** Epoch ms; -Infinity / +Infinity when the footer has no statistics. */
  readonly minTs: number
  readonly maxTs: number
  /** The one symbol every row has (min = max in every row group), or undefined: read the column per row. */
  readonly symbol: string | undefined
  /** Written by our store, which marks files already in (ts, trade_id) order: no sort needed on read. */
  readonly sorted: boolean
}

const num = (v: unknown, otherwise: number): number => (v === null || v === undefined ? otherwise : Number(v))

/** Row counts, ts range and (single) symbol of every file, from the Parquet footers only (no data is read). */
const fileInfos = async (c: DuckDBConnection, files: ReadonlyArray<string>): Promise<Array<FileInfo>> => {
  const list = `[${files.map(sqlString).join(", ")}]`
  const rows = (await c.runAndReadAll(
    `SELECT file_name,` +
      ` max(CASE WHEN path_in_schema = 'ts' THEN 1 ELSE 0 END) AS has_ts,` +
      ` epoch_ms(min(CASE WHEN path_in_schema = 'ts' THEN TRY_CAST(stats_min_value AS TIMESTAMP) END))::DOUBLE AS min_ts,` +
      ` epoch_ms(max(CASE WHEN path_in_schema = 'ts' THEN TRY_CAST(stats_max_value AS TIMESTAMP) END))::DOUBLE AS max_ts,` +
      ` count(CASE WHEN path_in_schema = 'ts' AND stats_min_value IS NULL THEN 1 END) AS ts_unknown,` +
      ` min(CASE WHEN path_in_schema = 'symbol' THEN stats_min_value END) AS sym_min,` +
      ` max(CASE WHEN path_in_schema = 'symbol' THEN stats_max_value END) AS sym_max,` +
      ` count(CASE WHEN path_in_schema = 'symbol' AND (stats_min_value IS NULL OR stats_max_value IS NULL) THEN 1 END) AS sym_unknown,` +
      ` count(CASE WHEN path_in_schema = 'symbol' THEN 1 END) AS sym_groups,` +
      ` sum(CASE WHEN path_in_schema = 'ts' THEN num_values END)::DOUBLE AS n` +
      ` FROM parquet_metadata(${list}) GROUP BY file_name`
  )).getRowObjectsJS()
  const byPath = new Map(rows.map((r) => [String(r.file_name), r]))
  const marked = new Set(
    (await c.runAndReadAll(
      `SELECT file_name FROM parquet_kv_metadata(${list})` +
        ` WHERE decode(key) = ${sqlString(SORTED_KEY)} AND decode(value) = ${sqlString(SORTED_VALUE)}`
    )).getRowObjectsJS().map((r) => String(r.file_name))
  )
  return files.map((path) => {
    const r = byPath.get(path)
    const tsKnown = r !== undefined && Number(r.has_ts) === 1 && Number(r.ts_unknown) === 0
    const single = r !== undefined && Number(r.sym_groups) > 0 && Number(r.sym_unknown) === 0 && r.sym_min === r.sym_max
    return {
      path,
      rows: num(r?.n, 0),
      minTs: tsKnown ? num(r?.min_ts, Number.NEGATIVE_INFINITY) : Number.NEGATIVE_INFINITY,
      maxTs: tsKnown ? num(r?.max_ts, Number.POSITIVE_INFINITY) : Number.POSITIVE_INFINITY,
      symbol: single ? String(r?.sym_min) : undefined,
      sorted: marked.has(path)
    }
  })
}

/**
 * The query for one file, sorted by (ts, trade_id). `ts * 2 + buy` travels as one DOUBLE (exact below 2^52, i.e.
 * for any millisecond timestamp): every column handed over costs per chunk. `codes` (sorted symbols) become numbers
 * in the query, and only for a file holding several symbols: decoding a VARCHAR per row costs more than the signal.
 */
export const fileQuery = (file: FileInfo, filter: TickFilter, codes: ReadonlyArray<string> | undefined): string => {
  const where: Array<string> = []
  if (codes !== undefined && filter.symbols !== undefined && filter.symbols.length > 0) {
    where.push(`symbol IN (${filter.symbols.map(sqlString).join(", ")})`)
  }
  if (filter.from !== undefined && !(file.minTs >= filter.from)) where.push(`ts >= epoch_ms(${Math.floor(filter.from)}::BIGINT)`)
  if (filter.to !== undefined && !(file.maxTs < filter.to)) where.push(`ts < epoch_ms(${Math.floor(filter.to)}::BIGINT)`)
  const code = codes === undefined
    ? ""
    : `, (CASE symbol ${codes.map((s, i) => `WHEN ${sqlString(s)} THEN ${i}`).join(" ")} ELSE -1 END)::DOUBLE AS symbol_code`
  return (
    `SELECT (epoch_ms(ts) * 2 + (side = 'BUY')::BIGINT)::DOUBLE AS ts_buy, price::DOUBLE AS price, size::DOUBLE AS size,` +
    ` trade_id::DOUBLE AS trade_id, epoch_ms(received_at)::DOUBLE AS received_at${code}` +
    ` FROM read_parquet(${sqlString(file.path)}${codes === undefined ? "" : ", hive_partitioning = true"})` +
    (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
    (codes !== undefined ? " ORDER BY ts, trade_id, symbol" : file.sorted ? "" : " ORDER BY ts, trade_id")
  )
}

/**
 * The native calls under `@duckdb/node-api` (its own dependency, resolved from it), for the one hot path that
 * needs them: a chunk's DOUBLE column as a typed array without the API's vector wrapper (type lookup, validity,
 * object per column per chunk: about a tenth of a replay). Undefined if a future version lacks them.
 */
interface RawBindings {
  readonly data_chunk_get_vector: (chunk: unknown, column: number) => unknown
  readonly vector_get_data: (vector: unknown, bytes: number) => Uint8Array
}
const raw: RawBindings | undefined = (() => {
  try {
    const fromApi = createRequire(createRequire(import.meta.url).resolve("@duckdb/node-api"))
    const b = fromApi("@duckdb/node-bindings") as Partial<RawBindings>
    return typeof b.data_chunk_get_vector === "function" && typeof b.vector_get_data === "function" ? (b as RawBindings) : undefined
  } catch {
    return undefined
  }
})()

/** A DOUBLE column of a chunk as a Float64Array over the chunk's memory (our query has no NULLs). */
const doubles = (chunk: DuckDBDataChunk, column: number, n: number): Float64Array => {
  const handle = (chunk as unknown as { readonly chunk?: unknown }).chunk
  if (raw !== undefined && handle !== undefined) {
    const bytes = raw.vector_get_data(raw.data_chunk_get_vector(handle, column), n * 8)
    return new Float64Array(bytes.buffer, bytes.byteOffset, n)
  }
  const vector: DuckDBVector = chunk.getColumnVector(column)
  const items = (vector as unknown as { readonly items?: unknown }).items
  if (items instanceof Float64Array) return items
  const out = new Float64Array(n)
  for (let i = 0; i < n; i++) out[i] = Number(vector.getItem(i))
  return out
}

/** One open file: its current chunk as columns, and the next chunk already requested. */
interface Cursor {
  readonly file: FileInfo
  readonly connection: DuckDBConnection
  /** Kept alive: the chunks are views of its memory. */
  readonly result: DuckDBResult
  /** Requests the next chunk (null at the end). */
  readonly fetch: () => Promise<DuckDBDataChunk | null>
  /** Symbol code of every row, when the file has one symbol; -1 when `codes` holds it per row. */
  readonly code: number
  next: Promise<DuckDBDataChunk | null> | undefined
  chunk: DuckDBDataChunk | null // kept alive: the columns are views of its memory
  n: number
  pos: number
  tsBuy: Float64Array
  price: Float64Array
  size: Float64Array
  tradeId: Float64Array
  receivedAt: Float64Array
  codes: Float64Array | undefined
  /** Head row's key, kept in fields so the merge compares numbers, not arrays. */
  ts: number
  id: number
  sym: number
}

const EMPTY = new Float64Array(0)

/**
 * The one tick object the merge hands on, rewritten per row. A class, not an object literal: a literal with a
 * Tick's keys shares its hidden class with every other such literal, and one of those holding a number of another
 * kind turns `ts` and `tradeId` into boxed fields, i.e. a new heap number per row and field (measured: ~70 bytes
 * allocated per row, a third of the replay's garbage). Numbers start as doubles so the fields stay unboxed.
 */
class ReusedTick implements Tick {
  symbol = ""
  price = Number.NaN
  size = Number.NaN
  side: "BUY" | "SELL" = "BUY"
  tradeId = Number.NaN
  ts = Number.NaN
  receivedAt = Number.NaN
}

/** Loads `chunk` into the cursor; false when the file is done. */
const load = (c: Cursor, chunk: DuckDBDataChunk | null): boolean => {
  const n = chunk?.rowCount ?? 0
  if (chunk === null || n === 0) {
    c.chunk = null
    c.n = 0
    return false
  }
  c.chunk = chunk
  c.n = n
  c.pos = 0
  c.tsBuy = doubles(chunk, 0, n)
  c.price = doubles(chunk, 1, n)
  c.size = doubles(chunk, 2, n)
  c.tradeId = doubles(chunk, 3, n)
  c.receivedAt = doubles(chunk, 4, n)
  c.codes = c.code < 0 ? doubles(chunk, 5, n) : undefined
  return true
}

const setHead = (c: Cursor): void => {
  const p = c.pos
  c.ts = Math.floor(c.tsBuy[p] / 2)
  c.id = c.tradeId[p]
  c.sym = c.codes === undefined ? c.code : c.codes[p]
}

/**
 * DuckDB threads for a replay: the cores the JS merge does not use (at least 1). Each file is its own query (one
 * row group per store file), so more threads buy little and compete with the merge: on the 2-core bench machine
 * 1 thread instead of 2 measured 906–1,025k vs 857–981k ticks/s end to end (5 interleaved pairs, load 1.3).
 */
const DUCKDB_THREADS = Math.max(1, availableParallelism() - 1)

/** DuckDB as a replay reads with it: `DUCKDB_THREADS`, footers cached (each file's is read by the checks, the plan and its query). */
const createSession = async (): Promise<DuckDBSession> => {
  const instance = await DuckDBInstance.create(":memory:", { threads: String(DUCKDB_THREADS) })
  const connection = await instance.connect()
  await connection.run("LOAD parquet; SET parquet_metadata_cache = true")
  return { instance, connection }
}
const closeSession = (s: DuckDBSession): void => {
  s.connection.closeSync()
  s.instance.closeSync()
}

/** One DuckDB for a whole replay (input checks and merge: `TickFilter.duckdb`), closed with the scope. */
export const openDuckDB: Effect.Effect<DuckDBSession, StoreError, Scope.Scope> = Effect.acquireRelease(
  Effect.tryPromise({
    try: createSession,
    catch: (cause) => new StoreError({ operation: "open", path: ":memory:", message: cause instanceof Error ? cause.message : String(cause) })
  }),
  (s) => Effect.sync(() => closeSession(s))
)

/** Up to this many rows per batch handed to the consumer. */
const BATCH = 8192
/** Files opened ahead of the merge (their query and first chunk run while earlier rows are merged). */
const LOOKAHEAD = 2

/**
 * The k-way merge: resolves (in a Scope that closes DuckDB) to `next(emit)`, which emits the next batch of ticks in
 * (ts, trade_id, symbol) order, de-duplicated, and returns how many (0: done).
 */
const mergedTicks = (path: string, filter: TickFilter, stats: SourceStats) =>
    Effect.gen(function*() {
      const files = filter.files ?? (yield* listFiles(path))
      const fail = (cause: unknown) =>
        new StoreError({ operation: "read", path, message: cause instanceof Error ? cause.message : String(cause) })
      const open: Array<Cursor> = []
      const idle: Array<DuckDBConnection> = []
      const shared = filter.duckdb
      const session = yield* Effect.acquireRelease(
        shared === undefined ? Effect.tryPromise({ try: createSession, catch: fail }) : Effect.succeed(shared),
        (s) =>
          Effect.sync(() => {
            for (const cursor of open) cursor.connection.closeSync()
            for (const connection of idle) connection.closeSync()
            if (s !== shared) closeSession(s)
          })
      )
      const db = { instance: session.instance, c: session.connection }
      const wanted = filter.symbols !== undefined && filter.symbols.length > 0 ? new Set(filter.symbols) : undefined
      const plan = yield* Effect.tryPromise({
        try: async () => {
          const infos = (await fileInfos(db.c, files)).filter((f) =>
            f.rows > 0 &&
            !(f.symbol !== undefined && wanted !== undefined && !wanted.has(f.symbol)) &&
            !(filter.from !== undefined && f.maxTs < filter.from) &&
            !(filter.to !== undefined && f.minTs >= filter.to)
          )
          // symbol codes: sorted names, so that ties in (ts, trade_id) break by symbol as before
          const names = new Set<string>()
          for (const f of infos) if (f.symbol !== undefined) names.add(f.symbol)
          const mixed = infos.filter((f) => f.symbol === undefined)
          if (mixed.length > 0) {
            const where = wanted === undefined ? "" : ` WHERE symbol IN (${[...wanted].map(sqlString).join(", ")})`
            const distinct = await db.c.runAndReadAll(
              `SELECT DISTINCT symbol FROM read_parquet([${mixed.map((f) => sqlString(f.path)).join(", ")}], hive_partitioning = true, union_by_name = true)${where}`
            )
            for (const r of distinct.getRows()) names.add(String(r[0]))
          }
          // files in the order the merge needs them; an unknown start opens first
          infos.sort((a, b) => a.minTs - b.minTs || (a.path < b.path ? -1 : 1))
          return { infos, names: [...names].sort() }
        },
        catch: fail
      })
      const names = plan.names
      const code = new Map(names.map((s, i) => [s, i]))
      const pending = plan.infos
      let nextFile = 0

      const connect = async (): Promise<DuckDBConnection> => idle.pop() ?? (await db.instance.connect())
      /** Starts a file's query and its first chunk; the cursor is ready once the promise resolves. */
      const start = async (file: FileInfo): Promise<Cursor> => {
        const connection = await connect()
        const codes = file.symbol === undefined ? names : undefined
        const query = fileQuery(file, filter, codes)
        let result: DuckDBResult
        let fetch: () => Promise<DuckDBDataChunk | null>
        if (codes !== undefined || !file.sorted) {
          // a sorted query: DuckDB holds the whole sorted file before its first row anyway, so the file is
          // materialized in one job on DuckDB's side and its chunks are taken synchronously. Streamed, every
          // 2048-row chunk was a job of its own for a pool thread: 1,100 hand-offs on the foreign bench tree,
          // each waking a thread that took the core from the merge (measured: 0.5 s of the main thread's wall
          // time inside fetchChunk's synchronous part under load)
          const materialized = await connection.run(query)
          const count = materialized.chunkCount
          let i = 0
          result = materialized
          fetch = () => Promise.resolve(i < count ? materialized.getChunk(i++) : null)
        } else {
          // the store's files, already in order: streamed (memory bounded by a chunk, not the file)
          const streamed = await connection.stream(query)
          result = streamed
          fetch = () => streamed.fetchChunk()
        }
        const cursor: Cursor = {
          file,
          connection,
          result,
          fetch,
          code: file.symbol === undefined ? -1 : (code.get(file.symbol) ?? -1),
          next: fetch(),
          chunk: null,
          n: 0,
          pos: 0,
          tsBuy: EMPTY,
          price: EMPTY,
          size: EMPTY,
          tradeId: EMPTY,
          receivedAt: EMPTY,
          codes: undefined,
          ts: 0,
          id: 0,
          sym: 0
        }
        return cursor
      }
      const starting: Array<Promise<Cursor>> = []
      const startAhead = () => {
        while (starting.length < LOOKAHEAD && nextFile < pending.length) {
          const p = start(pending[nextFile++])
          p.catch(() => {}) // awaited in order below; never an unhandled rejection meanwhile
          starting.push(p)
        }
      }
      /** Moves a cursor to its next chunk (already requested); false and closed when the file is done. */
      const advance = async (c: Cursor): Promise<boolean> => {
        const chunk = c.next === undefined ? null : await c.next
        c.next = undefined
        if (load(c, chunk)) {
          stats.rows += c.n
          c.next = c.fetch() // decoded while this chunk is merged (streamed files)
          setHead(c)
          return true
        }
        idle.push(c.connection)
        return false
      }
      /** Opens the next file (in first-timestamp order) and adds it to the merge if it has rows. */
      const openNext = async (): Promise<void> => {
        startAhead()
        const p = starting.shift()
        if (p === undefined) return
        const c = await p
        startAhead()
        if (await advance(c)) open.push(c)
      }
      const nextStart = (): number =>
        starting.length > 0 ? pending[nextFile - starting.length].minTs : nextFile < pending.length ? pending[nextFile].minTs : Number.POSITIVE_INFINITY

      // the last row handed on, in an object's fields: a double in a closure's `let` is a new heap number per store
      const prev = { ts: Number.NaN, id: Number.NaN, sym: -1 }

      /**
       * Hands the next batch of merged ticks to `emit`, one by one, through ONE reused object (valid only during the
       * call: no allocation per row); resolves to how many it emitted, 0 when every file is done.
       */
      const tick = new ReusedTick()
      /** The open cursor with the smallest (ts, trade_id, symbol) head (a cursor at the end of its chunk keeps its last row's key). */
      const pick = (): Cursor | undefined => {
        let best: Cursor | undefined
        for (let k = 0; k < open.length; k++) {
          const c = open[k]
          if (best === undefined || c.ts < best.ts || (c.ts === best.ts && (c.id < best.id || (c.id === best.id && c.sym < best.sym)))) best = c
        }
        return best
      }
      /**
       * The synchronous part, one row at a time from the smallest head (files interleave row by row: two symbols of
       * the same hour), until a chunk must be awaited, a file opened (a head past `startTs`) or `budget` rows went
       * out; returns how many it emitted. An equal head in another file is a duplicate: it comes out right after and
       * is dropped. A plain function, not part of the async one: V8 keeps it optimized (the async function's loop
       * ran on-stack-replaced code that bailed out at every exit, boxing every number of every row meanwhile).
       */
      const drain = (first: Cursor, startTs: number, emit: (tick: Tick) => void, budget: number): number => {
        let best: Cursor | undefined = first
        let emitted = 0
        for (;;) {
          const p = best.pos
          const ts = best.ts
          const id = best.id
          const sym = best.sym
          if (ts === prev.ts && id === prev.id && sym === prev.sym) {
            stats.duplicates++
          } else {
            prev.ts = ts
            prev.id = id
            prev.sym = sym
            tick.symbol = names[sym]
            tick.price = best.price[p]
            tick.size = best.size[p]
            tick.side = best.tsBuy[p] - 2 * ts === 1 ? "BUY" : "SELL"
            tick.tradeId = id
            tick.ts = ts
            tick.receivedAt = best.receivedAt[p]
            emitted++
            emit(tick)
          }
          // at the end of its chunk, a cursor keeps its last row's key until the next chunk is awaited
          if (++best.pos === best.n) break
          setHead(best)
          if (emitted >= budget) break
          best = pick()
          if (best === undefined || startTs <= best.ts) break
        }
        return emitted
      }
      const nextBatch = async (emit: (tick: Tick) => void): Promise<number> => {
        let emitted = 0
        while (emitted < BATCH) {
          const startTs = nextStart()
          let best = pick()
          // a file not yet open may hold a smaller row: open every file starting at or before the best head
          if (best === undefined ? startTs !== Number.POSITIVE_INFINITY : startTs <= best.ts) {
            await openNext()
            continue
          }
          if (best === undefined) break
          if (best.pos === best.n) {
            // its chunk is used up: its next row is at or above its last one, so it is the one to move on
            if (!(await advance(best))) open.splice(open.indexOf(best), 1)
            continue
          }
          emitted += drain(best, startTs, emit, BATCH - emitted)
        }
        return emitted
      }

      startAhead()
      return (emit: (tick: Tick) => void) => Effect.tryPromise({ try: () => nextBatch(emit), catch: fail })
    })

/**
 * Ticks in (ts, trade_id, symbol) order, in batches of up to 8192, de-duplicated by (symbol, trade_id, ts).
 * `stats` counts rows read and duplicates dropped.
 */
export const readTicks = (path: string, filter: TickFilter = {}, stats: SourceStats = { rows: 0, duplicates: 0 }) =>
  Stream.unwrap(
    Effect.map(mergedTicks(path, filter, stats), (next) =>
      Stream.paginate(undefined, () => {
        const batch: Array<Tick> = []
        return next((t) => batch.push({ ...t })).pipe(
          Effect.map((n): readonly [ReadonlyArray<Tick>, Option.Option<undefined>] =>
            n === 0 ? [[], Option.none()] : [batch, Option.some(undefined)]
          )
        )
      })
    )
  )

/**
 * The same merged, de-duplicated ticks without building them: `onTick` sees each through one reused object (read
 * it during the call, never keep it), `onBatch` runs between batches of up to 8192. Needs a Scope (open files).
 */
export const forEachTick = <E>(
  path: string,
  filter: TickFilter,
  stats: SourceStats,
  onTick: (tick: Tick) => void,
  onBatch: Effect.Effect<void, E> = Effect.void as Effect.Effect<void, E>
) =>
  Effect.gen(function*() {
    const next = yield* mergedTicks(path, filter, stats)
    while ((yield* next(onTick)) > 0) yield* onBatch
  })
