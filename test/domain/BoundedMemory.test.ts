/** forgetOldest keeps one iterator per collection: it must still delete exactly what `keys().next()` would. */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { forgetOldest } from "../../src/domain/BoundedMemory.ts"

type Op = { readonly op: "set" | "delete" | "forget" | "clear"; readonly key: number }
const op: fc.Arbitrary<Op> = fc.record({
  op: fc.constantFrom("set", "set", "set", "delete", "forget", "forget", "clear"),
  key: fc.nat({ max: 40 })
})

const naiveForget = <K>(c: Map<K, unknown> | Set<K>): K | undefined => {
  if (c.size === 0) return undefined
  const k = c.keys().next().value as K
  c.delete(k)
  return k
}

describe("forgetOldest", () => {
  it("on Maps and Sets, after any mix of set, re-set, delete, clear and forget, deletes the oldest key as keys().next() does", () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), fc.boolean(), (ops, asSet) => {
        const ours: Map<number, number> | Set<number> = asSet ? new Set() : new Map()
        const naive: Map<number, number> | Set<number> = asSet ? new Set() : new Map()
        for (const { key, op } of ops) {
          if (op === "set") {
            for (const c of [ours, naive]) c instanceof Set ? c.add(key) : c.set(key, key)
          } else if (op === "delete") {
            ours.delete(key)
            naive.delete(key)
          } else if (op === "clear") {
            ours.clear()
            naive.clear()
          } else expect(forgetOldest(ours)).toBe(naiveForget(naive))
          expect([...ours.keys()]).toEqual([...naive.keys()])
        }
      }),
      { numRuns: 500 }
    )
  })

  it("a bounded memory of 10,000 keys over 200,000 insertions keeps the newest 10,000, in order", () => {
    const m = new Map<string, number>()
    const wrong: Array<string> = []
    for (let i = 0; i < 200_000; i++) {
      m.set(`k${i}`, i)
      if (m.size > 10_000) {
        const forgotten = forgetOldest(m)
        if (forgotten !== `k${i - 10_000}`) wrong.push(`${i}: ${forgotten}`)
      }
    }
    expect(wrong.slice(0, 5)).toEqual([])
    expect(m.size).toBe(10_000)
    expect(m.keys().next().value).toBe("k190000")
  })
})
