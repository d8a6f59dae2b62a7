/**
 * The exchange filters a backtest applies: the store's saved exchangeInfo of each day (decoded by the same
 * `toRules` the live exchange client uses), found next to the replayed tree; or filters given as flags.
 */
import { Effect } from "effect"
import { stat } from "node:fs/promises"
import { dirname, join, resolve } from "node:path"
import type { SymbolRules } from "../exchange/Exchange.ts"
import { EXCHANGE_INFO_DIR, readExchangeInfoDir } from "../storage/ExchangeInfoFiles.ts"
import { noFilters, type RulesOf } from "./PaperExecution.ts"

const dayOf = (ts: number): string => new Date(ts).toISOString().slice(0, 10)

/** Rules by day: the day's own, else the latest earlier day's, else the earliest later day's; none: no filters. */
export const rulesByDay = (days: ReadonlyMap<string, ReadonlyMap<string, SymbolRules>>): RulesOf => {
  const sorted = [...days.keys()].sort()
  const cache = new Map<string, SymbolRules>()
  return (symbol, ts) => {
    const day = dayOf(ts)
    const key = `${symbol}/${day}`
    const hit = cache.get(key)
    if (hit !== undefined) return hit
    let found: SymbolRules | undefined = days.get(day)?.get(symbol)
    for (let i = sorted.length - 1; found === undefined && i >= 0; i--) if (sorted[i] <= day) found = days.get(sorted[i])?.get(symbol)
    for (let i = 0; found === undefined && i < sorted.length; i++) found = days.get(sorted[i])?.get(symbol)
    const rules = found ?? noFilters(symbol)
    cache.set(key, rules)
    return rules
  }
}

export interface SavedRules {
  /** The exchangeInfo directory found, or undefined. */
  readonly dir: string | undefined
  readonly days: ReadonlyMap<string, ReadonlyMap<string, SymbolRules>>
  /** Files that are not exchangeInfo JSON. */
  readonly invalid: ReadonlyArray<string>
}

const isDir = (p: string) => stat(p).then((s) => s.isDirectory(), () => false)

/** Looks for `exchangeInfo/` in the replayed path and up to four levels above it (`data/raw/symbol=…/date=…`). */
export const loadSavedRules = (path: string) =>
  Effect.gen(function*() {
    let dir = resolve(path)
    const isFile = yield* Effect.promise(() => stat(dir).then((s) => s.isFile(), () => false))
    if (isFile) dir = dirname(dir)
    for (let up = 0; up <= 4; up++) {
      if (yield* Effect.promise(() => isDir(join(dir, EXCHANGE_INFO_DIR)))) {
        const { days, invalid } = yield* readExchangeInfoDir(dir)
        // the live exchange client's decoder, loaded only when there is something to decode (it brings ws and more)
        const { toRules } = yield* Effect.promise(() => import("../../layers/BinanceExchange.ts"))
        const byDay = new Map<string, Map<string, SymbolRules>>()
        for (const [day, info] of days) byDay.set(day, new Map(info.symbols.map((s) => [s.symbol, toRules(s)])))
        return { dir: join(dir, EXCHANGE_INFO_DIR), days: byDay, invalid } satisfies SavedRules
      }
      const parent = dirname(dir)
      if (parent === dir) break
      dir = parent
    }
    return { dir: undefined, days: new Map(), invalid: [] } satisfies SavedRules
  })
