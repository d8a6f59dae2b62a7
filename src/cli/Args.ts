/** Command-line arguments as an operator types them, normalised before the parser sees them. */

/**
 * - no arguments, or `help [command]`: the help of the root or of that command (exit 0);
 * - `--flag -5s`: a value that starts with "-" stays the flag's value (`--flag=-5s`), so the flag's own check
 *   answers with one line instead of the parser reading "-5s" as more flags.
 */
export const prepareArgs = (argv: ReadonlyArray<string>): Array<string> => {
  if (argv.length === 0) return ["--help"]
  if (argv[0] === "help") return [...argv.slice(1), "--help"]
  const out: Array<string> = []
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = argv[i + 1]
    if (/^--[a-z][a-z0-9-]*$/.test(a) && next !== undefined && /^-[\d.]/.test(next)) {
      out.push(`${a}=${next}`)
      i++
    } else out.push(a)
  }
  return out
}
