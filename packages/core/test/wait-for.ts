// Test helper: wait for a condition with a deadline, yielding to the event loop between checks.
// Tests never sleep for a fixed time; they wait for what they expect, or fail with a clear message.

export async function waitFor<T> (check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v !== undefined && v !== false) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 2))
  }
}

/** Lets pending promise callbacks and microtasks run (several macrotask turns). */
export async function settle (turns = 5): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise(resolve => setTimeout(resolve, 0))
}
