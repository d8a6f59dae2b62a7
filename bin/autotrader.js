#!/usr/bin/env node
// Plain JavaScript that any Node can parse: it checks the version before loading the TypeScript sources, which
// only Node >= 22.19 runs directly (type stripping; no build step). `npm ci` installs Node 24 as a dependency and
// npm puts it first on PATH for `npm start`, `npm test` and `npm run …`; a direct call with an older node lands here.
const [major, minor] = process.versions.node.split(".").map(Number)
if (major < 22 || (major === 22 && minor < 19)) {
  process.stderr.write(
    `autotrader needs Node.js >= 22.19 (24 recommended), this is ${process.version} (${process.execPath}): ` +
      `run it through npm (npm start, npm run …) after npm ci, or with node_modules/.bin/node bin/autotrader.js\n`
  )
  process.exit(1)
}
// Compiled code (and the type-stripped sources) cached on disk (NODE_COMPILE_CACHE, else the OS temp dir): a start
// after the first one skips most of the parse and strip work, about 40% of a CLI start here.
const { enableCompileCache } = await import("node:module")
enableCompileCache?.()
// `replay` has an entry point of its own that loads only what a replay needs (it is timed start-up included)
await import(process.argv[2] === "replay" ? "../src/cli/ReplayMain.ts" : "../src/cli/main.ts")
