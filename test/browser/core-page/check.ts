// Tiny assertion and timing helpers for the in-page checks: a failed check becomes a result, never an exception.
// No test runner exists in the page, so these stand in for node:assert; they never touch the DOM or the network.
import type { CheckResult } from './report.ts'

export class CheckFailure extends Error {
  constructor (message: string) {
    super(message)
    this.name = 'CheckFailure'
  }
}

export function assert (cond: unknown, message: string): asserts cond {
  if (!cond) throw new CheckFailure(message)
}

export function assertEqual<T> (actual: T, expected: T, message: string): void {
  if (!Object.is(actual, expected)) throw new CheckFailure(`${message}: got ${show(actual)}, expected ${show(expected)}`)
}

/** Same canonical JSON (object keys sorted, Uint8Arrays as byte lists): enough for the plain values these checks compare. */
export function assertSameJson (actual: unknown, expected: unknown, message: string): void {
  const a = JSON.stringify(actual, canonical)
  const e = JSON.stringify(expected, canonical)
  if (a !== e) throw new CheckFailure(`${message}:\n  actual:   ${a}\n  expected: ${e}`)
}

/** Polls `cond` until it holds; fails with `what` once the deadline passes rather than hanging the page. */
export async function waitUntil (cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!cond()) {
    if (Date.now() > deadline) throw new CheckFailure(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 5))
  }
}

/** Runs one named check with a deadline; a throw or a timeout is reported with its message. */
export async function runCheck (name: string, fn: () => Promise<void> | void, timeoutMs = 20_000): Promise<CheckResult> {
  const started = performance.now()
  let timer: ReturnType<typeof setTimeout> | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new CheckFailure(`did not finish within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    await Promise.race([Promise.resolve().then(fn), expired])
    return { name, ok: true, ms: performance.now() - started }
  } catch (err) {
    return { name, ok: false, error: describeError(err), ms: performance.now() - started }
  } finally {
    clearTimeout(timer)
  }
}

export function describeError (err: unknown): string {
  if (!(err instanceof Error)) return show(err)
  const code = (err as { code?: unknown }).code
  const head = `${err.name}${typeof code === 'string' ? ` ${code}` : ''}: ${err.message}`
  // The first stack frames say where in the bundle it broke; the rest is noise.
  const frames = (err.stack ?? '').split('\n').filter(l => /^\s+at /.test(l)).slice(0, 4)
  return [head, ...frames].join('\n')
}

function show (v: unknown): string {
  try { return JSON.stringify(v, bytesAsArray) ?? String(v) } catch { return String(v) }
}

function bytesAsArray (_key: string, v: unknown): unknown {
  return v instanceof Uint8Array ? { bytes: Array.from(v) } : v
}

/** Like bytesAsArray, and rebuilds plain objects with sorted keys so that field order never matters. */
function canonical (key: string, v: unknown): unknown {
  const value = bytesAsArray(key, v)
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return Object.fromEntries(entries)
}
