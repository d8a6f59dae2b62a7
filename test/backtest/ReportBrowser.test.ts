/**
 * The replay report as a trader opens it: rendered by headless Chromium (Debian's `chromium` package; .ci/run
 * installs it, this test installs nothing), driven over the DevTools protocol. The trade table has one row per
 * round trip, the charts are drawn at the window's width, the page logs no error; a screenshot is kept in
 * test-artifacts/ (git-ignored).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join, resolve } from "node:path"
import { pathToFileURL } from "node:url"
import WebSocket from "ws"
import { runBacktest } from "../../src/backtest/Backtest.ts"
import { parseGrid } from "../../src/backtest/Grid.ts"
import { storeTicks, walkTicks } from "./support.ts"

const T0 = Date.UTC(2024, 4, 1, 10)
const ARTIFACTS = resolve(import.meta.dirname, "..", "..", "test-artifacts")

const chromiumPath = (): string => {
  try {
    return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], { encoding: "utf8" }).trim().split("\n")[0]
  } catch {
    return ""
  }
}

/** Starts Chromium headless with a fresh profile; resolves to its DevTools HTTP endpoint. */
const launch = (exe: string, profile: string): Promise<{ child: ChildProcess; http: string }> =>
  new Promise((resolveLaunch, reject) => {
    const child = spawn(exe, [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      "--window-size=1600,1200",
      "about:blank"
    ], { stdio: ["ignore", "ignore", "pipe"] })
    let err = ""
    const timer = setTimeout(() => reject(new Error(`chromium did not start: ${err}`)), 60_000)
    child.stderr!.on("data", (d) => {
      err += d
      const m = /DevTools listening on ws:\/\/([^/]+)\//.exec(err)
      if (m !== null) {
        clearTimeout(timer)
        resolveLaunch({ child, http: `http://${m[1]}` })
      }
    })
    child.on("exit", (code) => reject(new Error(`chromium exited (${code}): ${err}`)))
  })

/** A minimal DevTools client: send a command, await its result; every event goes to `onEvent`. */
const connect = (url: string, onEvent: (method: string, params: any) => void) =>
  new Promise<{ send: (method: string, params?: object) => Promise<any>; close: () => void }>((resolveConnect, reject) => {
    const ws = new WebSocket(url)
    let id = 0
    const waiting = new Map<number, { ok: (v: any) => void; fail: (e: Error) => void }>()
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data))
      if (msg.id !== undefined) {
        const w = waiting.get(msg.id)
        waiting.delete(msg.id)
        if (msg.error !== undefined) w?.fail(new Error(JSON.stringify(msg.error)))
        else w?.ok(msg.result)
      } else onEvent(msg.method, msg.params)
    })
    ws.on("error", reject)
    ws.on("open", () =>
      resolveConnect({
        send: (method, params = {}) =>
          new Promise((ok, fail) => {
            waiting.set(++id, { ok, fail })
            ws.send(JSON.stringify({ id, method, params }))
          }),
        close: () => ws.close()
      }))
  })

describe("replay report in a browser", () => {
  it("shows one trade row per round trip, charts at the window's width, no console error; screenshot kept", async () => {
    const exe = chromiumPath()
    assert.isTrue(
      exe !== "",
      "chromium is not installed: this test renders the report in Debian's headless chromium (apt-get install -y chromium; .ci/run does it)"
    )
    const dir = mkdtempSync(join(tmpdir(), "autotrader-report-"))
    const profile = mkdtempSync(join(tmpdir(), "autotrader-chromium-"))
    let browser: ChildProcess | undefined
    try {
      await Effect.runPromise(Effect.scoped(storeTicks(dir, walkTicks(30_000, T0, { seed: 5 }))))
      const grid = parseGrid(["fast=5,10", "slow=30,60"])
      if (typeof grid === "string") throw new Error(grid)
      const report = join(dir, "report.html")
      const out = await Effect.runPromise(
        runBacktest({
          path: dir,
          fee: 0.001,
          slippageBps: 1,
          windows: { fast: 10, slow: 30 },
          limits: { orderQty: 0.01, maxPosition: 1, maxTradesPerMinute: 3, maxTradesPerHour: 60 },
          grid,
          walkForward: 2,
          report
        })
      )
      const roundTrips = out.ranked[0].result.trades.length
      assert.isAbove(roundTrips, 3, "the replay must trade for this test to mean anything")

      const launched = await launch(exe, profile)
      browser = launched.child
      const targets = await (await fetch(`${launched.http}/json/list`)).json() as Array<{ type: string; webSocketDebuggerUrl: string }>
      const page = targets.find((t) => t.type === "page")
      assert.isDefined(page)
      const errors: Array<string> = []
      let loaded: () => void = () => {}
      const load = new Promise<void>((r) => (loaded = r))
      const cdp = await connect(page!.webSocketDebuggerUrl, (method, params) => {
        if (method === "Runtime.exceptionThrown") errors.push(`exception: ${params.exceptionDetails?.exception?.description ?? params.exceptionDetails?.text}`)
        if (method === "Runtime.consoleAPICalled" && (params.type === "error" || params.type === "assert")) {
          errors.push(`console.${params.type}: ${params.args?.map((a: any) => a.value ?? a.description).join(" ")}`)
        }
        if (method === "Log.entryAdded" && params.entry?.level === "error") errors.push(`log: ${params.entry.text} ${params.entry.url ?? ""}`)
        if (method === "Page.loadEventFired") loaded()
      })
      try {
        await cdp.send("Page.enable")
        await cdp.send("Runtime.enable")
        await cdp.send("Log.enable")
        await cdp.send("Emulation.setDeviceMetricsOverride", { width: 1600, height: 1200, deviceScaleFactor: 1, mobile: false })
        await cdp.send("Page.navigate", { url: pathToFileURL(report).href })
        await load
        const evaluate = async (expression: string) => (await cdp.send("Runtime.evaluate", { expression, returnByValue: true })).result.value
        const rows = await evaluate(`document.querySelectorAll("#trades tbody tr").length`)
        assert.strictEqual(rows, roundTrips)
        const variants = await evaluate(`document.querySelectorAll("#variants tbody tr").length`)
        assert.strictEqual(variants, 4)
        // price charts (one per symbol), equity and drawdown: canvases drawn across the window
        const charts = await evaluate(`[...document.querySelectorAll(".uplot")].map((u) => Math.round(u.getBoundingClientRect().width))`) as Array<number>
        assert.strictEqual(charts.length, 4)
        for (const w of charts) assert.isAbove(w, 1600 * 0.9)
        const labels = await evaluate(`[...document.querySelectorAll(".u-axis")].length`)
        assert.isAtLeast(labels, 8) // an x and a y axis per chart
        // zoom: a drag on the first price chart narrows its time axis (labels change), redrawn from re-downsampled data
        const xRange = `(() => { const u = window.reportCharts[0]; return [u.scales.x.min, u.scales.x.max, u.data[0].length] })()`
        const before = await evaluate(xRange) as [number, number, number]
        const over = await evaluate(`(() => { const o = document.querySelector(".u-over"); o.scrollIntoView({ block: "center" }); const r = o.getBoundingClientRect(); return [r.left, r.top] })()`) as [number, number]
        const mouse = (type: string, x: number) =>
          cdp.send("Input.dispatchMouseEvent", { type, x: over[0] + x, y: over[1] + 60, button: "left", buttons: type === "mouseReleased" ? 0 : 1, clickCount: 1 })
        await mouse("mouseMoved", 300)
        await mouse("mousePressed", 300)
        await mouse("mouseMoved", 400)
        await mouse("mouseMoved", 500)
        await mouse("mouseReleased", 500)
        await new Promise((r) => setTimeout(r, 500)) // the re-downsampling runs right after the zoom
        const after = await evaluate(xRange) as [number, number, number]
        assert.isBelow(after[1] - after[0], (before[1] - before[0]) / 2, "the drag zoomed the time axis in")
        assert.isAbove(after[0], before[0])
        // re-downsampled for the new range: still at most ~2 points per pixel column, not the whole series
        assert.isAbove(after[2], 10)
        assert.isAtMost(after[2], 2 * 1600 + 10)
        // double-click: the whole period again
        await cdp.send("Input.dispatchMouseEvent", { type: "mousePressed", x: over[0] + 300, y: over[1] + 60, button: "left", buttons: 1, clickCount: 2 })
        await cdp.send("Input.dispatchMouseEvent", { type: "mouseReleased", x: over[0] + 300, y: over[1] + 60, button: "left", buttons: 0, clickCount: 2 })
        await new Promise((r) => setTimeout(r, 500))
        const reset = await evaluate(xRange) as [number, number, number]
        assert.deepStrictEqual([reset[0], reset[1]], [before[0], before[1]])
        const layout = await cdp.send("Page.getLayoutMetrics")
        const height = Math.min(6000, Math.ceil(layout.cssContentSize?.height ?? 2400))
        await cdp.send("Emulation.setDeviceMetricsOverride", { width: 1600, height, deviceScaleFactor: 1, mobile: false })
        const shot = await cdp.send("Page.captureScreenshot", { format: "png" })
        mkdirSync(ARTIFACTS, { recursive: true })
        writeFileSync(join(ARTIFACTS, "backtest-report.png"), Buffer.from(shot.data, "base64"))
        assert.deepStrictEqual(errors, [])
      } finally {
        cdp.close()
      }
    } finally {
      if (browser?.pid !== undefined) browser.kill("SIGKILL")
      rmSync(dir, { recursive: true, force: true })
      rmSync(profile, { recursive: true, force: true })
    }
  }, 180_000)
})
