// Deleting a topic under live subscribers (real node, LevelDB): a WebSocket subscriber gets a
// TOPIC_NOT_FOUND error frame and the connection stays usable; SSE streams (tail and group) end.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import WebSocket from 'ws'
import { api, startGem, tempDataDir } from './support/gem-process.ts'
import type { GemProcess } from './support/gem-process.ts'

test('subscribers of a deleted topic are told, not left silent', { timeout: 60_000 }, async () => {
  const data = tempDataDir()
  let node: GemProcess | undefined
  let ws: WebSocket | undefined
  const aborts = new AbortController()
  try {
    node = await startGem(data.dir)
    const url = node.url
    assert.equal((await api(url, 'POST', '/topics', { name: 'doomed' })).status, 201)
    assert.equal((await api(url, 'POST', '/topics', { name: 'other' })).status, 201)

    ws = new WebSocket(url.replace('http', 'ws') + '/ws')
    const frames: any[] = []
    ws.on('message', raw => frames.push(JSON.parse(String(raw))))
    await new Promise((resolve, reject) => { ws!.once('open', resolve); ws!.once('error', reject) })
    const waitFrame = async (pred: (f: any) => boolean, what: string): Promise<any> => {
      const deadline = Date.now() + 10_000
      for (;;) {
        const f = frames.find(pred)
        if (f !== undefined) return f
        assert.ok(Date.now() < deadline, `timed out waiting for ${what}; frames: ${JSON.stringify(frames)}`)
        await new Promise(resolve => setTimeout(resolve, 10))
      }
    }
    ws.send(JSON.stringify({ type: 'subscribe', topic: 'doomed', client_id: 'c', request_id: 's1' }))
    await waitFrame(f => f.type === 'ack' && f.request_id === 's1', 'subscribe ack')

    const tailStream = await fetch(`${url}/topics/doomed/events`, { signal: aborts.signal })
    const groupStream = await fetch(`${url}/topics/doomed/events?group=watchers`, { signal: aborts.signal })
    assert.equal(tailStream.status, 200)
    assert.equal(groupStream.status, 200)
    const drain = async (res: Response): Promise<string> => {
      let text = ''
      const reader = res.body!.getReader()
      for (;;) {
        const { done, value } = await reader.read()
        if (done) return text
        text += new TextDecoder().decode(value)
      }
    }
    const tailEnded = drain(tailStream)
    const groupEnded = drain(groupStream)

    assert.equal((await api(url, 'DELETE', '/topics/doomed')).status, 204)
    const err = await waitFrame(f => f.type === 'error', 'the deletion error frame')
    assert.equal(err.error.code, 'TOPIC_NOT_FOUND')
    assert.equal(err.request_id, null)
    assert.match(err.error.message, /doomed/)
    // Both SSE streams end by themselves (the test's own timeout is the deadline).
    await tailEnded
    await groupEnded

    // The socket still works: subscribe elsewhere and receive.
    ws.send(JSON.stringify({ type: 'subscribe', topic: 'other', client_id: 'c', request_id: 's2' }))
    await waitFrame(f => f.type === 'ack' && f.request_id === 's2', 'second subscribe ack')
    await api(url, 'POST', '/topics/other/messages', { payload: 'still here' })
    const ev = await waitFrame(f => f.type === 'event' && f.topic === 'other', 'an event on the other topic')
    assert.equal(ev.message.payload, 'still here')
  } finally {
    aborts.abort()
    ws?.terminate()
    await node?.kill()
    data.remove()
  }
})
