// A server node SIGKILLed under two subscribed pages (one feeding the other over WebRTC): both pages reattach to a
// survivor, resubscribe, and keep receiving what the surviving nodes publish. Three real `gem start` processes.
import { expect, test } from '@playwright/test'
import type { Page } from '@playwright/test'
import { api } from '../support/gem-process.ts'
import { waitFor } from '../../packages/core/test/wait-for.ts'
import { openPeerPage, peerIdOf, usePeerSuite, wsAddrs } from './support/peer-harness.ts'
import type { PeerTest } from './peer-page/main.ts'

declare const peerTest: PeerTest

const suite = usePeerSuite(3, 'gem-peer-failover-')
const { nodes, problems } = suite

/** Publishes through `url`, retrying while the partition elects a new leader (the killed node may have led it). */
async function publishWithRetry (url: string, topic: string, payload: string): Promise<void> {
  await waitFor(async () => (await api(url, 'POST', `/topics/${topic}/messages`, { payload, id: payload })).status === 201, `publish ${payload}`, 20_000)
}

test('pages keep receiving through the survivors after the server they are attached to is SIGKILLed', async ({ browser }) => {
  test.setTimeout(90_000)
  const topic = 'feed'
  expect((await api(nodes[1].url, 'POST', '/topics', { name: topic, partitions: 1, replication: 3 })).status).toBe(201)
  const bootstrap = (await Promise.all(nodes.map(n => wsAddrs(n.url)))).flat()
  const pages: Page[] = []
  for (const name of ['a', 'b']) {
    const page = await browser.newPage()
    await openPeerPage(page, suite.site, problems)
    await page.evaluate(async ([bootstrap, name, topic]) => {
      await peerTest.start({ bootstrap, name, storage: 'memory' })
      await peerTest.track('live', topic)
    }, [bootstrap, `${name}-${Date.now()}`, topic] as const)
    if (name === 'a') await page.waitForFunction(() => peerTest.relayAddrs().length > 0, undefined, { timeout: 30_000 })
    pages.push(page)
  }
  const [a, b] = pages
  await expect.poll(() => b.evaluate(() => peerTest.stats()?.feeds.joined ?? 0), {
    timeout: 30_000,
    message: `B joins A's feed (B: ${JSON.stringify(await b.evaluate(() => peerTest.stats()?.feeds))})`,
  }).toBeGreaterThan(0)
  const victim = await peerIdOf(nodes[0].url)
  for (const page of pages) expect(await page.evaluate(() => peerTest.server())).toBe(victim)

  for (let i = 0; i < 10; i++) await publishWithRetry(nodes[1].url, topic, `before-${i}`)
  for (const page of pages) await expect.poll(() => page.evaluate(() => peerTest.received('live').length), { timeout: 20_000 }).toBe(10)

  await nodes[0].kill()
  // Both pages attach to a survivor and their live subscription has a source again (a survivor, or A for B).
  for (const page of pages) {
    await expect.poll(() => page.evaluate(() => {
      const s = peerTest.stats()
      const sub = s?.subscriptions[0]
      return s?.server !== undefined && sub !== undefined && (sub.server === s.server || sub.feeder !== undefined) ? s.server : 'none'
    }), { timeout: 30_000 }).not.toMatch(/^none$|^$/)
    expect(await page.evaluate(() => peerTest.server())).not.toBe(victim)
  }
  for (let i = 0; i < 20; i++) await publishWithRetry(nodes[1 + (i % 2)].url, topic, `after-${i}`)
  for (const page of pages) {
    await expect.poll(() => page.evaluate(() => peerTest.received('live').filter(r => r.text.startsWith('after-')).length), { timeout: 30_000 }).toBe(20)
    const texts = await page.evaluate(() => peerTest.received('live').map(r => r.text))
    expect(texts).toEqual([...Array.from({ length: 10 }, (_, i) => `before-${i}`), ...Array.from({ length: 20 }, (_, i) => `after-${i}`)])
  }
  const paths = await b.evaluate(() => peerTest.received('live').filter(r => r.text.startsWith('after-')).map(r => `${r.via}/${r.transport}`))
  test.info().annotations.push({ type: 'paths', description: `B after the kill: ${[...new Set(paths)].join(', ')}` })
  for (const page of pages) await page.evaluate(() => peerTest.close())
})

test('no page errors', () => {
  expect(problems.join('\n')).toBe('')
})
