// @gem-mesh/core in real Chromium: builds test/browser/core-page with Vite, serves it on 127.0.0.1 and runs its
// checks (tier conformance on MemoryTier, the SDK scenario, the codec). It never edits the core or reaches the network.
import { expect, test } from '@playwright/test'
import type { Page } from '@playwright/test'
import { mkdtemp, rm } from 'node:fs/promises'
import type { Server } from 'node:http'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { CheckGroup, CheckResult, CoreReport, RunCoreChecks } from './core-page/report.ts'
import { buildTestPage } from './support/build-page.ts'
import { serveStatic } from './support/static-server.ts'

const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), 'core-page')

let tmp: string | undefined
let server: Server | undefined
let page: Page | undefined
const consoleErrors: string[] = []

test.beforeAll(async ({ browser }) => {
  tmp = await mkdtemp(join(tmpdir(), 'gem-core-page-'))
  const outDir = join(tmp, 'dist')
  await buildTestPage(PAGE_DIR, outDir, tmp)
  const served = await serveStatic(outDir)
  server = served.server

  page = await browser.newPage()
  page.on('console', msg => { if (msg.type() === 'error') consoleErrors.push(`console.error: ${msg.text()}`) })
  page.on('pageerror', err => { consoleErrors.push(`pageerror: ${err.stack ?? err.message}`) })
  page.on('requestfailed', req => { consoleErrors.push(`request failed: ${req.url()} (${req.failure()?.errorText})`) })
  await page.goto(served.url)
  await page.waitForFunction(() => typeof (globalThis as { runCoreChecks?: unknown }).runCoreChecks === 'function')
})

test.afterAll(async () => {
  await page?.close()
  if (server !== undefined) {
    const s = server
    s.closeAllConnections()
    await new Promise<void>(resolve => s.close(() => resolve()))
  }
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
})

function runChecks (groups: CheckGroup[]): Promise<CoreReport> {
  return page!.evaluate(gs => (globalThis as unknown as { runCoreChecks: RunCoreChecks }).runCoreChecks(gs), groups)
}

async function runGroup (group: CheckGroup): Promise<CheckResult[]> {
  return (await runChecks([group])).results[group] ?? []
}

function failures (results: CheckResult[]): string {
  return results.filter(r => !r.ok).map(r => `✗ ${r.name}\n    ${(r.error ?? '').replaceAll('\n', '\n    ')}`).join('\n')
}

test('the page is a real browser page without Node globals', async () => {
  const report = await runChecks([])
  expect(report.env.userAgent).toContain('Chrome')
  expect(report.env.hasProcess, 'globalThis.process exists in the page').toBe(false)
  expect(report.env.hasBuffer, 'globalThis.Buffer exists in the page').toBe(false)
})

test('tier conformance cases pass on MemoryTier in the browser', async () => {
  const results = await runGroup('conformance')
  const ran = results.filter(r => r.skipped === undefined)
  expect(ran.length, 'conformance cases that ran').toBeGreaterThan(0)
  expect(failures(ran), `${ran.filter(r => !r.ok).length} of ${ran.length} conformance cases failed`).toBe('')
  test.info().annotations.push({
    type: 'conformance',
    description: `${ran.length} passed, ${results.length - ran.length} skipped (need reopen)`,
  })
})

test('SDK scenario: publish, ordered group consumption, nack redelivery, idempotent publish', async () => {
  const results = await runGroup('sdk')
  expect(results.length).toBe(3)
  expect(failures(results), 'SDK checks failed').toBe('')
})

test('codec: round trip, flipped bits rejected with CORRUPT_RECORD, crc32c check value', async () => {
  const results = await runGroup('codec')
  expect(results.length).toBe(3)
  expect(failures(results), 'codec checks failed').toBe('')
})

test('no console errors, page errors or failed requests', () => {
  expect(consoleErrors.join('\n')).toBe('')
})
