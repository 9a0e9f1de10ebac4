// Before `gem local-mesh` starts its nodes: build the dashboard (demo/dist) if it is missing or stale, so that the
// README's `npm install && npm start` serves it at /dashboard/. Outside the repository (no demo/) it does nothing.
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'

const BUILDER = resolve(import.meta.dirname, '../../../../demo/build-dashboard.ts')

/** Never fails the start: a mesh without its dashboard is still a mesh. Returns false when no dashboard is served. */
export async function prepareDashboard (log: (line: string) => void): Promise<boolean> {
  if (!existsSync(BUILDER)) return false
  try {
    const { ensureDashboardBuilt } = await import(BUILDER) as { ensureDashboardBuilt(log: (line: string) => void): Promise<void> }
    await ensureDashboardBuilt(log)
    return true
  } catch (err) {
    log(`the dashboard could not be built (${(err as Error).message}); the nodes start without it`)
    return false
  }
}
