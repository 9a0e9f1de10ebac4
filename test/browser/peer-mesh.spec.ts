// Browser peers in a mesh of three real `gem start` processes and two Chromium pages: Node publishes reach both pages,
// one page takes them from the other over a direct WebRTC connection (asserted on the connection), and a page's
// publishes reach a Node consumer group that acknowledges them. Bad client frames get coded errors.
import { expect, test } from '@playwright/test'
import type { Browser, Page } from '@playwright/test'
import { api } from '../support/gem-process.ts'
import { openPeerPage, peerIdOf, usePeerSuite, wsAddrs } from './support/peer-harness.ts'
import type { PeerTest } from './peer-page/main.ts'

declare const peerTest: PeerTest

const suite = usePeerSuite(3, 'gem-peer-mesh-')
const { nodes, problems } = suite

async function newPeerPage (browser: Browser, name: string, bootstrap: string[]): Promise<Page> {
  const page = await browser.newPage()
  await openPeerPage(page, suite.site, problems)
  await page.evaluate(async ([name, bootstrap]) => { await peerTest.start({ bootstrap, name }) }, [name, bootstrap] as const)
  return page
}

/**
 * A new replicated topic and two pages tailing it live: A (bootstrapped from gateway urls) and B (from multiaddrs),
 * B fed by A over direct WebRTC once A holds a relay reservation. Waits until B has joined A's feed.
 */
async function feedingPair (browser: Browser, topic: string, prefix: string): Promise<{ a: Page, b: Page }> {
  const [first, second, third] = nodes
  expect((await api(first.url, 'POST', '/topics', { name: topic, partitions: 1, replication: 3 })).status).toBe(201)
  const a = await newPeerPage(browser, `${prefix}a-${Date.now()}`, [first.url, second.url, third.url])
  await a.evaluate(async t => { await peerTest.track('live', t) }, topic)
  // A can feed others once it holds a relay reservation (its /p2p-circuit/webrtc address, reported to its server).
  await a.waitForFunction(() => peerTest.relayAddrs().length > 0, undefined, { timeout: 30_000 })
  const b = await newPeerPage(browser, `${prefix}b-${Date.now()}`, [...await wsAddrs(first.url), ...await wsAddrs(second.url)])
  await b.evaluate(async t => { await peerTest.track('live', t) }, topic)
  // The server points B at A; B dials A over WebRTC (signalled through the relay) and takes the topic from it.
  // 60 s: a hung WebRTC dial costs two 8 s attempts before B asks again (TOOLCHAIN.md), and CI machines are slow.
  await expect.poll(() => b.evaluate(() => peerTest.stats()?.feeds.joined ?? 0), { timeout: 60_000 }).toBeGreaterThan(0)
    .catch(async (err: Error) => {
      throw new Error(`B did not join A's feed (A: ${JSON.stringify(await a.evaluate(() => [peerTest.stats(), peerTest.relayAddrs()]))}, B: ${JSON.stringify(await b.evaluate(() => peerTest.stats()))})\n${err.message}`)
    })
  return { a, b }
}

test('Node publishes reach two pages, one of them fed by the other over direct WebRTC; a page publishes to a Node group', async ({ browser }) => {
  test.setTimeout(90_000)
  const [first, second, third] = nodes
  const topic = 'ticks'
  const { a, b } = await feedingPair(browser, topic, '')
  const serverA = await a.evaluate(() => peerTest.server())

  const n = 50
  for (let i = 0; i < n; i++) {
    const r = await api(second.url, 'POST', `/topics/${topic}/messages`, { payload: `tick-${i}` })
    expect(r.status).toBe(201)
  }
  for (const [label, page] of [['A', a], ['B', b]] as const) {
    await expect.poll(() => page.evaluate(() => peerTest.received('live').length), { timeout: 30_000 }).toBe(n)
      .catch(async (err: Error) => {
        // Say where each page's deliveries stood when the wait gave up: which server, feeds, and what arrived.
        const state = async (p: typeof a): Promise<string> => JSON.stringify(await p.evaluate(() => ({ stats: peerTest.stats(), got: peerTest.received('live').length })))
        throw new Error(`page ${label} did not get all ${n}: A ${await state(a)}; B ${await state(b)}\n${err.message}`)
      })
    const texts = await page.evaluate(() => peerTest.received('live').map(r => r.text))
    expect(texts).toEqual(Array.from({ length: n }, (_, i) => `tick-${i}`))
  }
  const aId = await a.evaluate(() => (globalThis as unknown as { gem: { id: string } }).gem.id)
  const viaB = await b.evaluate(() => peerTest.received('live'))
  const fromBrowser = viaB.filter(r => r.via === 'browser')
  const statsB = await b.evaluate(() => peerTest.stats())
  // A's side too: whether it cut B off (childrenDropped), and the connections both saw when a feed ended badly.
  const statsA = await a.evaluate(() => peerTest.stats())
  expect(fromBrowser.length, `B's deliveries by path: ${JSON.stringify(statsB)}; A: ${JSON.stringify(statsA)}`).toBeGreaterThan(0)
  expect(fromBrowser.every(r => r.from === aId && r.transport === 'webrtc')).toBe(true)
  // From the connection itself: B holds an open, unlimited (not relayed) WebRTC connection to A.
  const conns = await b.evaluate(id => peerTest.connectionsTo(id), aId)
  expect(conns.some(c => c.status === 'open' && !c.limited && c.remoteAddr.includes('/webrtc')), JSON.stringify(conns)).toBe(true)
  const peersOfB = await b.evaluate(() => peerTest.peers())
  expect(peersOfB.find(p => p.id === aId)).toMatchObject({ role: 'browser' })
  expect(peersOfB.find(p => p.id === aId)?.transports).toContain('webrtc')
  expect(peersOfB.filter(p => p.role === 'server').length).toBeGreaterThan(0)
  expect(serverA).toBe(await peerIdOf(first.url))
  // Both pages are members of the mesh as browsers (edge peers: they hold no partitions).
  await expect.poll(async () => {
    const cluster = (await api(second.url, 'GET', '/cluster')).json as { nodes: Array<{ peer_id: string | null, role: string }> }
    return cluster.nodes.filter(x => x.role === 'browser').map(x => x.peer_id).includes(aId)
  }, { timeout: 20_000 }).toBe(true)
  const placed = (await api(second.url, 'GET', '/cluster')).json as { partitions: Array<{ replicas: string[] }> }
  expect(placed.partitions.flatMap(p => p.replicas)).not.toContain(aId)

  // A page publishes; a Node consumer group (pull over REST on another node) receives and acknowledges every message.
  const orders = 'orders'
  expect((await api(first.url, 'POST', '/topics', { name: orders, partitions: 2, replication: 3 })).status).toBe(201)
  const published = await b.evaluate(t => peerTest.publishMany(t, 20, 'order'), orders)
  expect(published.length).toBe(20)
  const got: string[] = []
  const deadline = Date.now() + 30_000
  while (got.length < 20 && Date.now() < deadline) {
    const r = await api(third.url, 'POST', `/topics/${orders}/groups/billing/pull?max=50&wait_ms=1000`)
    expect(r.status).toBe(200)
    const msgs = r.json.messages as Array<{ payload: string, tag: string }>
    if (msgs.length === 0) continue
    const ack = await api(third.url, 'POST', `/topics/${orders}/groups/billing/ack`, { tags: msgs.map(m => m.tag) })
    expect(ack.status).toBe(200)
    expect(ack.json.acked).toBe(msgs.length)
    got.push(...msgs.map(m => m.payload))
  }
  expect(got.sort()).toEqual(Array.from({ length: 20 }, (_, i) => `order-${i}`).sort())
  await a.evaluate(() => peerTest.close())
  await b.evaluate(() => peerTest.close())
})

test('a feed that goes silent: the page it fed goes back to a server, resumes where it stopped and misses nothing', async ({ browser }) => {
  test.setTimeout(90_000)
  const [, second, third] = nodes
  const topic = 'quiet-feed'
  const { a, b } = await feedingPair(browser, topic, 'q')
  for (let i = 0; i < 5; i++) expect((await api(second.url, 'POST', `/topics/${topic}/messages`, { payload: `early-${i}` })).status).toBe(201)
  await expect.poll(() => b.evaluate(() => peerTest.received('live').length), { timeout: 30_000 }).toBe(5)
  // A's connection to B "hangs": A keeps receiving, B hears nothing, not even heartbeats, and no error says why.
  await a.evaluate(() => { peerTest.muteFeeding() })
  for (let i = 0; i < 10; i++) expect((await api(third.url, 'POST', `/topics/${topic}/messages`, { payload: `muted-${i}` })).status).toBe(201)
  await expect.poll(() => a.evaluate(() => peerTest.received('live').length), { timeout: 30_000 }).toBe(15)
  await expect.poll(() => b.evaluate(() => peerTest.received('live').length), { timeout: 30_000 }).toBe(15)
    .catch(async (err: Error) => { throw new Error(`B did not resume on a server: ${JSON.stringify(await b.evaluate(() => peerTest.stats()))}\n${err.message}`) })
  const got = await b.evaluate(() => peerTest.received('live'))
  expect(got.map(r => r.text)).toEqual([...Array.from({ length: 5 }, (_, i) => `early-${i}`), ...Array.from({ length: 10 }, (_, i) => `muted-${i}`)])
  expect(got.slice(0, 5).every(r => r.via === 'browser')).toBe(true)
  expect(got.slice(5).every(r => r.via === 'server'), JSON.stringify(got.slice(5))).toBe(true)
  expect((await b.evaluate(() => peerTest.stats()))?.feeds.silent).toBeGreaterThan(0)
  await a.evaluate(() => peerTest.close())
  await b.evaluate(() => peerTest.close())
})

test('no page errors', () => {
  expect(problems.join('\n')).toBe('')
})
