// `npm run bench -- browser`: one node process and real Chromium (the browser-peer test page). Messages/s delivered to a
// browser subscriber over WebRTC (webrtc-direct to the node, /gem/1/client) beside the same page subscribed over the
// node's WebSocket gateway (/ws), in the same run; publish->delivery p50/p99 of both at a steady rate; and a live topic
// fed from one page to another over direct WebRTC beside the feeding page's own rate.
import { chromium } from '@playwright/test'
import config from '../playwright.config.ts'
import { api, startGem, tempDataDir } from '../test/support/gem-process.ts'
import { servePeerPage } from '../test/browser/support/peer-harness.ts'
import type { PeerTest } from '../test/browser/peer-page/main.ts'
import { pacedSend } from './lib/paced.ts'
import { connect, payloadPool, pipelinedPublish } from './lib/ws-client.ts'

type Report = (suite: string, name: string, value: number, unit: string, extra?: Record<string, unknown>) => void

declare const peerTest: PeerTest
const PAYLOAD = 256

export async function browserSuite (report: Report, scale: number): Promise<void> {
  const count = Math.round(100_000 * scale)
  const rate = 2_000
  const seconds = scale < 1 ? 2 : 5
  const data = tempDataDir('gem-bench-browser-')
  const node = await startGem(data.dir, ['--log-level', 'error'])
  const site = await servePeerPage()
  const launch = config.projects?.[0]?.use?.launchOptions ?? {}
  const browser = await chromium.launch({ ...launch, executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium' })
  try {
    const info = (await api(node.url, 'GET', '/info')).json as { multiaddrs: string[] }
    const direct = info.multiaddrs.filter(a => a.includes('/webrtc-direct/') && a.includes('/certhash/'))
    if (direct.length === 0) throw new Error('the node lists no webrtc-direct address')
    const page = await browser.newPage()
    await page.goto(site.url)
    await page.waitForFunction(() => typeof (globalThis as { peerTest?: unknown }).peerTest === 'object')
    await page.evaluate(async b => { await peerTest.start({ bootstrap: b, prefer: 'webrtc-direct', storage: 'memory', membership: false }) }, direct)
    const transports = await page.evaluate(() => peerTest.peers().flatMap(p => p.transports))
    if (!transports.includes('webrtc-direct')) throw new Error(`the page did not connect over webrtc-direct: ${transports.join(',')}`)

    // Throughput: `count` records already stored, then each subscriber asks for all of them at once (lastN).
    for (const topic of ['bthru']) {
      if ((await api(node.url, 'POST', '/topics', { name: topic, partitions: 1 })).status !== 201) throw new Error(`create ${topic}`)
    }
    const published = await pipelinedPublish(node.url, 'bthru', count, PAYLOAD, 1024, 120_000)
    const deliver = async (key: string, subscribe: () => Promise<void>): Promise<{ rate: number, count: number }> => {
      await subscribe()
      const deadline = Date.now() + 120_000
      while (Date.now() < deadline && await page.evaluate(k => peerTest.measure(k).count, key) < published.acked) await new Promise(r => setTimeout(r, 100))
      const m = await page.evaluate(k => peerTest.measure(k), key)
      return { rate: m.count / Math.max(m.ms, 1) * 1000, count: m.count }
    }
    const ws = await deliver('ws-thru', () => page.evaluate(([u, n]) => peerTest.trackWs('ws-thru', u, 'bthru', n), [node.url, published.acked] as const))
    const rtc = await deliver('rtc-thru', () => page.evaluate(n => peerTest.track('rtc-thru', 'bthru', { lastN: n }, false), published.acked))
    report('browser', 'delivered to a page, WebSocket gateway (/ws)', ws.rate, 'msg/s', { messages: ws.count })
    report('browser', 'delivered to a page, WebRTC-direct peer', rtc.rate, 'msg/s', { messages: rtc.count, ratio_vs_ws: rtc.rate / ws.rate, target: 20_000 })

    // Latency at a steady rate: both subscribers live on the same topic, one paced publisher on the node's /ws.
    if ((await api(node.url, 'POST', '/topics', { name: 'blat', partitions: 1 })).status !== 201) throw new Error('create blat')
    await page.evaluate(u => peerTest.trackWs('ws-lat', u, 'blat', 0, true), node.url)
    await page.evaluate(() => peerTest.track('rtc-lat', 'blat', {}, false, true))
    const pub = await connect(node.url)
    const pad = payloadPool(PAYLOAD - 40, 1)[0]
    const total = rate * seconds
    await pacedSend(rate, total, seq => { pub.send(`{"type":"publish","topic":"blat","request_id":"l${seq}","message":{"payload":{"sentAt":${Date.now()},"pad":"${pad}"}}}`) })
    const deadline = Date.now() + 30_000
    while (Date.now() < deadline) {
      const [a, b] = await page.evaluate(() => [peerTest.measure('ws-lat').count, peerTest.measure('rtc-lat').count])
      if (a >= total && b >= total) break
      await new Promise(r => setTimeout(r, 100))
    }
    pub.close()
    for (const [key, label] of [['ws-lat', 'WebSocket gateway (/ws)'], ['rtc-lat', 'WebRTC-direct peer']] as const) {
      const m = await page.evaluate(k => peerTest.measure(k), key)
      report('browser', `publish->delivery p50 @${rate} msg/s, ${label}`, m.p50 ?? Number.NaN, 'ms', { received: m.count })
      report('browser', `publish->delivery p99 @${rate} msg/s, ${label}`, m.p99 ?? Number.NaN, 'ms')
    }
    // Browser to browser: page B takes a live topic from page A over direct WebRTC while one publisher writes as fast
    // as the node acknowledges; both pages' delivered rates, side by side (B can only be as fast as what A receives).
    if ((await api(node.url, 'POST', '/topics', { name: 'bfeed', partitions: 1 })).status !== 201) throw new Error('create bfeed')
    // Both pages reach the node over websockets here (the relay path browser-to-browser signalling is tested on).
    const wsAddrs = info.multiaddrs.filter(a => a.includes('/ws/') && !a.includes('/p2p-circuit'))
    const [pageA, pageB] = [await browser.newPage(), await browser.newPage()]
    for (const p of [pageA, pageB]) {
      await p.goto(site.url)
      await p.waitForFunction(() => typeof (globalThis as { peerTest?: unknown }).peerTest === 'object')
      await p.evaluate(async b => { await peerTest.start({ bootstrap: b, storage: 'memory', membership: false }) }, wsAddrs)
    }
    await pageA.evaluate(() => peerTest.track('feed-a', 'bfeed', {}, false))
    await pageA.waitForFunction(() => peerTest.relayAddrs().length > 0, undefined, { timeout: 30_000 })
    await pageB.evaluate(() => peerTest.track('feed-b', 'bfeed', {}, false))
    const joinBy = Date.now() + 30_000
    while (Date.now() < joinBy && (await pageB.evaluate(() => peerTest.stats()?.feeds.joined ?? 0)) === 0) await new Promise(r => setTimeout(r, 200))
    const fed = (await pageB.evaluate(() => peerTest.stats()?.feeds.joined ?? 0)) > 0
    const live = await pipelinedPublish(node.url, 'bfeed', count, PAYLOAD, 1024, 120_000)
    const liveBy = Date.now() + 60_000
    while (Date.now() < liveBy && (await pageB.evaluate(() => peerTest.measure('feed-b').count)) < live.acked) await new Promise(r => setTimeout(r, 100))
    while (Date.now() < liveBy && (await pageA.evaluate(() => peerTest.measure('feed-a').count)) < live.acked) await new Promise(r => setTimeout(r, 100))
    const ma = await pageA.evaluate(() => peerTest.measure('feed-a'))
    const mb = await pageB.evaluate(() => peerTest.measure('feed-b'))
    const statsB = await pageB.evaluate(() => peerTest.stats())
    const byB = statsB?.byTransport ?? {}
    const rateA = ma.count / Math.max(ma.ms, 1) * 1000
    const rateB = mb.count / Math.max(mb.ms, 1) * 1000
    report('browser', 'live to page A (from the node, websockets)', rateA, 'msg/s', { messages: ma.count, publish_rate: live.rate })
    report('browser', 'live to page B fed by page A (browser-to-browser WebRTC)', fed ? rateB : Number.NaN, 'msg/s', { messages: mb.count, ratio_vs_a: rateB / rateA, over_webrtc: byB.webrtc ?? 0, feeds: JSON.stringify(statsB?.feeds), target: 20_000 })
    for (const p of [pageA, pageB, page]) await p.evaluate(() => peerTest.close())
  } finally {
    await browser.close()
    await site.close()
    // A node that had webrtc-direct peers may abort inside node-datachannel on stop (TOOLCHAIN.md): kill it.
    await node.kill()
    data.remove()
  }
}
