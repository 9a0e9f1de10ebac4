// The browser tier in real Chromium: the IndexedDB tier passes the storage conformance suite, and a page reloaded
// while busy with a group's message resumes the group from IndexedDB with no gap and no duplicate (one real node).
import { expect, test } from '@playwright/test'
import { api } from '../support/gem-process.ts'
import { openPeerPage, usePeerSuite, wsAddrs } from './support/peer-harness.ts'
import type { PeerTest } from './peer-page/main.ts'

declare const peerTest: PeerTest

const suite = usePeerSuite(1, 'gem-peer-resume-')
const { nodes, problems } = suite

test('the IndexedDB tier passes the tier conformance suite in Chromium, reopen cases included', async ({ page }) => {
  await openPeerPage(page, suite.site, problems)
  const results = await page.evaluate(() => peerTest.conformance())
  expect(results.length).toBeGreaterThan(10)
  expect(results.filter(r => !r.ok).map(r => `${r.name}: ${r.error}`).join('\n')).toBe('')
  test.info().annotations.push({ type: 'conformance', description: `${results.length} cases passed on IndexedDbTier` })
})

test('a page reloaded mid-group resumes from IndexedDB: every message processed exactly once', async ({ page }) => {
  test.setTimeout(60_000)
  const [node] = nodes
  const topic = 'jobs'
  expect((await api(node.url, 'POST', '/topics', { name: topic, partitions: 2, replication: 1 })).status).toBe(201)
  const bootstrap = await wsAddrs(node.url)
  const name = `resume-${Date.now()}`
  await openPeerPage(page, suite.site, problems)
  const start = async (): Promise<void> => {
    await page.evaluate(async ([bootstrap, name, topic]) => {
      await peerTest.start({ bootstrap, name })
      await peerTest.trackGroup(topic, 'workers', '0:15')
    }, [bootstrap, name, topic] as const)
  }
  await start()
  const publish = async (from: number, to: number): Promise<void> => {
    for (let i = from; i < to; i++) {
      const r = await api(node.url, 'POST', `/topics/${topic}/messages`, { payload: `job-${i}`, key: `k${i}` })
      expect(r.status).toBe(201)
    }
  }
  await publish(0, 60)
  // The page is now busy with 0:15 for good; what it finished before is acked and in its journal.
  await page.waitForFunction(() => peerTest.stalled(), undefined, { timeout: 30_000 })
  await page.evaluate(() => peerTest.flush())
  const before = await page.evaluate(() => peerTest.groupLog())
  expect(before).not.toContain('0:15')

  await page.reload()
  await page.waitForFunction(() => typeof (globalThis as { peerTest?: unknown }).peerTest === 'object')
  await start()
  await publish(60, 100)

  const offsets = async (): Promise<Map<number, number>> => {
    const highs = new Map<number, number>()
    for (const p of [0, 1]) {
      const t = (await api(node.url, 'GET', `/topics/${topic}`)).json as { offsets: Array<{ partition: number, high: number }> }
      highs.set(p, t.offsets.find(o => o.partition === p)!.high)
    }
    return highs
  }
  const highs = await offsets()
  const expected = [...highs.entries()].flatMap(([p, high]) => Array.from({ length: high }, (_, o) => `${p}:${o}`))
  expect(expected.length).toBe(100)
  await expect.poll(() => page.evaluate(() => peerTest.groupLog().length), { timeout: 30_000 }).toBeGreaterThanOrEqual(100)
  const log = await page.evaluate(() => peerTest.groupLog())
  const dupes = log.filter((k, i) => log.indexOf(k) !== i)
  expect(dupes, 'messages processed twice').toEqual([])
  expect([...log].sort()).toEqual([...expected].sort())
  // Before the reload each partition came in order. After it, what the old page held comes back first but not
  // necessarily in order: the group engine requeues a departed consumer's deliveries in no particular order.
  for (const p of [0, 1]) {
    const seq = before.filter(k => k.startsWith(`${p}:`)).map(k => Number(k.split(':')[1]))
    expect(seq, `partition ${p} before the reload`).toEqual(Array.from({ length: seq.length }, (_, i) => i))
  }
  const stats = await page.evaluate(() => peerTest.stats())
  test.info().annotations.push({ type: 'resume', description: `${before.length} processed before the reload; ${stats?.duplicatesDropped ?? 0} redeliveries dropped by the journal after it` })
  await page.evaluate(() => peerTest.close())
})

test('no page errors', () => {
  expect(problems.join('\n')).toBe('')
})
