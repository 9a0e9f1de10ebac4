// Entry of the core test page: exposes window.runCoreChecks, which runs the chosen check groups in this page.
// It only wires the groups together; the checks live in conformance-run.ts, sdk-scenario.ts and codec-checks.ts.
import { runCodecChecks } from './codec-checks.ts'
import { runTierConformance } from './conformance-run.ts'
import type { CheckGroup, CheckResult, CoreReport, RunCoreChecks } from './report.ts'
import { runSdkScenario } from './sdk-scenario.ts'

const GROUPS: Record<CheckGroup, () => Promise<CheckResult[]>> = {
  conformance: runTierConformance,
  sdk: runSdkScenario,
  codec: runCodecChecks,
}

const runCoreChecks: RunCoreChecks = async (groups = ['conformance', 'sdk', 'codec']) => {
  const report: CoreReport = {
    env: {
      userAgent: navigator.userAgent,
      hasProcess: 'process' in globalThis,
      hasBuffer: 'Buffer' in globalThis,
    },
    results: {},
  }
  // One group at a time, so a failure or a console error is easy to pin on its group.
  for (const g of groups) report.results[g] = await GROUPS[g]()
  return report
}

;(globalThis as unknown as { runCoreChecks: RunCoreChecks }).runCoreChecks = runCoreChecks
