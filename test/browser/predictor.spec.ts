// The load-predictor model in real Chromium (onnxruntime-web, wasm): builds test/browser/predictor-page with Vite, serves
// it with models/load-predictor.onnx beside it on 127.0.0.1, and compares the page's outputs with the native golden ones.
import { expect, test } from '@playwright/test'
import type { Page } from '@playwright/test'
import { copyFile, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { PredictorReport } from './predictor-page/main.ts'
import { buildTestPage } from './support/build-page.ts'
import { serveStatic } from './support/static-server.ts'
import type { StaticSite } from './support/static-server.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
const PAGE_DIR = join(HERE, 'predictor-page')
const MODELS = join(HERE, '..', '..', 'models')

let tmp: string | undefined
let site: StaticSite | undefined
let page: Page | undefined
const pageErrors: string[] = []

test.beforeAll(async ({ browser }) => {
  tmp = await mkdtemp(join(tmpdir(), 'gem-predictor-page-'))
  const outDir = join(tmp, 'dist')
  await buildTestPage(PAGE_DIR, outDir, tmp)
  for (const f of ['load-predictor.onnx', 'load-predictor.golden.json']) await copyFile(join(MODELS, f), join(outDir, f))
  site = await serveStatic(outDir)
  page = await browser.newPage()
  page.on('pageerror', err => { pageErrors.push(err.stack ?? err.message) })
  await page.goto(site.url)
  await page.waitForFunction(() => typeof (globalThis as { runPredictorChecks?: unknown }).runPredictorChecks === 'function')
})

test.afterAll(async () => {
  await page?.close()
  await site?.close()
  if (tmp !== undefined) await rm(tmp, { recursive: true, force: true })
})

test('the committed model gives the native golden outputs within 1e-5 in Chromium (wasm)', async () => {
  const report = await page!.evaluate(() => (globalThis as unknown as { runPredictorChecks: () => Promise<PredictorReport> }).runPredictorChecks())
  expect(report.output.length).toBe(report.golden.length)
  const maxDiff = Math.max(...report.output.map((v, i) => Math.abs(v - report.golden[i])))
  expect(maxDiff).toBeLessThanOrEqual(1e-5)
  expect(report.forecast.predictor).toBe('onnx')
  expect(report.forecast.ahead.length).toBe(4)
  // A model that does not load: one warning with its code, EWMA predicts.
  expect(report.brokenModel.predictor).toBe('ewma')
  expect(report.brokenModel.warnings).toHaveLength(1)
  expect(report.brokenModel.warnings[0].code).toBe('MODEL_INVALID')
  // The inference conformance suite, run in the page with onnxruntime-web.
  expect(report.conformance.length).toBeGreaterThan(3)
  expect(report.conformance.filter(c => !c.ok)).toEqual([])
  expect(pageErrors).toEqual([])
})
