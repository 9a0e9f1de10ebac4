// Harness of the browser-peer specs: builds test/browser/peer-page with Vite (once per source state), serves it on
// 127.0.0.1, starts joined `gem start` processes, and hands out the multiaddrs a browser dials. Stops all it started.
import { existsSync, globSync, readdirSync, rmSync, statSync } from 'node:fs'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { test } from '@playwright/test'
import type { Page } from '@playwright/test'
import { api, tempDataDir } from '../../support/gem-process.ts'
import type { GemProcess } from '../../support/gem-process.ts'
import { startMesh } from '../../support/mesh.ts'
import { buildTestPage } from './build-page.ts'
import { serveStatic } from './static-server.ts'

const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'peer-page')
const ROOT = join(PAGE_DIR, '..', '..', '..')
const SOURCES = ['test/browser/peer-page/**/*', 'packages/browser/src/**/*', 'packages/core/src/**/*', 'packages/*/package.json']

export interface PeerPageSite {
  url: string
  close(): Promise<void>
}

/**
 * The built page, shared by the spec files of one run: one Vite build of libp2p takes ~15 s on this machine. Keyed by
 * the newest source mtime, built into a temp dir and renamed into place, so a half-written build is never served.
 */
async function builtPage (): Promise<string> {
  const newest = Math.max(...globSync(SOURCES, { cwd: ROOT }).map(f => statSync(join(ROOT, f)).mtimeMs))
  const outDir = join(tmpdir(), `gem-peer-page-${Math.floor(newest)}`)
  if (existsSync(join(outDir, '.complete'))) return outDir
  const tmp = await mkdtemp(join(tmpdir(), 'gem-peer-page-build-'))
  try {
    await buildTestPage(PAGE_DIR, join(tmp, 'dist'), tmp)
    await writeFile(join(tmp, 'dist', '.complete'), String(newest))
    await rm(outDir, { recursive: true, force: true })
    try {
      await rename(join(tmp, 'dist'), outDir)
    } catch (err) {
      if (!existsSync(join(outDir, '.complete'))) throw err // another run built the same sources meanwhile: use its
    }
    // Builds of older sources are of no use any more.
    for (const d of readdirSync(tmpdir())) {
      if (/^gem-peer-page-\d+$/.test(d) && join(tmpdir(), d) !== outDir) rmSync(join(tmpdir(), d), { recursive: true, force: true })
    }
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
  return outDir
}

/** Serves the built peer page read-only on an ephemeral port of 127.0.0.1. */
export async function servePeerPage (): Promise<PeerPageSite> {
  return await serveStatic(await builtPage())
}

/** The websocket multiaddrs (with /p2p/) of a node, as a browser dials them. */
export async function wsAddrs (url: string): Promise<string[]> {
  const info = (await api(url, 'GET', '/info')).json as { multiaddrs?: string[], peer_id?: string }
  return (info.multiaddrs ?? []).filter(a => a.includes('/ws') && !a.includes('/p2p-circuit'))
}

export async function peerIdOf (url: string): Promise<string> {
  return (await api(url, 'GET', '/info')).json.peer_id as string
}

/** Opens a page on the site with its console errors collected (for the spec's final check). */
export async function openPeerPage (page: Page, site: PeerPageSite, problems: string[]): Promise<void> {
  page.on('pageerror', err => { problems.push(`pageerror: ${err.stack ?? err.message}`) })
  await page.goto(site.url)
  await page.waitForFunction(() => typeof (globalThis as { peerTest?: unknown }).peerTest === 'object')
}

export interface PeerSuite {
  readonly site: PeerPageSite
  /** The joined node processes, in start order (a spec may kill some). */
  readonly nodes: GemProcess[]
  /** Page errors collected by openPeerPage, checked by the spec's last test. */
  readonly problems: string[]
}

/**
 * Registers the spec file's beforeAll/afterAll: the peer page site and `count` joined `gem start` processes (each in a
 * temp data dir), all stopped and removed after the file, also when a test fails.
 */
export function usePeerSuite (count: number, prefix: string): PeerSuite {
  const dirs = Array.from({ length: count }, () => tempDataDir(prefix))
  const suite = { site: undefined as unknown as PeerPageSite, nodes: [] as GemProcess[], problems: [] as string[] }
  test.beforeAll(async () => {
    test.setTimeout(120_000)
    const [site, nodes] = await Promise.all([servePeerPage(), count > 0 ? startMesh(dirs.map(d => d.dir)) : Promise.resolve([])])
    suite.site = site
    suite.nodes.push(...nodes)
  })
  test.afterAll(async () => {
    for (const n of suite.nodes) await n.kill()
    for (const d of dirs) d.remove()
    await suite.site?.close()
  })
  return suite
}
