/**
 * Request parameters as Binance reads them: query string and x-www-form-urlencoded body, mixed freely,
 * the query string winning when a name appears in both; the same name twice in one source is an error.
 * Also the HTTP-level error type every REST rule answers with.
 */

/** A Binance error answer: `{"code":…,"msg":"…"}` with its HTTP status. */
export class BinanceError extends Error {
  readonly status: number
  readonly code: number
  readonly headers: Readonly<Record<string, string>>
  constructor(status: number, code: number, msg: string, headers: Readonly<Record<string, string>> = {}) {
    super(msg)
    this.status = status
    this.code = code
    this.headers = headers
  }
  body(): { readonly code: number; readonly msg: string } {
    return { code: this.code, msg: this.message }
  }
}

export const badRequest = (code: number, msg: string): BinanceError => new BinanceError(400, code, msg)

export const mandatory = (name: string): BinanceError =>
  badRequest(-1102, `Mandatory parameter '${name}' was not sent, was empty/null, or malformed.`)

export const illegalChars = (name: string, range: string): BinanceError =>
  badRequest(-1100, `Illegal characters found in parameter '${name}'; legal range is '${range}'.`)

export const notRequired = (name: string): BinanceError => badRequest(-1106, `Parameter '${name}' sent when not required.`)

export const invalidSymbol = (): BinanceError => badRequest(-1121, "Invalid symbol.")

export interface Params {
  readonly get: (name: string) => string | undefined
  readonly has: (name: string) => boolean
  readonly names: ReadonlyArray<string>
}

const splitPairs = (raw: string): Array<[string, string]> => {
  const pairs: Array<[string, string]> = []
  for (const piece of raw.split("&")) {
    if (piece === "") continue
    const eq = piece.indexOf("=")
    const rawKey = eq === -1 ? piece : piece.slice(0, eq)
    const rawValue = eq === -1 ? "" : piece.slice(eq + 1)
    try {
      pairs.push([decodeURIComponent(rawKey.replace(/\+/g, " ")), decodeURIComponent(rawValue.replace(/\+/g, " "))])
    } catch {
      throw badRequest(-1100, "Illegal characters found in a parameter.")
    }
  }
  return pairs
}

const fromSource = (raw: string): Map<string, string> => {
  const map = new Map<string, string>()
  for (const [key, value] of splitPairs(raw)) {
    if (map.has(key)) throw badRequest(-1101, "Duplicate values for a parameter detected.")
    map.set(key, value)
  }
  return map
}

export const parseParams = (rawQuery: string, rawBody: string): Params => {
  const merged = fromSource(rawBody)
  for (const [key, value] of fromSource(rawQuery)) merged.set(key, value)
  return {
    get: (name) => merged.get(name),
    has: (name) => merged.has(name),
    names: [...merged.keys()]
  }
}

/** Binance signs `query + body` (no separator) without the signature parameter itself. */
export const totalParamsForSignature = (rawQuery: string, rawBody: string): string => {
  const strip = (raw: string) =>
    raw
      .split("&")
      .filter((piece) => !piece.startsWith("signature="))
      .join("&")
  return strip(rawQuery) + strip(rawBody)
}
