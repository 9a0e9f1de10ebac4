// The error shapes of the gateway: REST `{"error","message","ts"}` with its HTTP status, and the WebSocket error frame.
// Status and close codes come from core's errors.ts; this file only formats, it never decides what failed.
import { HTTP_STATUS, toGemError } from '@gem-mesh/core'
import type { GemErrorCode } from '@gem-mesh/core'
import { isoNow } from './iso-time.ts'

/** REST adds NOT_FOUND for routes that do not exist; everything else is a GemErrorCode. */
export type RestErrorCode = GemErrorCode | 'NOT_FOUND'

export function httpStatusOf (code: RestErrorCode): number {
  return code === 'NOT_FOUND' ? 404 : HTTP_STATUS[code] ?? 500
}

export function restErrorBody (code: RestErrorCode, message: string, extra?: Record<string, unknown>): string {
  return JSON.stringify({ error: code, message, ts: isoNow(), ...extra })
}

export function restError (code: RestErrorCode, message: string, extra?: Record<string, unknown>): Response {
  return new Response(restErrorBody(code, message, extra), {
    status: httpStatusOf(code),
    headers: { 'content-type': 'application/json; charset=utf-8' },
  })
}

export function restErrorOf (err: unknown): Response {
  const e = toGemError(err)
  return restError(e.code, e.message)
}

/** `requestIdJson` is the request's request_id already in JSON form (`null` when it had none). */
export function wsErrorFrame (requestIdJson: string, code: GemErrorCode, message: string): string {
  return `{"type":"error","request_id":${requestIdJson},"error":${JSON.stringify({ code, message })},"ts":"${isoNow()}"}`
}
