/**
 * Bounded memories (ids already decided, fills already applied) forget their oldest entry once full. Reading the
 * oldest with `map.keys().next()` is O(deleted entries) in V8: a Map keeps deleted slots at its front until it is
 * rehashed, and a fresh iterator walks over them every time (a risk gate past its 10,000 remembered decisions spent
 * ~10 µs per decision there). One iterator kept per collection walks over each slot once.
 */
const cursors = new WeakMap<object, Iterator<unknown>>()

/**
 * Deletes the oldest entry (insertion order) of `collection` and returns its key; undefined when empty. Exactly what
 * `collection.delete(collection.keys().next().value)` does, in amortized O(1).
 */
export const forgetOldest = <K>(collection: Map<K, unknown> | Set<K>): K | undefined => {
  if (collection.size === 0) return undefined
  let cursor = cursors.get(collection) as Iterator<K> | undefined
  // every key before the cursor was deleted by this function, so its next key is the oldest one left; a
  // finished iterator stays finished (the collection was emptied meanwhile): start a new one
  let next = cursor?.next()
  if (next === undefined || next.done === true) {
    cursor = collection.keys()
    cursors.set(collection, cursor)
    next = cursor.next()
  }
  const key = next.value as K
  collection.delete(key)
  return key
}
