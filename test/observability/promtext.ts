/**
 * A strict parser of Prometheus's text exposition format 0.0.4
 * (https://prometheus.io/docs/instrumenting/exposition_formats/) and the naming rules `promtool check metrics`
 * applies (client_golang's promlint), plus this project's own (src/observability/Metrics.ts). Any deviation from
 * the format is a thrown error naming the line; lint findings are returned as promtool words them.
 */

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

export type MetricType = "counter" | "gauge" | "histogram" | "summary" | "untyped"

export interface Family {
  readonly name: string
  type: MetricType
  help: string | undefined
  readonly samples: Array<Sample>
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set<MetricType>(["counter", "gauge", "histogram", "summary", "untyped"])

const parseValue = (text: string, where: string): number => {
  if (text === "NaN") return Number.NaN
  if (text === "+Inf" || text === "Inf") return Number.POSITIVE_INFINITY
  if (text === "-Inf") return Number.NEGATIVE_INFINITY
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(text)) throw new Error(`${where}: "${text}" is not a float`)
  return Number(text)
}

/** The family a sample belongs to: histogram/summary samples carry `_bucket`, `_sum`, `_count` suffixes. */
const familyOf = (name: string, families: ReadonlyMap<string, Family>): string => {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    if (name.endsWith(suffix)) {
      const base = name.slice(0, -suffix.length)
      const f = families.get(base)
      if (f !== undefined && (f.type === "histogram" || (f.type === "summary" && suffix !== "_bucket"))) return base
    }
  }
  return name
}

const parseLabels = (text: string, where: string): { labels: Record<string, string>; rest: string } => {
  const labels: Record<string, string> = {}
  let i = 1 // after "{"
  const skipSpaces = () => {
    while (text[i] === " " || text[i] === "\t") i++
  }
  skipSpaces()
  while (text[i] !== "}") {
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(text.slice(i))
    if (m === null) throw new Error(`${where}: bad label name at "${text.slice(i, i + 20)}"`)
    const name = m[0]
    i += name.length
    skipSpaces()
    if (text[i] !== "=") throw new Error(`${where}: expected "=" after label ${name}`)
    i++
    skipSpaces()
    if (text[i] !== "\"") throw new Error(`${where}: label ${name} value must be quoted`)
    i++
    let value = ""
    while (true) {
      const c = text[i]
      if (c === undefined) throw new Error(`${where}: unterminated label value`)
      if (c === "\"") break
      if (c === "\\") {
        const next = text[i + 1]
        if (next === "\\") value += "\\"
        else if (next === "\"") value += "\""
        else if (next === "n") value += "\n"
        else throw new Error(`${where}: invalid escape \\${next} in label ${name}`)
        i += 2
      } else {
        value += c
        i++
      }
    }
    i++
    if (name in labels) throw new Error(`${where}: label ${name} repeated`)
    labels[name] = value
    skipSpaces()
    if (text[i] === ",") {
      i++
      skipSpaces()
    } else if (text[i] !== "}") throw new Error(`${where}: expected "," or "}" after label ${name}`)
  }
  return { labels, rest: text.slice(i + 1) }
}

/** Parses `text`; throws on the first violation of the format. */
export const parseExposition = (text: string): Map<string, Family> => {
  if (text.length > 0 && !text.endsWith("\n")) throw new Error("the last line must end with a line feed")
  const families = new Map<string, Family>()
  const seriesSeen = new Set<string>()
  const closed = new Set<string>() // families whose samples ended: they may not reappear (samples are grouped)
  let current: string | undefined
  const lines = text.split("\n").slice(0, -1)
  const family = (name: string): Family => {
    let f = families.get(name)
    if (f === undefined) {
      f = { name, type: "untyped", help: undefined, samples: [] }
      families.set(name, f)
    }
    return f
  }
  const enter = (name: string, where: string) => {
    if (current === name) return
    if (closed.has(name)) throw new Error(`${where}: samples of ${name} are not grouped together`)
    if (current !== undefined) closed.add(current)
    current = name
  }
  lines.forEach((line, index) => {
    const where = `line ${index + 1}`
    if (line.trim() === "") return
    if (line.startsWith("#")) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line)
      if (m === null) return // a plain comment
      const [, keyword, name, rest = ""] = m
      if (!METRIC_NAME.test(name)) throw new Error(`${where}: invalid metric name "${name}"`)
      enter(name, where)
      const f = family(name)
      if (keyword === "HELP") {
        if (f.help !== undefined) throw new Error(`${where}: second HELP line for ${name}`)
        f.help = rest.replace(/\\n/g, "\n").replace(/\\\\/g, "\\")
      } else {
        if (f.samples.length > 0) throw new Error(`${where}: TYPE line for ${name} after its samples`)
        if (!TYPES.has(rest.trim() as MetricType)) throw new Error(`${where}: unknown type "${rest}"`)
        if ((f as { typed?: boolean }).typed === true) throw new Error(`${where}: second TYPE line for ${name}`)
        ;(f as { typed?: boolean }).typed = true
        f.type = rest.trim() as MetricType
      }
      return
    }
    const nm = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)
    if (nm === null) throw new Error(`${where}: a sample must start with a metric name: "${line.slice(0, 40)}"`)
    const name = nm[0]
    let rest = line.slice(name.length)
    let labels: Record<string, string> = {}
    if (rest.startsWith("{")) ({ labels, rest } = parseLabels(rest, where))
    const parts = rest.trim().split(/[ \t]+/)
    if (!/^[ \t]/.test(rest) || parts.length < 1 || parts.length > 2) throw new Error(`${where}: expected "value [timestamp]" after the name`)
    const value = parseValue(parts[0], where)
    if (parts.length === 2 && !/^-?\d+$/.test(parts[1])) throw new Error(`${where}: timestamp "${parts[1]}" is not an integer`)
    const base = familyOf(name, families)
    enter(base, where)
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`
    if (seriesSeen.has(key)) throw new Error(`${where}: duplicate series ${name}${JSON.stringify(labels)}`)
    seriesSeen.add(key)
    family(base).samples.push({ name, labels, value })
  })
  for (const f of families.values()) checkFamily(f)
  return families
}

const seriesKey = (labels: Readonly<Record<string, string>>, without: string) =>
  JSON.stringify(Object.entries(labels).filter(([k]) => k !== without).sort())

/** The invariants of a family's samples: counters non-negative, histograms cumulative with +Inf = _count. */
const checkFamily = (f: Family): void => {
  if (f.type === "counter") {
    for (const s of f.samples) {
      if (s.name !== f.name) throw new Error(`${f.name}: counter sample named ${s.name}`)
      if (!(s.value >= 0)) throw new Error(`${f.name}: counter value ${s.value} is negative or NaN`)
    }
  }
  if (f.type === "histogram") {
    const series = new Map<string, { buckets: Array<[number, number]>; count?: number; sum?: number }>()
    for (const s of f.samples) {
      const key = seriesKey(s.labels, "le")
      const entry = series.get(key) ?? { buckets: [] }
      series.set(key, entry)
      if (s.name === `${f.name}_bucket`) {
        const le = s.labels.le
        if (le === undefined) throw new Error(`${f.name}: bucket without le`)
        entry.buckets.push([parseValue(le, f.name), s.value])
      } else if (s.name === `${f.name}_count`) entry.count = s.value
      else if (s.name === `${f.name}_sum`) entry.sum = s.value
      else throw new Error(`${f.name}: unexpected histogram sample ${s.name}`)
    }
    for (const [key, e] of series) {
      const last = e.buckets.at(-1)
      if (last === undefined || last[0] !== Number.POSITIVE_INFINITY) throw new Error(`${f.name}${key}: no +Inf bucket last`)
      if (e.count === undefined || e.sum === undefined) throw new Error(`${f.name}${key}: missing _count or _sum`)
      if (last[1] !== e.count) throw new Error(`${f.name}${key}: +Inf bucket ${last[1]} differs from _count ${e.count}`)
      for (let i = 1; i < e.buckets.length; i++) {
        if (!(e.buckets[i][0] > e.buckets[i - 1][0])) throw new Error(`${f.name}${key}: bucket bounds not increasing`)
        if (e.buckets[i][1] < e.buckets[i - 1][1]) throw new Error(`${f.name}${key}: bucket counts not cumulative`)
      }
    }
  }
}

// promlint's tables (client_golang prometheus/testutil/promlint)
const BASE_UNITS: Record<string, string> = {
  amperes: "amperes", bytes: "bytes", celsius: "celsius", grams: "grams", joules: "joules", kelvin: "kelvin",
  meters: "meters", metric: "metric", seconds: "seconds", volts: "volts",
  minutes: "seconds", hours: "seconds", days: "seconds", weeks: "seconds", kelvins: "kelvin", fahrenheit: "celsius",
  rankine: "celsius", inches: "meters", yards: "meters", miles: "meters", bits: "bytes", calories: "joules",
  pounds: "grams", ounces: "grams"
}
const UNIT_PREFIXES = ["pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega", "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi"]
const UNIT_ABBREVIATIONS = new Set(["s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"])

/** promtool's findings for one family, in its words. */
export const promlint = (f: Family): Array<string> => {
  const problems: Array<string> = []
  const tokens = f.name.split("_")
  if (f.help === undefined || f.help.trim() === "") problems.push("no help text")
  for (const token of tokens) {
    for (const prefix of ["", ...UNIT_PREFIXES]) {
      if (!token.startsWith(prefix)) continue
      const unit = BASE_UNITS[token.slice(prefix.length)]
      if (unit !== undefined && (prefix !== "" || unit !== token)) problems.push(`use base unit "${unit}" instead of "${token}"`)
    }
  }
  if (f.type === "counter" && !f.name.endsWith("_total")) problems.push(`counter metrics should have "_total" suffix`)
  if (f.type !== "counter" && f.name.endsWith("_total")) problems.push(`non-counter metrics should not have "_total" suffix`)
  if (f.type !== "histogram") {
    if (f.name.endsWith("_bucket")) problems.push(`non-histogram metrics should not have "_bucket" suffix`)
    if (f.samples.some((s) => "le" in s.labels)) problems.push(`non-histogram metrics should not have "le" label`)
  }
  if (f.type !== "histogram" && f.type !== "summary") {
    if (f.name.endsWith("_count")) problems.push(`non-histogram and non-summary metrics should not have "_count" suffix`)
    if (f.name.endsWith("_sum")) problems.push(`non-histogram and non-summary metrics should not have "_sum" suffix`)
  }
  if (f.type !== "summary" && f.samples.some((s) => "quantile" in s.labels)) problems.push(`non-summary metrics should not have "quantile" label`)
  for (const type of ["counter", "gauge", "histogram", "summary", "untyped"]) {
    if (tokens.includes(type)) problems.push(`metric name should not include type '${type}'`)
  }
  if (f.name.includes(":")) problems.push("metric names should not contain ':'")
  if (/[A-Z]/.test(f.name)) problems.push("metric names should be written in 'snake_case' not 'camelCase'")
  if (f.samples.some((s) => Object.keys(s.labels).some((l) => /[A-Z]/.test(l)))) {
    problems.push("label names should be written in 'snake_case' not 'camelCase'")
  }
  if (tokens.some((t) => UNIT_ABBREVIATIONS.has(t))) problems.push("metric names should not contain abbreviated units")
  return problems
}

/** This project's conventions on top of promtool's (src/observability/Metrics.ts). */
export const projectLint = (f: Family, latencyBuckets: ReadonlyArray<number>): Array<string> => {
  const problems: Array<string> = []
  const prefix = f.name.split("_")[0]
  // dead_letters_total{stage,reason} spans every area (issue #10 names it): the stage label says whose
  if (f.name !== "dead_letters_total" && !["ingest", "signals", "risk", "orders", "store", "bus", "exchange", "telegram", "replay", "ml", "sim", "process", "nodejs"].includes(prefix)) {
    problems.push(`"${prefix}_" is not one of the areas' prefixes`)
  }
  if (f.type === "histogram" && f.name.endsWith("_seconds") && /(?:^|_)to_|latency|duration/.test(f.name)) {
    const bounds = [...new Set(f.samples.filter((s) => s.name.endsWith("_bucket")).map((s) => s.labels.le))]
      .filter((le) => le !== "+Inf")
      .map(Number)
    if (bounds.length > 0 && JSON.stringify(bounds) !== JSON.stringify(latencyBuckets)) {
      problems.push(`latency buckets ${bounds.join(",")} are not the shared 100µs..10s set`)
    }
  }
  const allowed = new Set(["symbol", "side", "reason", "stage", "group", "topic", "kind", "command", "outcome", "method", "le", "quantile"])
  for (const s of f.samples) {
    for (const label of Object.keys(s.labels)) if (!allowed.has(label)) problems.push(`label "${label}" is not one of ${[...allowed].join(", ")}`)
  }
  return [...new Set(problems)]
}
