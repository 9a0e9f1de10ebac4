// Harness of the browser-peer specs: builds test/browser/peer-page with Vite (once per spec file), serves it on
// 127.0.0.1, starts joined `gem start` processes, and hands out the multiaddrs a browser dials. Stops all it started.
import { existsSync, globSync, readdirSync, rmSync, statSync } from 'node:fs'
import { mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, extname, join, normalize, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Page } from '@playwright/test'
import { build } from 'vite'
import { api } from '../../support/gem-process.ts'

const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'peer-page')
const ROOT = join(PAGE_DIR, '..', '..', '..')
const SOURCES = ['test/browser/peer-page/**/*', 'packages/browser/src/**/*', 'packages/core/src/**/*', 'packages/*/package.json']

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
}

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
    await build({
      root: PAGE_DIR,
      configFile: false,
      envFile: false,
      publicDir: false,
      cacheDir: join(tmp, 'vite-cache'),
      logLevel: 'warn',
      build: { outDir: join(tmp, 'dist'), emptyOutDir: true, minify: false, reportCompressedSize: false, target: 'es2023', chunkSizeWarningLimit: 20_000 },
    })
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
  const outDir = await builtPage()
  const root = outDir
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname)
    const file = normalize(join(root, path === '/' ? 'index.html' : path))
    if (!file.startsWith(root + sep)) { res.writeHead(404).end(); return }
    readFile(file).then(
      body => res.writeHead(200, { 'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream' }).end(body),
      () => res.writeHead(404).end(),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', resolve)
  })
  const addr = server.address()
  if (addr === null || typeof addr === 'string') throw new Error('the static server has no TCP address')
  return {
    url: `http://127.0.0.1:${addr.port}/`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    },
  }
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
