/**
 * The feature definitions, written once as small expression trees and compiled two ways: to DuckDB SQL window
 * queries (the dataset builder, the look-ahead check) and to TypeScript closures over a tick history (the live
 * signal path, replay). Tests hold both outputs equal, so a model sees in production exactly what it trained on.
 *
 * Every window counts trades, not time (like MA10/MA30 of the signal worker): the value at a tick depends on that
 * tick and the ones before it in (ts, trade_id) order, which the live worker and SQL's ROWS frames agree on.
 */
import { createHash } from "node:crypto"

/** Per-tick inputs: price, size, buy (1 when the taker bought, else 0), t (epoch ms). */
export type Column = "price" | "size" | "buy" | "t"

export type Expr =
  | { readonly op: "col"; readonly col: Column }
  | { readonly op: "num"; readonly value: number }
  | { readonly op: "add" | "sub" | "mul" | "div" | "mod"; readonly a: Expr; readonly b: Expr }
  | { readonly op: "ln" | "sin" | "cos"; readonly a: Expr }
  /** `a` as it was `n` trades ago. */
  | { readonly op: "lag"; readonly a: Expr; readonly n: number }
  /** `a` as it will be `n` trades later: a look-ahead. Exists so the look-ahead check has something to catch. */
  | { readonly op: "lead"; readonly a: Expr; readonly n: number }
  /** Over the last `n` trades including this one; undefined (NULL / NaN) until `n` values exist. */
  | { readonly op: "mean" | "sum" | "std"; readonly a: Expr; readonly n: number }

export const col = (c: Column): Expr => ({ op: "col", col: c })
export const num = (value: number): Expr => ({ op: "num", value })
const bin = (op: "add" | "sub" | "mul" | "div" | "mod") => (a: Expr | number, b: Expr | number): Expr => ({ op, a: lift(a), b: lift(b) })
const lift = (x: Expr | number): Expr => (typeof x === "number" ? num(x) : x)
export const add = bin("add")
export const sub = bin("sub")
export const mul = bin("mul")
export const div = bin("div")
export const mod = bin("mod")
export const ln = (a: Expr): Expr => ({ op: "ln", a })
export const sin = (a: Expr): Expr => ({ op: "sin", a })
export const cos = (a: Expr): Expr => ({ op: "cos", a })
export const lag = (a: Expr, n: number): Expr => ({ op: "lag", a, n })
export const lead = (a: Expr, n: number): Expr => ({ op: "lead", a, n })
export const mean = (a: Expr, n: number): Expr => ({ op: "mean", a, n })
export const sum = (a: Expr, n: number): Expr => ({ op: "sum", a, n })
export const std = (a: Expr, n: number): Expr => ({ op: "std", a, n })

export interface Feature {
  readonly name: string
  readonly expr: Expr
  readonly description: string
  /** Depends on the price level (not scale-free): in the dataset, but not trained on unless asked for. */
  readonly level?: boolean
}

const price = col("price")
const size = col("size")
const buy = col("buy")
const t = col("t")
const ma10 = mean(price, 10)
const ma30 = mean(price, 30)
const DAY_MS = 86_400_000
const tod = div(mod(t, DAY_MS), DAY_MS)

/** Our features, in dataset column order. Changing any definition changes SPEC_HASH, which stales old models. */
export const FEATURES: ReadonlyArray<Feature> = [
  { name: "price", expr: price, description: "trade price", level: true },
  { name: "ma10", expr: ma10, description: "mean of the last 10 trade prices (the signal worker's MA10)", level: true },
  { name: "ma30", expr: ma30, description: "mean of the last 30 trade prices (the signal worker's MA30)", level: true },
  { name: "delta", expr: sub(price, lag(price, 1)), description: "price − previous trade price", level: true },
  { name: "price_vs_ma30", expr: div(sub(price, ma30), ma30), description: "(price − ma30) / ma30" },
  { name: "ma_spread", expr: div(sub(ma10, ma30), ma30), description: "(ma10 − ma30) / ma30: what the crossover looks at" },
  { name: "ret1", expr: sub(div(price, lag(price, 1)), 1), description: "return over the last trade" },
  { name: "ret10", expr: sub(div(price, lag(price, 10)), 1), description: "return over the last 10 trades" },
  { name: "ret29", expr: sub(div(price, lag(price, 29)), 1), description: "return across the 30-trade window (29 steps)" },
  { name: "vol29", expr: std(ln(div(price, lag(price, 1))), 29), description: "population std of the 29 log returns in the 30-trade window" },
  { name: "rel_size", expr: div(size, mean(size, 30)), description: "trade size / mean size of the last 30 trades" },
  {
    name: "imbalance30",
    expr: div(sub(mul(sum(mul(size, buy), 30), 2), sum(size, 30)), sum(size, 30)),
    description: "(taker buy volume − taker sell volume) / volume over the last 30 trades"
  },
  { name: "span30_s", expr: div(sub(t, lag(t, 29)), 1000), description: "seconds spanned by the last 30 trades (trade intensity)" },
  { name: "tod_sin", expr: sin(mul(tod, 2 * Math.PI)), description: "time of day (UTC), sine" },
  { name: "tod_cos", expr: cos(mul(tod, 2 * Math.PI)), description: "time of day (UTC), cosine" }
]

/** Feature columns a model trains on by default: the scale-free ones. */
export const DEFAULT_TRAINING_FEATURES: ReadonlyArray<string> = FEATURES.filter((f) => f.level !== true).map((f) => f.name)

/** Rows before this many trades of a symbol are left out of datasets (MA30 needs 30). */
export const MIN_TRADES = 30

export const SPEC_VERSION = 1

/** The spec as stored in a dataset's metadata: names, descriptions and the expression trees. */
export const specJson = (features: ReadonlyArray<Feature> = FEATURES): string =>
  JSON.stringify({ version: SPEC_VERSION, features: features.map((f) => ({ name: f.name, expr: f.expr, description: f.description, ...(f.level === true ? { level: true } : {}) })) })

/** A short hash of what the features compute (names and expressions, not descriptions). */
export const specHash = (features: ReadonlyArray<Feature> = FEATURES): string =>
  createHash("sha256")
    .update(JSON.stringify({ version: SPEC_VERSION, features: features.map((f) => [f.name, f.expr]) }))
    .digest("hex")
    .slice(0, 16)

export const SPEC_HASH = specHash()

export const featureByName = (name: string, features: ReadonlyArray<Feature> = FEATURES): Feature | undefined =>
  features.find((f) => f.name === name)

/** How many earlier trades an expression reads (0: only the current one). */
export const lookback = (e: Expr): number => {
  switch (e.op) {
    case "col":
    case "num":
      return 0
    case "add":
    case "sub":
    case "mul":
    case "div":
    case "mod":
      return Math.max(lookback(e.a), lookback(e.b))
    case "ln":
    case "sin":
    case "cos":
    case "lead":
      return lookback(e.a)
    case "lag":
      return e.n + lookback(e.a)
    case "mean":
    case "sum":
    case "std":
      return e.n - 1 + lookback(e.a)
  }
}

// ---------------------------------------------------------------------------------------------------------------
// TypeScript evaluation

/**
 * Read access to a symbol's ticks as seen from "now": `back` = 0 is the current tick, 1 the one before; a negative
 * `back` is the future (a live history has none and answers NaN). NaN when out of range.
 */
export interface History {
  readonly get: (column: Column, back: number) => number
}

export type Evaluator = (h: History, back: number) => number

/** Compiles an expression to a closure; `(h, 0)` is its value at the current tick. */
export const compile = (e: Expr): Evaluator => {
  switch (e.op) {
    case "col": {
      const c = e.col
      return (h, back) => h.get(c, back)
    }
    case "num": {
      const v = e.value
      return () => v
    }
    case "add": {
      const a = compile(e.a), b = compile(e.b)
      return (h, k) => a(h, k) + b(h, k)
    }
    case "sub": {
      const a = compile(e.a), b = compile(e.b)
      return (h, k) => a(h, k) - b(h, k)
    }
    case "mul": {
      const a = compile(e.a), b = compile(e.b)
      return (h, k) => a(h, k) * b(h, k)
    }
    case "div": {
      // SQL answers NULL for x / 0; so does this (NaN)
      const a = compile(e.a), b = compile(e.b)
      return (h, k) => {
        const d = b(h, k)
        return d === 0 ? Number.NaN : a(h, k) / d
      }
    }
    case "mod": {
      const a = compile(e.a), b = compile(e.b)
      return (h, k) => a(h, k) % b(h, k)
    }
    case "ln": {
      const a = compile(e.a)
      return (h, k) => Math.log(a(h, k))
    }
    case "sin": {
      const a = compile(e.a)
      return (h, k) => Math.sin(a(h, k))
    }
    case "cos": {
      const a = compile(e.a)
      return (h, k) => Math.cos(a(h, k))
    }
    case "lag": {
      const a = compile(e.a), n = e.n
      return (h, k) => a(h, k + n)
    }
    case "lead": {
      const a = compile(e.a), n = e.n
      return (h, k) => a(h, k - n)
    }
    case "mean":
    case "sum": {
      const a = compile(e.a), n = e.n, isMean = e.op === "mean"
      return (h, k) => {
        let s = 0
        for (let j = 0; j < n; j++) s += a(h, k + j)
        return isMean ? s / n : s
      }
    }
    case "std": {
      const a = compile(e.a), n = e.n
      return (h, k) => {
        let s = 0
        for (let j = 0; j < n; j++) s += a(h, k + j)
        const m = s / n
        let v = 0
        for (let j = 0; j < n; j++) {
          const d = a(h, k + j) - m
          v += d * d
        }
        return Math.sqrt(v / n)
      }
    }
  }
}

/** A history over whole arrays of one symbol's ticks (tests, checks), positioned at index `at`. */
export interface TickArrays {
  readonly price: ArrayLike<number>
  readonly size: ArrayLike<number>
  readonly buy: ArrayLike<number>
  readonly t: ArrayLike<number>
}

export const arrayHistory = (arrays: TickArrays, at: number, from = 0): History => ({
  get: (column, back) => {
    const i = at - back
    return i < from || i >= arrays[column].length ? Number.NaN : arrays[column][i]
  }
})

/**
 * Per-symbol ring buffers of the last `capacity` ticks: what the live path needs to evaluate features. Push each
 * accepted tick (after de-duplication); `history(symbol)` reads as of the last pushed tick.
 */
export const makeTickHistory = (capacity: number) => {
  interface Ring {
    readonly cols: Record<Column, Float64Array>
    head: number
    count: number
  }
  const rings = new Map<string, Ring>()
  const cap = Math.max(1, capacity)
  const push = (symbol: string, p: number, s: number, b: number, time: number): void => {
    let r = rings.get(symbol)
    if (r === undefined) {
      r = { cols: { price: new Float64Array(cap), size: new Float64Array(cap), buy: new Float64Array(cap), t: new Float64Array(cap) }, head: 0, count: 0 }
      rings.set(symbol, r)
    }
    r.cols.price[r.head] = p
    r.cols.size[r.head] = s
    r.cols.buy[r.head] = b
    r.cols.t[r.head] = time
    r.head = (r.head + 1) % cap
    r.count++
  }
  const history = (symbol: string): History | undefined => {
    const r = rings.get(symbol)
    if (r === undefined) return undefined
    return {
      get: (column, back) =>
        back < 0 || back >= cap || back >= r.count ? Number.NaN : r.cols[column][(r.head - 1 - back + 2 * cap) % cap]
    }
  }
  return { push, history }
}

// ---------------------------------------------------------------------------------------------------------------
// SQL compilation

const sqlNumber = (v: number): string => (Number.isInteger(v) ? `${v}.0` : v.toPrecision(17))

/** Window nesting depth: SQL cannot nest window functions, so each depth becomes one query stage. */
const depth = (e: Expr): number => {
  switch (e.op) {
    case "col":
    case "num":
      return 0
    case "add":
    case "sub":
    case "mul":
    case "div":
    case "mod":
      return Math.max(depth(e.a), depth(e.b))
    case "ln":
    case "sin":
    case "cos":
      return depth(e.a)
    default:
      return 1 + depth(e.a)
  }
}

export interface SqlPlan {
  /**
   * Window stages over the base relation: each `SELECT *, <windows> FROM <previous>`, one sort each. The first
   * holds `rn` (row number per symbol in (t, trade_id) order) and lags of plain columns; the aggregates, which
   * test `rn` for a full frame, come after it.
   */
  readonly stages: ReadonlyArray<ReadonlyArray<string>>
  /** `<expr> AS "<name>"` per feature, over the last stage's columns. */
  readonly selects: ReadonlyArray<string>
}

const ORDER = "PARTITION BY symbol ORDER BY t, trade_id"
/** After the first stage: `rn` follows (t, trade_id) within a symbol, and one integer key sorts much faster. */
const BY_RN = "PARTITION BY symbol ORDER BY rn"

/**
 * Compiles features to SQL over a relation with columns symbol, trade_id, t, price, size, buy. Identical window
 * subexpressions are computed once. Division by zero is NULL (DuckDB's default) and NaN in TypeScript.
 *
 * Every stage is a sort of all the columns it carries, so: as few stages as the nesting allows (a lag of plain
 * columns sits beside `rn` in the first), and each window in the last stage it can be in (just before the first
 * window that reads it, else the final one), so the early stages carry few columns.
 */
export const compileSql = (features: ReadonlyArray<Feature>): SqlPlan => {
  interface Win {
    readonly name: string
    readonly e: Extract<Expr, { n: number }>
    readonly arg: string
    /** The earliest stage (1-based) it can be computed in. */
    readonly earliest: number
    readonly reads: ReadonlySet<string>
  }
  const windows = new Map<string, Win>()
  // [sql, the stage after which its value exists (0: in the base relation), the windows it reads]
  type Out = readonly [string, number, ReadonlySet<string>]
  const none: ReadonlySet<string> = new Set()
  const join2 = (a: Out, b: Out, f: (x: string, y: string) => string): Out => [f(a[0], b[0]), Math.max(a[1], b[1]), new Set([...a[2], ...b[2]])]
  const map1 = (a: Out, f: (x: string) => string): Out => [f(a[0]), a[1], a[2]]
  const sqlOf = (e: Expr): Out => {
    switch (e.op) {
      case "col":
        return [e.col, 0, none]
      case "num":
        return [sqlNumber(e.value), 0, none]
      case "add":
        return join2(sqlOf(e.a), sqlOf(e.b), (a, b) => `(${a} + ${b})`)
      case "sub":
        return join2(sqlOf(e.a), sqlOf(e.b), (a, b) => `(${a} - ${b})`)
      case "mul":
        return join2(sqlOf(e.a), sqlOf(e.b), (a, b) => `(${a} * ${b})`)
      case "div":
        return join2(sqlOf(e.a), sqlOf(e.b), (a, b) => `(${a} / NULLIF(${b}, 0.0))`)
      case "mod":
        return join2(sqlOf(e.a), sqlOf(e.b), (a, b) => `fmod(${a}, ${b})`)
      case "ln":
        return map1(sqlOf(e.a), (a) => `ln(${a})`)
      case "sin":
        return map1(sqlOf(e.a), (a) => `sin(${a})`)
      case "cos":
        return map1(sqlOf(e.a), (a) => `cos(${a})`)
      default: {
        const key = JSON.stringify(e)
        const known = windows.get(key)
        if (known !== undefined) return [known.name, known.earliest, new Set([known.name])]
        const [arg, level, reads] = sqlOf(e.a)
        // aggregates test rn, which exists after the first stage
        const earliest = e.op === "lag" || e.op === "lead" ? level + 1 : Math.max(2, level + 1)
        const name = `_w${windows.size}`
        windows.set(key, { name, e, arg, earliest, reads })
        return [name, earliest, new Set([name])]
      }
    }
  }
  const selects = features.map((f) => `${sqlOf(f.expr)[0]} AS "${f.name.replaceAll("\"", "")}"`)
  const all = [...windows.values()]
  const last = Math.max(1, ...all.map((w) => w.earliest))
  const stageOf = new Map<string, number>()
  for (const w of [...all].sort((a, b) => b.earliest - a.earliest)) {
    const consumers = all.filter((c) => c.reads.has(w.name)).map((c) => stageOf.get(c.name)!)
    stageOf.set(w.name, Math.min(last, ...consumers.map((st) => st - 1)))
  }
  const sqlOfWindow = (w: Win, stage: number): string => {
    const { arg, e } = w
    const order = stage === 1 ? ORDER : BY_RN
    if (e.op === "lag") return `lag(${arg}, ${e.n}) OVER (${order})`
    if (e.op === "lead") return `lead(${arg}, ${e.n}) OVER (${order})`
    // NULL until the frame holds n defined values, as the TypeScript side (NaN) and the signal worker (nothing
    // before 30): the argument is defined from trade lookback(a) + 1 on, so the frame is full from trade
    // lookback(a) + n (a row-number test: cheaper than a second, counting window)
    const agg = e.op === "mean" ? "avg" : e.op === "sum" ? "sum" : "stddev_pop"
    return `CASE WHEN rn >= ${lookback(e.a) + e.n} THEN ${agg}(${arg}) OVER (${BY_RN} ROWS BETWEEN ${e.n - 1} PRECEDING AND CURRENT ROW) END`
  }
  const stages: Array<Array<string>> = []
  for (let st = 1; st <= last; st++) {
    const cols = all.filter((w) => stageOf.get(w.name) === st).map((w) => `${sqlOfWindow(w, st)} AS ${w.name}`)
    stages.push(st === 1 ? [`row_number() OVER (${ORDER}) AS rn`, ...cols] : cols)
  }
  return { stages: stages.filter((cols) => cols.length > 0), selects }
}

/** The whole feature query over `base` (a relation or CTE name): one row per tick with symbol, trade_id, t, rn. */
export const featureSql = (base: string, features: ReadonlyArray<Feature>, extraColumns: ReadonlyArray<string> = []): string => {
  const plan = compileSql(features)
  const ctes = plan.stages.map((cols, i) => `_s${i + 1} AS (SELECT *, ${cols.join(", ")} FROM ${i === 0 ? base : `_s${i}`})`)
  const extra = extraColumns.length > 0 ? `, ${extraColumns.join(", ")}` : ""
  return `WITH ${ctes.join(",\n")}\nSELECT symbol, trade_id, t, rn${extra}, ${plan.selects.join(", ")} FROM _s${plan.stages.length}`
}

