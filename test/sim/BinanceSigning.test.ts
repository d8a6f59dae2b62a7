import { describe, expect, it } from "@effect/vitest"
import { encodeParams, hmacSha256Hex, signedQuery, verifySignature } from "../../src/exchange/BinanceSigning.ts"

// The worked example from Binance's rest-api.md ("SIGNED Endpoint Examples for POST /api/v3/order", HMAC Keys).
const DOC_SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
const DOC_PAYLOAD = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
const DOC_SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"

describe("BinanceSigning", () => {
  it("matches the HMAC example in Binance's documentation", () => {
    expect(hmacSha256Hex(DOC_PAYLOAD, DOC_SECRET)).toBe(DOC_SIGNATURE)
  })

  it("signedQuery keeps insertion order and appends the signature", () => {
    const query = signedQuery(
      { symbol: "LTCBTC", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: 1, price: 0.1, recvWindow: 5000, timestamp: 1499827319559 },
      DOC_SECRET
    )
    expect(query).toBe(`${DOC_PAYLOAD}&signature=${DOC_SIGNATURE}`)
  })

  it("percent-encodes non-ASCII like the documentation's second example", () => {
    const encoded = encodeParams({ symbol: "１２３４５６", side: "BUY", type: "LIMIT", timeInForce: "GTC", quantity: 1, price: 0.1, recvWindow: 5000, timestamp: 1499827319559 })
    expect(encoded.startsWith("symbol=%EF%BC%91%EF%BC%92%EF%BC%93%EF%BC%94%EF%BC%95%EF%BC%96&side=BUY")).toBe(true)
    expect(hmacSha256Hex(encoded, DOC_SECRET)).toBe("e1353ec6b14d888f1164ae9af8228a3dbd508bc82eb867db8ab6046442f33ef3")
  })

  it("never writes numbers in exponent form", () => {
    expect(encodeParams({ quantity: 0.0000001, price: 1e21 })).toBe("quantity=0.0000001&price=1000000000000000000000")
  })

  it("verifySignature is case-insensitive and rejects anything else", () => {
    expect(verifySignature(DOC_PAYLOAD, DOC_SIGNATURE, DOC_SECRET)).toBe(true)
    expect(verifySignature(DOC_PAYLOAD, DOC_SIGNATURE.toUpperCase(), DOC_SECRET)).toBe(true)
    expect(verifySignature(DOC_PAYLOAD + "&x=1", DOC_SIGNATURE, DOC_SECRET)).toBe(false)
    expect(verifySignature(DOC_PAYLOAD, DOC_SIGNATURE, "other-secret")).toBe(false)
    expect(verifySignature(DOC_PAYLOAD, "not-hex", DOC_SECRET)).toBe(false)
    expect(verifySignature(DOC_PAYLOAD, "", DOC_SECRET)).toBe(false)
  })
})
