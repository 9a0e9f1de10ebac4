// The shape of what the core test page reports back to its Playwright spec (types only).
// Shared by the page (main.ts) and the spec; it never holds logic.

export type CheckGroup = 'conformance' | 'sdk' | 'codec'

export interface CheckResult {
  name: string
  ok: boolean
  /** A case the page did not run (e.g. a conformance case that needs a durable tier). */
  skipped?: string
  error?: string
  ms: number
}

export interface PageEnvironment {
  userAgent: string
  /** Node globals that must not exist in a real browser page (proof the core ran without them). */
  hasProcess: boolean
  hasBuffer: boolean
}

export interface CoreReport {
  env: PageEnvironment
  results: Partial<Record<CheckGroup, CheckResult[]>>
}

export type RunCoreChecks = (groups?: readonly CheckGroup[]) => Promise<CoreReport>
