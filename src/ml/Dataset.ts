/**
 * The dataset builder: the Hive tick tree → one Parquet row per tick (or per bar's last tick) with the feature
 * columns of FeatureSpec and the labels. DuckDB does the work (window functions for features, an ASOF JOIN for
 * "the last trade at or before ts + horizon").
 *
 * Labels: fwd_return = price(last trade at or before ts + horizon) / price − 1, label = 1 when fwd_return > 0.
 * Left out: a symbol's first MIN_TRADES − 1 trades, rows whose features are undefined, and rows whose horizon
 * reaches past the symbol's last trade (their label would be cut short).
 */
import type { DuckDBConnection } from "@duckdb/node-api"
import { Effect } from "effect"
import { rename, rm } from "node:fs/promises"
import { dirname, join, basename } from "node:path"
import { duck, rows, run, sqlString, tickFiles } from "./Duck.ts"
import { FEATURES, type Feature, featureSql, MIN_TRADES, specHash, specJson } from "./FeatureSpec.ts"

export interface DatasetOptions {
  readonly storeDir: string
  readonly out: string
  readonly symbols?: ReadonlyArray<string>
  /** Inclusive, epoch ms. */
  readonly from?: number
  /** Exclusive, epoch ms. */
  readonly to?: number
  readonly horizonMs: number
  /** undefined: one row per tick; else one row per bar of this many ms (the bar's last tick). */
  readonly everyMs?: number
  readonly features?: ReadonlyArray<Feature>
  readonly threads?: number
}

export interface DatasetResult {
  readonly rows: number
  readonly ticks: number
  readonly firstTs: number | undefined
  readonly lastTs: number | undefined
  readonly positiveRate: number
  readonly specHash: string
}

/** Key-value metadata keys of a dataset file. */
export const META = {
  spec: "autotrader_feature_spec",
  specHash: "autotrader_spec_hash",
  horizonMs: "autotrader_horizon_ms",
  every: "autotrader_every",
  source: "autotrader_source",
  label: "autotrader_label"
} as const

export const LABEL_DEFINITION = "fwd_return = price of the last trade at or before ts + horizon / price - 1; label = 1 if fwd_return > 0 else 0"

/** Non-feature columns of a dataset. */
export const KEY_COLUMNS = ["symbol", "ts", "trade_id"] as const
export const LABEL_COLUMNS = ["fwd_return", "label"] as const

/** Loads the (de-duplicated) ticks into a temp table `ticks` (symbol, trade_id, t, price, size, buy). */
export const loadTicks = (
  c: DuckDBConnection,
  files: ReadonlyArray<string>,
  filter: { readonly symbols?: ReadonlyArray<string>; readonly from?: number; readonly to?: number }
) => {
  const where: Array<string> = []
  if (filter.symbols !== undefined) where.push(`symbol IN (${filter.symbols.map(sqlString).join(", ")})`)
  if (filter.from !== undefined) where.push(`ts >= epoch_ms(${Math.floor(filter.from)}::BIGINT)`)
  if (filter.to !== undefined) where.push(`ts < epoch_ms(${Math.floor(filter.to)}::BIGINT)`)
  return run(
    c,
    "read ticks",
    `CREATE OR REPLACE TEMP TABLE ticks AS SELECT symbol, trade_id, epoch_ms(ts)::DOUBLE AS t, price::DOUBLE AS price,` +
      ` size::DOUBLE AS size, CASE WHEN side = 'BUY' THEN 1.0 ELSE 0.0 END AS buy` +
      ` FROM read_parquet([${files.map(sqlString).join(", ")}], hive_partitioning = false, union_by_name = true)` +
      (where.length > 0 ? ` WHERE ${where.join(" AND ")}` : "") +
      // redelivered ticks are stored twice: keep one per trade id, as the signal worker does
      ` QUALIFY row_number() OVER (PARTITION BY symbol, trade_id ORDER BY ts) = 1`
  )
}

const q = (name: string): string => `"${name.replaceAll("\"", "")}"`

export interface DatasetPlan {
  /** Statements run first (they build the temp table `labelled` from `ticks`). */
  readonly prepare: ReadonlyArray<string>
  /** The dataset's rows, in time order: what is written to Parquet, streamed (no wide table in between). */
  readonly query: string
  readonly cleanup: ReadonlyArray<string>
}

/**
 * The dataset's plan over the `ticks` table. Labels first, on the narrow tick rows
 * (an ASOF JOIN for "the last trade at or before t + horizon"), so the feature windows carry them along and no
 * wide row is joined or copied again; then one query: features, bars, the filters, time order. (Inlined into one
 * statement with the features, DuckDB's planner turned the ASOF JOIN into a nested-loop join, so it stays apart.)
 */
export const datasetPlan = (features: ReadonlyArray<Feature>, horizonMs: number, everyMs?: number): DatasetPlan => {
  const feats = featureSql("labelled", features, ["price AS _price", "_th", "_tmax", "_fwd_price"])
  const bars = everyMs === undefined ? "" : ` QUALIFY row_number() OVER (PARTITION BY symbol, floor(t / ${everyMs}) ORDER BY t DESC, trade_id DESC) = 1`
  const defined = features.map((ft) => ` AND ${q(ft.name)} IS NOT NULL AND isfinite(${q(ft.name)})`).join("")
  const prepare = [
    "CREATE OR REPLACE TEMP TABLE last_price AS SELECT symbol, t, arg_max(price, trade_id) AS price FROM ticks GROUP BY symbol, t",
    `CREATE OR REPLACE TEMP TABLE labelled AS
SELECT k.*, l.price AS _fwd_price
FROM (SELECT ticks.*, t + ${horizonMs} AS _th, e.tmax AS _tmax FROM ticks JOIN (SELECT symbol, max(t) AS tmax FROM ticks GROUP BY symbol) e USING (symbol)) k
ASOF JOIN last_price l ON k.symbol = l.symbol AND k._th >= l.t`,
    "DROP TABLE last_price"
  ]
  const query = `SELECT symbol, epoch_ms(t::BIGINT) AS ts, trade_id, ${features.map((ft) => q(ft.name)).join(", ")},
  _fwd_price / _price - 1 AS fwd_return, CASE WHEN _fwd_price / _price - 1 > 0 THEN 1 ELSE 0 END AS label
FROM (SELECT * FROM (${feats})${bars})
WHERE rn >= ${MIN_TRADES} AND _th <= _tmax${defined}
ORDER BY ts, symbol, trade_id`
  return { prepare, query, cleanup: ["DROP TABLE labelled"] }
}

export const buildDataset = (options: DatasetOptions) =>
  Effect.gen(function*() {
    const features = options.features ?? FEATURES
    const files = yield* tickFiles(options.storeDir, options.symbols)
    const c = yield* duck(options.threads)
    yield* loadTicks(c, files, options)
    const [src] = yield* rows(c, "read ticks", "SELECT count(*)::DOUBLE AS n, min(t) AS t0, max(t) AS t1 FROM ticks")
    const plan = datasetPlan(features, options.horizonMs, options.everyMs)
    for (const sql of plan.prepare) yield* run(c, "build dataset", sql)
    const hash = specHash(features)
    const source = {
      store: options.storeDir,
      symbols: options.symbols ?? null,
      from: options.from ?? null,
      to: options.to ?? null,
      firstTick: src.t0 ?? null,
      lastTick: src.t1 ?? null,
      ticks: src.n
    }
    const meta: Record<string, string> = {
      [META.spec]: specJson(features),
      [META.specHash]: hash,
      [META.horizonMs]: String(options.horizonMs),
      [META.every]: options.everyMs === undefined ? "tick" : String(options.everyMs),
      [META.source]: JSON.stringify(source),
      [META.label]: LABEL_DEFINITION
    }
    const tmp = join(dirname(options.out), `.${basename(options.out)}.tmp`)
    yield* run(
      c,
      "write dataset",
      `COPY (${plan.query}) TO ${sqlString(tmp)} (FORMAT parquet, COMPRESSION zstd, KV_METADATA {${
        Object.entries(meta).map(([k, v]) => `${k}: ${sqlString(v)}`).join(", ")
      }})`
    ).pipe(Effect.onError(() => Effect.promise(() => rm(tmp, { force: true }))))
    for (const sql of plan.cleanup) yield* run(c, "build dataset", sql)
    const [stats] = yield* rows(
      c,
      "build dataset",
      `SELECT count(*)::DOUBLE AS n, epoch_ms(min(ts))::DOUBLE AS t0, epoch_ms(max(ts))::DOUBLE AS t1, avg(label)::DOUBLE AS pos FROM read_parquet(${sqlString(tmp)})`
    ).pipe(Effect.onError(() => Effect.promise(() => rm(tmp, { force: true }))))
    yield* Effect.tryPromise({ try: () => rename(tmp, options.out), catch: (e) => e }).pipe(Effect.orDie)
    const result: DatasetResult = {
      rows: Number(stats.n),
      ticks: Number(src.n),
      firstTs: stats.t0 === null ? undefined : Number(stats.t0),
      lastTs: stats.t1 === null ? undefined : Number(stats.t1),
      positiveRate: stats.pos === null ? 0 : Number(stats.pos),
      specHash: hash
    }
    return result
  }).pipe(Effect.scoped, Effect.withSpan("Dataset.build"))
