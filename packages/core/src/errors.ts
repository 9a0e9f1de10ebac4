// GemError: every failure GEM reports carries a stable code, the same on every surface.
// The HTTP status and WebSocket close code for each code live here so the gateways never disagree.

export type GemErrorCode =
  | 'BAD_REQUEST'
  | 'TOPIC_NOT_FOUND'
  | 'TOPIC_EXISTS'
  | 'PAYLOAD_TOO_LARGE'
  | 'SLOW_CONSUMER'
  | 'UNAUTHORIZED'
  | 'CORRUPT_RECORD'
  | 'UNKNOWN_DELIVERY'
  | 'CLOSED'
  | 'UNAVAILABLE'
  | 'NOT_LEADER'
  | 'NO_QUORUM'
  | 'STALE_EPOCH'
  | 'VERSION_MISMATCH'
  | 'PEER_UNREACHABLE'
  | 'TIMEOUT'
  | 'OVERLOADED'
  /** The local storage budget is full of data not yet offloaded (S3 unreachable): retry later. */
  | 'STORAGE_FULL'
  | 'MODEL_INVALID'
  | 'INTERNAL'

/** HTTP status for each code (REST surface). */
export const HTTP_STATUS: Record<GemErrorCode, number> = {
  BAD_REQUEST: 400,
  TOPIC_NOT_FOUND: 404,
  TOPIC_EXISTS: 409,
  PAYLOAD_TOO_LARGE: 413,
  SLOW_CONSUMER: 429,
  UNAUTHORIZED: 401,
  CORRUPT_RECORD: 500,
  UNKNOWN_DELIVERY: 404,
  CLOSED: 503,
  UNAVAILABLE: 503,
  NOT_LEADER: 503,
  NO_QUORUM: 503,
  STALE_EPOCH: 409,
  VERSION_MISMATCH: 400,
  PEER_UNREACHABLE: 503,
  TIMEOUT: 504,
  // Publish admission: the node predicts saturation and its producers ran out of credit; retry after a pause.
  OVERLOADED: 429,
  STORAGE_FULL: 507,
  MODEL_INVALID: 500,
  INTERNAL: 500,
}

/** WebSocket close code for each code, used when an error ends a connection. */
export const WS_CLOSE_CODE: Record<GemErrorCode, number> = {
  BAD_REQUEST: 1007,
  TOPIC_NOT_FOUND: 1008,
  TOPIC_EXISTS: 1008,
  PAYLOAD_TOO_LARGE: 1009,
  SLOW_CONSUMER: 1013,
  UNAUTHORIZED: 1008,
  CORRUPT_RECORD: 1011,
  UNKNOWN_DELIVERY: 1008,
  CLOSED: 1001,
  UNAVAILABLE: 1013,
  NOT_LEADER: 1013,
  NO_QUORUM: 1013,
  STALE_EPOCH: 1011,
  VERSION_MISMATCH: 1002,
  PEER_UNREACHABLE: 1013,
  TIMEOUT: 1013,
  OVERLOADED: 1013,
  STORAGE_FULL: 1013,
  MODEL_INVALID: 1011,
  INTERNAL: 1011,
}

export class GemError extends Error {
  readonly code: GemErrorCode
  readonly details?: Record<string, unknown>

  constructor (code: GemErrorCode, message: string, details?: Record<string, unknown>) {
    super(message)
    this.name = 'GemError'
    this.code = code
    if (details !== undefined) this.details = details
  }

  static is (err: unknown, code?: GemErrorCode): err is GemError {
    return err instanceof GemError && (code === undefined || err.code === code)
  }
}

/** Turns anything thrown into a GemError; unknown failures become INTERNAL. */
export function toGemError (err: unknown): GemError {
  if (err instanceof GemError) return err
  const message = err instanceof Error ? err.message : String(err)
  return new GemError('INTERNAL', message)
}
