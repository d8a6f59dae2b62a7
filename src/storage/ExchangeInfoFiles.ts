/**
 * The exchange's filters per UTC day, kept beside the ticks so a backtest applies the rules that were in force:
 * `<DATA_DIR>/exchangeInfo/<YYYY-MM-DD>.json`, in Binance's `GET /api/v3/exchangeInfo` format (only the fields the
 * order manager reads: status, assets, PRICE_FILTER, LOT_SIZE, NOTIONAL). A file fetched from Binance itself
 * (`curl …/api/v3/exchangeInfo > data/exchangeInfo/2024-05-01.json`) works as well.
 */
import { BigDecimal, Effect, Option, Schema } from "effect"
import { mkdir, readdir, readFile, rename, writeFile } from "node:fs/promises"
import { dirname, join } from "node:path"
import { ExchangeInfoWire } from "../exchange/BinanceCodec.ts"
import { Exchange, type SymbolRules } from "../exchange/Exchange.ts"
import { StoreError } from "./TickStore.ts"

export const EXCHANGE_INFO_DIR = "exchangeInfo"

export const exchangeInfoPath = (dataDir: string, date: string): string => join(dataDir, EXCHANGE_INFO_DIR, `${date}.json`)

const num = (x: BigDecimal.BigDecimal): string => BigDecimal.format(BigDecimal.normalize(x))

/** Rules as Binance's exchangeInfo JSON (what `toRules` decodes back to the same rules). */
export const exchangeInfoJson = (rules: ReadonlyArray<SymbolRules>): string =>
  JSON.stringify(
    {
      symbols: rules.map((r) => ({
        symbol: r.symbol,
        status: r.status,
        baseAsset: r.baseAsset,
        quoteAsset: r.quoteAsset,
        filters: [
          { filterType: "PRICE_FILTER", minPrice: num(r.minPrice), maxPrice: num(r.maxPrice), tickSize: num(r.tickSize) },
          { filterType: "LOT_SIZE", minQty: num(r.minQty), maxQty: num(r.maxQty), stepSize: num(r.stepSize) },
          { filterType: "NOTIONAL", minNotional: num(r.minNotional), applyMinToMarket: r.applyMinToMarket }
        ]
      }))
    },
    null,
    1
  )

const decodeInfo = Schema.decodeUnknownExit(Schema.fromJsonString(ExchangeInfoWire))

/** The days saved under `dir/exchangeInfo`, each decoded: date → raw symbols. Undecodable files are reported, not fatal. */
export const readExchangeInfoDir = (dir: string) =>
  Effect.tryPromise({
    try: async () => {
      const base = join(dir, EXCHANGE_INFO_DIR)
      const names = (await readdir(base)).filter((n) => /^\d{4}-\d{2}-\d{2}\.json$/.test(n)).sort()
      const days = new Map<string, typeof ExchangeInfoWire.Type>()
      const invalid: Array<string> = []
      for (const name of names) {
        const decoded = decodeInfo(await readFile(join(base, name), "utf8"))
        if (decoded._tag === "Success") days.set(name.slice(0, 10), decoded.value)
        else invalid.push(join(base, name))
      }
      return { days, invalid }
    },
    catch: (cause) => new StoreError({ operation: "read", path: dir, message: cause instanceof Error ? cause.message : String(cause) })
  })

/**
 * Saves each UTC day's exchangeInfo once, for the symbols the store wrote that day (again when a new symbol
 * appears). Needs the Exchange service; without one (a store-only process) it does nothing. A failed fetch or write
 * is logged and retried at the next file of that day; the store itself never waits for it or fails by it.
 */
export const makeExchangeInfoSaver = (dataDir: string) =>
  Effect.gen(function*() {
    const exchange = yield* Effect.serviceOption(Exchange)
    const saved = new Map<string, Set<string>>()
    const trying = new Set<string>()
    return (symbol: string, date: string): Effect.Effect<void> => {
      if (Option.isNone(exchange)) return Effect.void
      const symbols = saved.get(date)
      if ((symbols !== undefined && symbols.has(symbol)) || trying.has(date)) return Effect.void
      const want = [...(symbols ?? []), symbol].sort()
      trying.add(date)
      const path = exchangeInfoPath(dataDir, date)
      return exchange.value.exchangeInfo(want).pipe(
        Effect.flatMap((rules) =>
          Effect.tryPromise(async () => {
            await mkdir(dirname(path), { recursive: true })
            await writeFile(`${path}.tmp`, exchangeInfoJson(rules))
            await rename(`${path}.tmp`, path)
          })
        ),
        Effect.tap(() => Effect.sync(() => saved.set(date, new Set(want)))),
        Effect.tap(() => Effect.logDebug("exchangeInfo saved", { path, symbols: want })),
        Effect.catch((e) => Effect.logWarning("exchangeInfo not saved; will retry with the next file of the day", { date, error: String(e) })),
        Effect.ensuring(Effect.sync(() => trying.delete(date)))
      )
    }
  })
