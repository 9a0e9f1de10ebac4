// The file format of `gem trace record` (JSON lines: a header, then one sample per series a second) and its parser.
// Malformed files fail with BAD_REQUEST naming the line; training never guesses at a broken trace.
import { GemError } from '../errors.ts'
import type { LoadTrace } from './traces.ts'

export const TRACE_FORMAT_VERSION = 1

export interface TraceHeader { readonly gem_trace: number, readonly started: string, readonly source: string }

/** One line after the header: a series (`node:<id>` or `partition:<topic>/<p>`) at one second. */
export interface TraceSample {
  readonly ts: string
  readonly series: string
  readonly load: number
  readonly publish_rate?: number
  readonly delivery_rate?: number
  readonly backlog?: number
  readonly event_loop_lag_ms?: number
}

/** A series needs this many seconds before it is any use for a 32 s window and a 30 s horizon. */
export const MIN_SERIES_SECONDS = 64

/** Parses a trace file into one LoadTrace per series long enough to train on, named `<name>/<series>`. */
export function parseRecordedTrace (name: string, text: string): LoadTrace[] {
  const lines = text.split('\n').filter(l => l.trim() !== '')
  if (lines.length === 0) throw new GemError('BAD_REQUEST', `${name}: empty trace file`)
  const header = parseLine(name, lines[0], 1) as Partial<TraceHeader>
  if (header.gem_trace !== TRACE_FORMAT_VERSION) throw new GemError('BAD_REQUEST', `${name}:1: not a gem trace (expected a header with gem_trace: ${TRACE_FORMAT_VERSION})`)
  const series = new Map<string, number[]>()
  for (let i = 1; i < lines.length; i++) {
    const s = parseLine(name, lines[i], i + 1) as Partial<TraceSample>
    if (typeof s.series !== 'string' || s.series === '') throw new GemError('BAD_REQUEST', `${name}:${i + 1}: series must be a non-empty string`)
    if (typeof s.load !== 'number' || !Number.isFinite(s.load) || s.load < 0) throw new GemError('BAD_REQUEST', `${name}:${i + 1}: load must be a finite number >= 0`)
    let values = series.get(s.series)
    if (values === undefined) { values = []; series.set(s.series, values) }
    values.push(s.load)
  }
  return [...series].filter(([, v]) => v.length >= MIN_SERIES_SECONDS)
    .map(([key, v]) => ({ name: `${name}/${key}`, workload: 'recorded' as const, load: Float64Array.from(v) }))
}

function parseLine (name: string, line: string, n: number): Record<string, unknown> {
  let v: unknown
  try { v = JSON.parse(line) } catch { throw new GemError('BAD_REQUEST', `${name}:${n}: not JSON`) }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new GemError('BAD_REQUEST', `${name}:${n}: each line must be a JSON object`)
  return v as Record<string, unknown>
}
