/** The process's last word: what happens after the runtime has stopped. */
/**
 * After a clean stop everything is released and Node exits once its event loop is empty. Should a library still
 * hold a socket or timer (kafkajs did: `run --for` hung 70–90 s after "pipeline drained"), the process ends anyway
 * after `graceMs`, with one line saying so. The timer is unref'd: it never keeps the process alive by itself.
 */
export const exitIfHeldOpen = (code: number, graceMs = 5_000): void => {
  setTimeout(() => {
    process.stderr.write(
      `${JSON.stringify({ timestamp: new Date().toISOString(), level: "WARN", message: "process still held open after shutdown; exiting", code })}\n`
    )
    process.exit(code)
  }, graceMs).unref()
}
