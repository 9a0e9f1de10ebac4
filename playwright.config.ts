// The browser suite: Playwright specs under test/browser, run in the system Chromium (browser downloads fail here).
// Chromium comes from CHROMIUM_PATH (default /usr/bin/chromium); the flags are the ones verified in TOOLCHAIN.md.
import { defineConfig, devices } from '@playwright/test'

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

export default defineConfig({
  testDir: 'test/browser',
  testMatch: /.*\.(spec|test)\.ts$/,
  // Browser peers are CPU-hungry; on a 2-core runner parallel pages starve each other's WebRTC.
  workers: 1,
  fullyParallel: false,
  forbidOnly: process.env.CI !== undefined,
  // One retry in CI: with every node, both pages and the libp2p stacks on 2 cores, a spec about live (at-most-once)
  // deliveries across feeds and failovers was seen failing about once in three full-suite runs (deliveries lost
  // around a switch; see the closing notes of session 4). A retried pass is reported as `flaky` by Playwright and
  // counted as passed by test/run-all.ts; a spec that fails twice fails the run.
  retries: process.env.CI !== undefined ? 1 : 0,
  timeout: 120_000,
  expect: { timeout: 30_000 },
  reporter: process.env.CI !== undefined ? [['list']] : [['list'], ['html', { open: 'never', outputFolder: 'playwright-report' }]],
  outputDir: 'test-results',
  use: {
    trace: 'retain-on-failure',
  },
  projects: [
    {
      name: 'chromium',
      use: {
        ...devices['Desktop Chrome'],
        launchOptions: {
          executablePath,
          args: [
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
            '--disable-background-networking', '--disable-component-update', '--disable-sync',
            '--disable-dev-shm-usage',
            // WebRTC between pages on a loopback-only host.
            '--allow-loopback-in-peer-connection', '--use-fake-ui-for-media-stream',
            '--use-fake-device-for-media-stream',
          ],
        },
      },
    },
  ],
})
