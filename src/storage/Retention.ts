/**
 * Retention: deletes whole `date=YYYY-MM-DD` partitions whose day ended more than `retentionDays` ago (UTC),
 * on a Clock-driven schedule, and logs each removal. Only directories named like our partitions are touched.
 */
import { Clock, Duration, Effect, Schedule } from "effect"
import { readdir, rm } from "node:fs/promises"
import { join } from "node:path"
import { StoreError } from "./TickStore.ts"

const DAY = 86_400_000
const DATE_DIR = /^date=(\d{4}-\d{2}-\d{2})$/
const SYMBOL_DIR = /^symbol=[A-Z0-9]{2,20}$/

/** The first UTC date kept: partitions dated before it are expired. */
export const retentionCutoff = (now: number, retentionDays: number): string =>
  new Date(Math.floor(now / DAY) * DAY - Math.floor(retentionDays) * DAY).toISOString().slice(0, 10)

export const isExpired = (dirName: string, cutoff: string): boolean => {
  const m = DATE_DIR.exec(dirName)
  return m !== null && m[1] < cutoff
}

/** Deletes expired partitions under `<dataDir>/raw` once; returns the removed paths. */
export const sweep = (dataDir: string, retentionDays: number) =>
  Effect.gen(function*() {
    const now = yield* Clock.currentTimeMillis
    const cutoff = retentionCutoff(now, retentionDays)
    const root = join(dataDir, "raw")
    const removed = yield* Effect.tryPromise({
      try: async () => {
        const out: Array<string> = []
        let symbols: Array<string>
        try {
          symbols = await readdir(root)
        } catch {
          return out
        }
        for (const s of symbols) {
          if (!SYMBOL_DIR.test(s)) continue
          const dates = await readdir(join(root, s)).catch(() => [] as Array<string>)
          for (const d of dates) {
            if (!isExpired(d, cutoff)) continue
            const p = join(root, s, d)
            await rm(p, { recursive: true, force: true })
            out.push(p)
          }
        }
        return out
      },
      catch: (cause) => new StoreError({ operation: "retention", path: root, message: String(cause) })
    })
    for (const p of removed) yield* Effect.logInfo("retention removed partition", { path: p, cutoff, retentionDays })
    return removed
  })

/** Sweeps now and then every `every`, forever; a failed sweep is logged and retried on the next round. */
export const runRetention = (options: { readonly dataDir: string; readonly retentionDays: number; readonly every: Duration.Duration }) =>
  sweep(options.dataDir, options.retentionDays).pipe(
    Effect.catch((e) => Effect.logError("retention sweep failed", { error: e.message, path: e.path })),
    Effect.repeat(Schedule.spaced(options.every)),
    Effect.asVoid,
    Effect.annotateLogs({ component: "retention" })
  )
