// Offline and back: the only server node of a page is SIGKILLed; the page reads from its IndexedDB cache, keeps its
// topic list, queues publishes, is reloaded and starts offline from IndexedDB, and when the node restarts (same data
// dir, same gateway port, new mesh ports) it finds it through the gateway url and sends the queued publishes once each.
import { createServer } from 'node:net'
import { expect, test } from '@playwright/test'
import { api, readAll, startGem, tempDataDir } from '../support/gem-process.ts'
import type { GemProcess } from '../support/gem-process.ts'
import { openPeerPage, servePeerPage } from './support/peer-harness.ts'
import type { PeerPageSite } from './support/peer-harness.ts'
import type { PeerTest } from './peer-page/main.ts'

declare const peerTest: PeerTest

let site: PeerPageSite
let node: GemProcess | undefined
const data = tempDataDir('gem-peer-offline-')
const problems: string[] = []

/** A port free right now on 127.0.0.1, so that the restarted node's gateway comes back where the page looks. */
async function freePort (): Promise<number> {
  const srv = createServer()
  await new Promise<void>(resolve => srv.listen(0, '127.0.0.1', resolve))
  const port = (srv.address() as { port: number }).port
  await new Promise<void>(resolve => srv.close(() => resolve()))
  return port
}

test.beforeAll(async () => {
  test.setTimeout(120_000)
  site = await servePeerPage()
})

test.afterAll(async () => {
  await node?.kill()
  data.remove()
  await site?.close()
})

test('offline, reloaded offline, and back: cached reads and topics, queued publishes kept and sent once', async ({ page }) => {
  test.setTimeout(90_000)
  const port = await freePort()
  const args = ['--webrtc-direct', 'false', '--http-port', String(port)]
  node = await startGem(data.dir, args)
  expect((await api(node.url, 'POST', '/topics', { name: 'notes', partitions: 1, replication: 1 })).status).toBe(201)
  for (let i = 0; i < 5; i++) expect((await api(node.url, 'POST', '/topics/notes/messages', { payload: `note-${i}` })).status).toBe(201)

  await openPeerPage(page, site, problems)
  const name = `offline-${Date.now()}`
  await page.evaluate(async ([url, name]) => { await peerTest.start({ bootstrap: [url], name }) }, [node.url, name] as const)
  expect((await page.evaluate(() => peerTest.read('notes', 0, 10))).texts).toEqual([0, 1, 2, 3, 4].map(i => `note-${i}`))

  await node.kill()
  await expect.poll(() => page.evaluate(() => peerTest.online()), { timeout: 20_000 }).toBe(false)
  // Reads and the topic list come from IndexedDB.
  expect((await page.evaluate(() => peerTest.read('notes', 2, 10))).texts).toEqual([2, 3, 4].map(i => `note-${i}`))
  expect(await page.evaluate(() => peerTest.topicNames())).toContain('notes')
  await page.evaluate(() => { for (let i = 0; i < 3; i++) peerTest.publishLater('notes', `offline-${i}`) })
  await expect.poll(() => page.evaluate(() => peerTest.stats()?.queuedPublishes), { timeout: 5_000 }).toBe(3)

  // Reloaded while still offline: the peer starts anyway, with its cache, topic list and outbox from IndexedDB.
  await page.reload()
  await page.waitForFunction(() => typeof (globalThis as { peerTest?: unknown }).peerTest === 'object')
  expect(await page.evaluate(async ([url, name]) => {
    try { await peerTest.start({ bootstrap: [url], name }); return 'started' } catch (err) { return (err as { code?: string }).code }
  }, [node.url, name] as const), 'without startOffline an unreachable mesh is an error').toBe('PEER_UNREACHABLE')
  await page.evaluate(async ([url, name]) => { await peerTest.start({ bootstrap: [url], name, startOffline: true }) }, [node.url, name] as const)
  expect(await page.evaluate(() => peerTest.online())).toBe(false)
  expect((await page.evaluate(() => peerTest.read('notes', 0, 10))).texts).toEqual([0, 1, 2, 3, 4].map(i => `note-${i}`))
  expect(await page.evaluate(() => peerTest.topicNames())).toContain('notes')
  expect(await page.evaluate(() => peerTest.stats()?.queuedPublishes)).toBe(3)
  await page.evaluate(() => { peerTest.publishLater('notes', 'offline-3') })

  node = await startGem(data.dir, args)
  await expect.poll(() => page.evaluate(() => peerTest.online()), { timeout: 30_000 }).toBe(true)
  await expect.poll(() => page.evaluate(() => peerTest.stats()?.queuedPublishes), { timeout: 30_000, message: 'queued publishes are sent' }).toBe(0)
  // The one published after the reload resolves with its offset: after the three the previous page left queued.
  expect((await page.evaluate(() => peerTest.pendingResults())).map(r => r.offset)).toEqual([8])
  const stored = await readAll(node.url, 'notes')
  expect(stored.map(m => m.payload)).toEqual([...[0, 1, 2, 3, 4].map(i => `note-${i}`), ...[0, 1, 2, 3].map(i => `offline-${i}`)])
  await page.evaluate(() => peerTest.close())
})

test('bad input through the browser API is refused with stable codes, and the peer keeps working', async ({ page }) => {
  test.setTimeout(60_000)
  node ??= await startGem(data.dir, ['--webrtc-direct', 'false'])
  if ((await api(node.url, 'GET', '/topics/notes')).status === 404) await api(node.url, 'POST', '/topics', { name: 'notes', partitions: 1, replication: 1 })
  await openPeerPage(page, site, problems)
  const codes = await page.evaluate(url => peerTest.badInputs([url]), node.url)
  expect(codes).toEqual({
    'bootstrap []': 'BAD_REQUEST',
    'bootstrap not a url': 'BAD_REQUEST',
    'bootstrap ftp url': 'BAD_REQUEST',
    'bootstrap without /p2p/': 'BAD_REQUEST',
    'bootstrap number': 'BAD_REQUEST',
    'publish bad topic name': 'BAD_REQUEST',
    'publish to a missing topic': 'TOPIC_NOT_FOUND',
    'publish 5 MiB': 'PAYLOAD_TOO_LARGE',
    'subscribe to a missing topic': 'TOPIC_NOT_FOUND',
    'read a partition out of range': 'BAD_REQUEST',
    'publish still works': 'none',
    'publish after close': 'CLOSED',
  })
})

test('no page errors', () => {
  expect(problems.join('\n')).toBe('')
})
