/**
 * Binance HMAC request signing, shared by the order client and the simulated exchange so both sides agree
 * byte for byte. Binance signs `totalParams`: the query string concatenated (no separator) with the
 * x-www-form-urlencoded body, without the `signature` parameter itself; the signature is lowercase hex
 * HMAC-SHA256 keyed with the API secret, compared case-insensitively.
 */
import { createHmac, createSecretKey, type KeyObject, timingSafeEqual } from "node:crypto"

export const hmacSha256Hex = (payload: string, secret: string): string =>
  createHmac("sha256", secret).update(payload, "utf8").digest("hex")

/** Numbers never go out in exponent form ("1e-7"), which Binance rejects as illegal characters. */
const paramValue = (value: string | number): string => {
  if (typeof value === "string") return value
  const text = String(value)
  return /e/i.test(text) ? value.toLocaleString("en-US", { useGrouping: false, maximumFractionDigits: 20 }) : text
}

/** `k=v&k=v` in insertion order, percent-encoded (RFC 3986 via encodeURIComponent). */
export const encodeParams = (params: Record<string, string | number>): string =>
  Object.entries(params)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(paramValue(value))}`)
    .join("&")

/** The full signed query string: the encoded params followed by `&signature=<hex>`. */
export const signedQuery = (params: Record<string, string | number>, secret: string): string => {
  const query = encodeParams(params)
  const signature = hmacSha256Hex(query, secret)
  return query === "" ? `signature=${signature}` : `${query}&signature=${signature}`
}

/**
 * `signedQuery` with the secret turned into a key object once (the order path signs every request with the same
 * secret; a string key is converted on every `createHmac`).
 */
export const signer = (secret: string): (params: Record<string, string | number>) => string => {
  const key: KeyObject = createSecretKey(Buffer.from(secret, "utf8"))
  return (params) => {
    const query = encodeParams(params)
    const signature = createHmac("sha256", key).update(query, "utf8").digest("hex")
    return query === "" ? `signature=${signature}` : `${query}&signature=${signature}`
  }
}

/** True when `signature` (hex, any case) is the HMAC of `totalParams` under `secret`. Constant-time compare. */
export const verifySignature = (totalParams: string, signature: string, secret: string): boolean => {
  const given = signature.toLowerCase()
  if (!/^[0-9a-f]{64}$/.test(given)) return false
  const expected = hmacSha256Hex(totalParams, secret)
  return timingSafeEqual(Buffer.from(expected, "hex"), Buffer.from(given, "hex"))
}
