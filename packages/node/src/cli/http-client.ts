// The CLI's HTTP client for one gateway: JSON requests, REST errors turned back into GemErrors.
// It never retries: a CLI command reports the first failure and lets the user decide.
import { GemError } from '@gem-mesh/core'
import type { GemErrorCode } from '@gem-mesh/core'
import { UsageError } from './errors.ts'

export const DEFAULT_URL = 'http://127.0.0.1:8080'

/** The gateway base URL: --url, then GEM_URL, then the default; trailing slashes removed. */
export function resolveBaseUrl (flag: string | undefined, env: Record<string, string | undefined> = process.env): string {
  const raw = flag ?? (env.GEM_URL !== undefined && env.GEM_URL !== '' ? env.GEM_URL : DEFAULT_URL)
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new UsageError(`--url must be an http(s) URL, got ${JSON.stringify(raw)}`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new UsageError(`--url must be an http(s) URL, got ${JSON.stringify(raw)}`)
  return u.href.replace(/\/+$/, '')
}

export interface RequestOptions {
  method?: string
  body?: unknown
  signal?: AbortSignal
  /** Default 60 s; publishes wait for fsync, which can queue under load. */
  timeoutMs?: number
}

/** Sends a request and returns the response; throws GemError UNAVAILABLE when the gateway cannot be reached. */
export async function send (base: string, path: string, opts: RequestOptions = {}): Promise<Response> {
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 60_000)
  const signal = opts.signal !== undefined ? AbortSignal.any([opts.signal, timeout]) : timeout
  const init: RequestInit = { method: opts.method ?? 'GET', signal, headers: { accept: 'application/json' } }
  if (opts.body !== undefined) {
    init.body = JSON.stringify(opts.body)
    init.headers = { ...init.headers, 'content-type': 'application/json' }
  }
  try {
    return await fetch(base + path, init)
  } catch (err) {
    if (opts.signal?.aborted === true) throw err
    if (timeout.aborted) throw new GemError('UNAVAILABLE', `${init.method} ${base}${path} timed out`)
    const cause = (err as { cause?: { code?: string, message?: string } }).cause
    throw new GemError('UNAVAILABLE', `cannot reach ${base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`)
  }
}

/** A JSON request; non-2xx responses throw the gateway's error (`{"error":"CODE","message"}`). */
export async function requestJson<T = unknown> (base: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const res = await send(base, path, opts)
  const text = await res.text()
  if (!res.ok) throw errorFromResponse(res, text)
  if (text === '') return undefined as T
  try {
    return JSON.parse(text) as T
  } catch {
    throw new GemError('INTERNAL', `${base}${path} answered ${res.status} with a body that is not JSON`)
  }
}

export function errorFromResponse (res: Response, text: string): GemError {
  try {
    const body = JSON.parse(text) as { error?: unknown, message?: unknown }
    if (typeof body.error === 'string') {
      return new GemError(body.error as GemErrorCode, typeof body.message === 'string' ? body.message : `HTTP ${res.status}`)
    }
    if (typeof body.error === 'object' && body.error !== null) {
      const e = body.error as { code?: string, message?: string }
      return new GemError((e.code ?? 'INTERNAL') as GemErrorCode, e.message ?? `HTTP ${res.status}`)
    }
  } catch {}
  return new GemError(res.status >= 500 ? 'INTERNAL' : 'BAD_REQUEST', `HTTP ${res.status} ${res.statusText}${text !== '' ? `: ${text.slice(0, 200)}` : ''}`)
}

export function topicPath (topic: string): string {
  return `/topics/${encodeURIComponent(topic)}`
}
