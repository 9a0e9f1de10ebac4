// Steady-rate load for latency benchmarks: calls `sendOne` so that `total` sends are spread at
// `rate` per second, in 1 ms ticks. Bounded by `total`; the time bound follows from the rate.

export async function pacedSend (rate: number, total: number, sendOne: (seq: number) => void): Promise<void> {
  const started = performance.now()
  let sent = 0
  await new Promise<void>(resolve => {
    const tick = (): void => {
      const due = Math.min(total, Math.floor((performance.now() - started) / 1000 * rate))
      while (sent < due) sendOne(sent++)
      if (sent >= total) resolve(); else setTimeout(tick, 1)
    }
    tick()
  })
}

/** Waits until `count()` reaches `want` or `timeoutMs` passes (a bench reports what it got). */
export async function waitForCount (count: () => number, want: number, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs
  while (count() < want && performance.now() < deadline) await new Promise(r => setTimeout(r, 20))
}
