// Crash safety of a real node: acknowledged publishes and committed group offsets survive SIGKILL.
// The node runs as a child process on LevelDB; the client streams publishes over the WebSocket gateway.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { api, readAll, startGem, tempDataDir } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'

test('every acknowledged publish survives SIGKILL exactly once, in order, at its offset; group offsets too', { timeout: 120_000 }, async () => {
  const data = tempDataDir()
  let node: GemProcess | undefined
  let ws: WebSocket | undefined
  try {
    node = await startGem(data.dir)
    assert.equal((await api(node.url, 'POST', '/topics', { name: 'ledger' })).status, 201)

    // A consumer group takes and acks the first 50 messages before the crash.
    for (let i = 0; i < 50; i++) {
      const r = await api(node.url, 'POST', '/topics/ledger/messages', { payload: `pre-${i}`, id: `pre-${i}` })
      assert.equal(r.status, 201)
    }
    const pulled = await api(node.url, 'POST', '/topics/ledger/groups/audit/pull?max=50&wait_ms=2000')
    assert.equal(pulled.json.messages.length, 50)
    const acked = await api(node.url, 'POST', '/topics/ledger/groups/audit/ack', { tags: pulled.json.messages.map((m: { tag: string }) => m.tag) })
    assert.equal(acked.json.acked, 50)

    // Stream pipelined publishes over one WebSocket; kill the node while many are in flight.
    ws = new WebSocket(node.url.replace('http', 'ws') + '/ws')
    await new Promise((resolve, reject) => { ws!.once('open', resolve); ws!.once('error', reject) })
    const ackedPublishes = new Map<string, number>() // id -> offset
    const sentOrder: string[] = []
    let killed = false
    const killAfter = 3000
    const done = new Promise<void>(resolve => {
      ws!.on('message', raw => {
        const m = JSON.parse(String(raw))
        if (m.type === 'ack' && typeof m.request_id === 'string' && m.request_id.startsWith('s-')) {
          ackedPublishes.set(m.request_id, m.offset)
          if (ackedPublishes.size >= killAfter && !killed) {
            killed = true
            void node!.kill().then(resolve)
          }
        }
      })
      ws!.on('close', () => { if (!killed) resolve() })
    })
    let seq = 0
    const window = 256
    const pump = (): void => {
      while (!killed && ws!.readyState === WebSocket.OPEN && seq - ackedPublishes.size < window && seq < 20_000) {
        const id = `s-${seq++}`
        sentOrder.push(id)
        ws!.send(JSON.stringify({ type: 'publish', topic: 'ledger', request_id: id, message: { id, payload: `payload of ${id}` } }))
      }
      if (!killed && seq < 20_000) setImmediate(pump)
    }
    pump()
    await done
    assert.ok(killed, 'the node was killed mid-stream')
    ws.terminate()
    assert.ok(ackedPublishes.size >= killAfter)

    node = await startGem(data.dir)
    const stored = await readAll(node.url, 'ledger')
    // Dense offsets, and each id exactly once.
    stored.forEach((m, i) => assert.equal(m.offset, i))
    const byId = new Map(stored.map(m => [m.id, m]))
    assert.equal(byId.size, stored.length, 'no id is stored twice')
    for (const [id, offset] of ackedPublishes) {
      const m = byId.get(id)
      assert.ok(m !== undefined, `acknowledged ${id} is missing after the crash`)
      assert.equal(m.offset, offset, `${id} moved from its acknowledged offset`)
      assert.equal(m.payload, `payload of ${id}`)
    }
    // One connection, processed in order: offsets follow the send order.
    const streamOffsets = sentOrder.filter(id => byId.has(id)).map(id => byId.get(id)!.offset)
    for (let i = 1; i < streamOffsets.length; i++) assert.ok(streamOffsets[i] > streamOffsets[i - 1], 'publish order kept')

    // The group's committed offset survived: its next pull starts after the 50 acked messages.
    const after = await api(node.url, 'POST', '/topics/ledger/groups/audit/pull?max=1&wait_ms=2000')
    assert.equal(after.json.messages[0].offset, 50)
    assert.equal(after.json.messages[0].attempt, 1)
  } finally {
    ws?.terminate()
    await node?.kill()
    data.remove()
  }
})
