// The dashboard (demo/) in real Chromium against three real node processes: it renders the mesh and a live tail of
// messages published from Node, saves a screenshot, and survives bad publish-form input with a coded error.
import { expect, test } from '@playwright/test'
import type { Page } from '@playwright/test'
import { ensureDashboardBuilt } from '../../demo/build-dashboard.ts'
import { api, readAll, startGem, tempDataDir } from '../support/gem-process.ts'
import type { GemProcess } from '../support/gem-process.ts'
import { startMesh } from '../support/mesh.ts'

const TOPIC = 'orders'

let nodes: GemProcess[] = []
let ids: string[] = []
const dirs = Array.from({ length: 3 }, () => tempDataDir('gem-dashboard-'))
let page: Page | undefined
const pageErrors: string[] = []

test.describe.configure({ mode: 'serial' })

/** Publishes through the page's form (an empty payload leaves the field as it is). */
async function publishFromForm (p: Page, topic: string, payload?: string): Promise<void> {
  await p.getByTestId('publish-topic').fill(topic)
  if (payload !== undefined) await p.getByTestId('publish-payload').fill(payload)
  await p.getByTestId('publish-send').click()
}

async function tailFromForm (p: Page, topic: string): Promise<void> {
  await p.getByTestId('tail-topic').fill(topic)
  await p.getByTestId('tail-start').click()
}

test.beforeAll(async ({ browser }) => {
  test.setTimeout(240_000)
  await ensureDashboardBuilt()
  nodes = await startMesh(dirs.map(d => d.dir))
  ids = await Promise.all(nodes.map(async n => (await api(n.url, 'GET', '/info')).json.node_id as string))
  expect((await api(nodes[0].url, 'POST', '/topics', { name: TOPIC, partitions: 2 })).status).toBe(201)

  page = await browser.newPage({ viewport: { width: 1400, height: 1000 } })
  page.on('pageerror', err => { pageErrors.push(`pageerror: ${err.stack ?? err.message}`) })
  await page.goto(`${nodes[0].url}/dashboard/`)
  await page.waitForFunction(() => (window as { dashboardReady?: boolean }).dashboardReady === true, null, { timeout: 60_000 })
})

test.afterAll(async () => {
  await page?.close()
  for (const n of nodes) await n.kill()
  for (const d of dirs) d.remove()
})

test('the gateway serves the dashboard under /dashboard/ and nothing outside it', async () => {
  const url = nodes[1].url
  const redirect = await fetch(`${url}/dashboard`, { redirect: 'manual' })
  expect(redirect.status).toBe(301)
  expect(redirect.headers.get('location')).toBe('/dashboard/')
  const index = await fetch(`${url}/dashboard/`)
  expect(index.status).toBe(200)
  expect(index.headers.get('content-type')).toContain('text/html')
  expect(await index.text()).toContain('GEM')
  // Traversal, dot files and unknown files are 404s in the REST error shape; the node keeps serving.
  for (const path of ['/dashboard/..%2fpackage.json', '/dashboard/%2e%2e/%2e%2e/package.json', '/dashboard/.built-from', '/dashboard/no-such-file.js']) {
    const r = await api(url, 'GET', path)
    expect(r.status, path).toBe(404)
    expect(r.json.error, path).toBe('NOT_FOUND')
  }
  expect((await api(url, 'GET', '/health')).status).toBe(200)
})

test('the dashboard renders the mesh: all three server nodes, their partitions, load and load decisions', async () => {
  const p = page!
  for (const id of ids) {
    await expect(p.locator(`[data-testid=graph-node][data-node-id="${id}"]`)).toBeVisible()
    await expect(p.getByTestId('mesh-graph')).toContainText(id)
    await expect(p.getByTestId('load')).toContainText(id)
  }
  await expect(p.getByTestId('online')).toHaveText('online')
  await expect(p.getByTestId('partitions')).toContainText(`${TOPIC}/0`)
  await expect(p.getByTestId('partitions')).toContainText(`${TOPIC}/1`)
  await expect(p.getByTestId('topics')).toContainText(TOPIC)
  // The topic's placement on predicted load is a decision of the topic controller (the lowest live node id), recorded
  // in its /cluster (#7); the page shows the decisions of the node serving it, nodes[0].
  const placedHere = async (url: string): Promise<boolean> => ((await api(url, 'GET', '/cluster')).json.decisions as Array<{ kind: string, topic?: string }>)
    .some(d => d.kind === 'placement' && d.topic === TOPIC)
  const placers = await Promise.all(nodes.map(n => placedHere(n.url)))
  expect(placers.filter(Boolean).length).toBe(1)
  if (placers[0]) await expect(p.getByTestId('decisions')).toContainText(`placement${TOPIC} placed on`)
  else await expect(p.getByTestId('decisions')).not.toContainText(`placement${TOPIC} placed on`)
})

test('a live tail shows messages published from Node; the screenshot shows nodes and messages', async ({}, testInfo) => {
  const p = page!
  await tailFromForm(p, TOPIC)
  await expect(p.getByTestId('tail-state')).toContainText(`Following ${TOPIC}`)

  const payloads = Array.from({ length: 8 }, (_, i) => `hello from node ${i % 3 + 1} #${i}`)
  for (const [i, payload] of payloads.entries()) {
    const r = await api(nodes[i % 3].url, 'POST', `/topics/${TOPIC}/messages`, { payload, key: `k${i}` })
    expect(r.status).toBe(201)
  }
  for (const payload of payloads) await expect(p.getByTestId('tail')).toContainText(payload)
  await expect(p.getByTestId('tail-message')).toHaveCount(payloads.length)
  // The peer's own count of what it received, by source, is on the page too.
  await expect.poll(async () => {
    const m = /received (\d+) messages from server nodes and (\d+) from other browsers/.exec(await p.getByTestId('deliveries').textContent() ?? '')
    return m === null ? 0 : Number(m[1]) + Number(m[2])
  }).toBeGreaterThanOrEqual(payloads.length)

  // Wait until the rate chart and the message counts have caught up, so the screenshot shows a settled page.
  await expect(p.locator('[data-topic=orders] [data-testid=topic-messages]')).toHaveText(String(payloads.length))
  const shot = testInfo.outputPath('dashboard.png')
  await p.screenshot({ path: shot, fullPage: true })
  await testInfo.attach('dashboard', { path: shot, contentType: 'image/png' })
  for (const id of ids) await expect(p.getByTestId('mesh-graph')).toContainText(id)
  await expect(p.getByTestId('tail')).toContainText(payloads[payloads.length - 1])
})

test('bad publish-form and tail input show their error codes and the page keeps working', async () => {
  const p = page!
  const before = (await readAll(nodes[0].url, TOPIC, 0)).length + (await readAll(nodes[0].url, TOPIC, 1)).length
  const info = (await api(nodes[0].url, 'GET', '/info')).json
  const maxPayload = info.config.max_payload_bytes as number

  await publishFromForm(p, TOPIC, 'x'.repeat(maxPayload + 1))
  await expect(p.getByTestId('publish-result')).toContainText('PAYLOAD_TOO_LARGE')

  await publishFromForm(p, 'not a topic!', 'hello')
  await expect(p.getByTestId('publish-result')).toContainText('BAD_REQUEST: invalid topic name')

  await publishFromForm(p, '')
  await expect(p.getByTestId('publish-result')).toContainText('BAD_REQUEST: a topic is required')

  // A tail of a topic that does not exist, or cannot, says why; following a real one again works.
  await tailFromForm(p, 'no-such-topic')
  await expect(p.getByTestId('tail-state')).toContainText('TOPIC_NOT_FOUND')
  await tailFromForm(p, 'not a topic!')
  await expect(p.getByTestId('tail-state')).toContainText('BAD_REQUEST')
  await tailFromForm(p, TOPIC)
  await expect(p.getByTestId('tail-state')).toContainText(`Following ${TOPIC}`)

  // Still working: a good publish from the form is stored and reaches the live tail; nothing stored was lost.
  await publishFromForm(p, TOPIC, 'hello from the dashboard')
  await expect(p.getByTestId('publish-result')).toContainText(`Stored in ${TOPIC}`)
  await expect(p.getByTestId('tail')).toContainText('hello from the dashboard')
  const after = (await readAll(nodes[0].url, TOPIC, 0)).length + (await readAll(nodes[0].url, TOPIC, 1)).length
  expect(after).toBe(before + 1)
  for (const n of nodes) expect((await api(n.url, 'GET', '/health')).status).toBe(200)
  expect(pageErrors.join('\n')).toBe('')
})

test('?transport=gateway: the tail and the form work over the node\'s WebSocket gateway instead of the peer', async ({ browser }) => {
  const p = await browser.newPage()
  try {
    p.on('pageerror', err => { pageErrors.push(`gateway page: ${err.stack ?? err.message}`) })
    await p.goto(`${nodes[1].url}/dashboard/?transport=gateway`)
    await p.waitForFunction(() => (window as { dashboardReady?: boolean }).dashboardReady === true, null, { timeout: 60_000 })
    await expect(p.getByTestId('status')).toContainText('gateway /ws')
    expect(await p.evaluate(() => (window as { gem?: unknown }).gem === undefined)).toBe(true)
    await tailFromForm(p, TOPIC)
    await expect(p.getByTestId('tail-state')).toContainText(`Following ${TOPIC}`)
    expect((await api(nodes[2].url, 'POST', `/topics/${TOPIC}/messages`, { payload: 'to the gateway page' })).status).toBe(201)
    await expect(p.getByTestId('tail')).toContainText('to the gateway page')
    await publishFromForm(p, TOPIC, 'from the gateway page')
    await expect(p.getByTestId('publish-result')).toContainText(`Stored in ${TOPIC}`)
    await expect(p.getByTestId('tail')).toContainText('from the gateway page')
    await publishFromForm(p, TOPIC, 'y'.repeat((await api(nodes[1].url, 'GET', '/info')).json.config.max_payload_bytes + 1))
    await expect(p.getByTestId('publish-result')).toContainText('PAYLOAD_TOO_LARGE')
    await expect(p.getByTestId('online')).toHaveText('online')
  } finally {
    await p.close()
  }
})

test('a server node SIGKILLed: the dashboard marks it down, reads the cluster from a survivor and keeps tailing', async () => {
  const p = page!
  const shown = await p.getByTestId('tail-message').count()
  await nodes[0].kill()
  const survivors = nodes.slice(1)
  await expect(p.locator(`[data-testid=graph-node][data-node-id="${ids[0]}"]`)).not.toHaveAttribute('data-state', 'alive', { timeout: 60_000 })
  const fromSurvivor = new RegExp(`cluster view from (${survivors.map(n => new URL(n.url).host.replaceAll('.', '\\.')).join('|')})`)
  await expect(p.getByTestId('status')).toHaveText(fromSurvivor)
  for (const id of ids.slice(1)) await expect(p.locator(`[data-testid=graph-node][data-node-id="${id}"]`)).toHaveAttribute('data-state', 'alive')

  // Partitions led by the dead node get new leaders first: retry a publish the mesh refuses meanwhile.
  const payload = 'published after the failover'
  await expect.poll(async () => (await api(survivors[0].url, 'POST', `/topics/${TOPIC}/messages`, { payload, id: 'after-failover' })).status, { timeout: 60_000 }).toBeLessThan(300)
  await expect(p.getByTestId('tail')).toContainText(payload, { timeout: 60_000 })
  expect(await p.getByTestId('tail-message').count()).toBe(shown + 1)
})

test('offline: with every node down the page keeps its last view, says so and queues a publish', async ({}, testInfo) => {
  const p = page!
  const shown = await p.getByTestId('tail-message').count()
  for (const n of nodes) await n.kill()
  await expect(p.getByTestId('online')).toHaveText('offline', { timeout: 60_000 })
  await expect(p.getByTestId('status')).toContainText('no node answers')
  for (const id of ids) await expect(p.getByTestId('mesh-graph')).toContainText(id)
  await expect(p.getByTestId('tail-message')).toHaveCount(shown)

  await publishFromForm(p, TOPIC, 'written while offline')
  await expect(p.getByTestId('publish-result')).toContainText('queued')
  await expect(p.getByTestId('queued')).toHaveText('1 queued')
  const shot = testInfo.outputPath('dashboard-offline.png')
  await p.screenshot({ path: shot, fullPage: true })
  await testInfo.attach('dashboard offline', { path: shot, contentType: 'image/png' })
  expect(pageErrors.join('\n')).toBe('')
})

test('back: the nodes restart on their data dirs and gateway ports; the page comes back, sends the queued publish once and tails again', async () => {
  const p = page!
  // The page only knows its nodes by their gateway urls: bring each back where it was (the ports were free a moment ago).
  const ports = nodes.map(n => new URL(n.url).port)
  nodes[0] = await startGem(dirs[0].dir, ['--webrtc-direct', 'false', '--http-port', ports[0]])
  for (const i of [1, 2]) nodes[i] = await startGem(dirs[i].dir, ['--webrtc-direct', 'false', '--http-port', ports[i], '--join', nodes[0].url])

  await expect(p.getByTestId('online')).toHaveText('online', { timeout: 90_000 })
  await expect(p.getByTestId('publish-result')).toContainText(`Stored in ${TOPIC}`, { timeout: 90_000 })
  await expect(p.getByTestId('queued')).toHaveCount(0)
  await expect(p.getByTestId('status')).toContainText('cluster view from')
  const stored = [...await readAll(nodes[0].url, TOPIC, 0), ...await readAll(nodes[0].url, TOPIC, 1)]
  expect(stored.filter(m => m.payload === 'written while offline')).toHaveLength(1)

  const payload = 'published after the return'
  await expect.poll(async () => (await api(nodes[1].url, 'POST', `/topics/${TOPIC}/messages`, { payload, id: 'after-return' })).status, { timeout: 60_000 }).toBeLessThan(300)
  await expect(p.getByTestId('tail')).toContainText(payload, { timeout: 60_000 })
  expect(pageErrors.join('\n')).toBe('')
})
