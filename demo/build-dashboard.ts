// Builds the dashboard (Vite) into demo/dist when it is missing or older than its sources (demo, browser and core
// packages). `npm start` and the browser suite call it; the gateway only serves what it produced.
import { existsSync, globSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const DEMO = dirname(fileURLToPath(import.meta.url))
const ROOT = resolve(DEMO, '..')
export const DASHBOARD_DIST = join(DEMO, 'dist')
/** Written last: a dist without it is a build that did not finish. Holds the newest source mtime it was built from. */
const STAMP = '.built-from'

const SOURCES = [
  'demo/index.html', 'demo/vite.config.ts', 'demo/src/**/*',
  'packages/browser/src/**/*', 'packages/browser/package.json',
  'packages/core/src/**/*', 'packages/core/package.json',
]

function newestSourceMtime (): number {
  let newest = 0
  for (const file of globSync(SOURCES, { cwd: ROOT })) newest = Math.max(newest, statSync(join(ROOT, file)).mtimeMs)
  return newest
}

function builtFrom (): number | undefined {
  const stamp = join(DASHBOARD_DIST, STAMP)
  if (!existsSync(stamp) || !existsSync(join(DASHBOARD_DIST, 'index.html'))) return undefined
  const n = Number(readFileSync(stamp, 'utf8'))
  return Number.isFinite(n) ? n : undefined
}

/** True when demo/dist is missing, unfinished or older than a source file. */
export function dashboardIsStale (): boolean {
  const from = builtFrom()
  return from === undefined || newestSourceMtime() > from
}

/** Builds into a temporary directory and swaps it in, so a gateway never serves half a build. */
export async function buildDashboard (): Promise<void> {
  const sourcesAt = newestSourceMtime()
  const outDir = join(DEMO, `.dist-${process.pid}`)
  // Loaded only when a build is due: starting a mesh with a fresh dashboard should not pay for Vite.
  const { build } = await import('vite')
  try {
    await build({ configFile: join(DEMO, 'vite.config.ts'), build: { outDir, emptyOutDir: true } })
    writeFileSync(join(outDir, STAMP), String(sourcesAt))
    rmSync(DASHBOARD_DIST, { recursive: true, force: true })
    try {
      renameSync(outDir, DASHBOARD_DIST)
    } catch (err) {
      // Another process (a second `npm start`, a test) built it at the same moment: its build is as good as ours.
      if (dashboardIsStale()) throw err
    }
  } finally {
    rmSync(outDir, { recursive: true, force: true })
  }
}

export async function ensureDashboardBuilt (log: (line: string) => void = () => {}): Promise<void> {
  if (!dashboardIsStale()) return
  log('building the dashboard (demo/dist) ...')
  await buildDashboard()
  log('dashboard built')
}

// `node demo/build-dashboard.ts [--force]`
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const force = process.argv.includes('--force')
  const write = (line: string): void => { process.stderr.write(line + '\n') }
  if (force) { write('building the dashboard (demo/dist) ...'); await buildDashboard(); write('dashboard built') } else await ensureDashboardBuilt(write)
}
