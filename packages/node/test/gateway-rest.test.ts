// The REST surface of the gateway on a real broker and LevelDB: every route's happy path, the error contract, and bad
// input of every kind (each answers its documented code, the server keeps serving, and nothing acked is lost).
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'node:http'
import { api, rawRequest, startTestGateway, waitFor } from './gateway-harness.ts'
import type { TestGateway } from './gateway-harness.ts'

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/
const MAX_PAYLOAD = 16 * 1024

function assertError (r: { status: number, json: any }, status: number, code: string, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.json))
  assert.equal(r.json.error, code)
  assert.equal(typeof r.json.message, 'string')
  assert.match(r.json.ts, ISO)
  if (message !== undefined) assert.match(r.json.message, message)
}

describe('gateway REST', () => {
  let g: TestGateway
  before(async () => { g = await startTestGateway({ maxPayloadBytes: MAX_PAYLOAD }) })
  after(async () => { await g?.stop() })

  test('GET /health, /info, /stats, /metrics, /cluster', async () => {
    const h = await api(g.url, 'GET', '/health')
    assert.equal(h.status, 200)
    assert.equal(h.json.status, 'ok')
    assert.equal(h.json.node_id, 'test-node')
    assert.equal(typeof h.json.uptime_s, 'number')

    const i = await api(g.url, 'GET', '/info')
    assert.equal(i.json.node_id, 'test-node')
    assert.equal(i.json.version, '0.0.0-test')
    assert.equal(i.json.http_url, g.url)
    assert.equal(i.json.data_dir, g.dir)
    assert.equal(i.json.config.max_payload_bytes, MAX_PAYLOAD)
    assert.equal(i.json.config.slow_consumer.policy, 'disconnect')

    const s = await api(g.url, 'GET', '/stats')
    for (const k of ['topics', 'published', 'duplicates', 'delivered', 'redelivered', 'dead_lettered', 'commits']) assert.equal(typeof s.json[k], 'number', k)
    assert.ok(Array.isArray(s.json.groups))

    const m = await fetch(g.url + '/metrics')
    assert.equal(m.status, 200)
    assert.match(m.headers.get('content-type') ?? '', /text\/plain/)
    const text = await m.text()
    assert.match(text, /process_cpu_user_seconds_total/)
    assert.match(text, /gem_http_requests_total\{method="GET",route="\/health",status="200"\} \d+/)

    await api(g.url, 'POST', '/topics', { name: 'cl', partitions: 2 })
    const c = await api(g.url, 'GET', '/cluster')
    assert.equal(c.json.nodes[0].id, 'test-node')
    assert.deepEqual(c.json.partitions.filter((p: any) => p.topic === 'cl').map((p: any) => p.partition), [0, 1])
  })

  test('topics: create, list, get, conflict, delete', async () => {
    const created = await api(g.url, 'POST', '/topics', { name: 'orders', partitions: 3, retention: { max_age_ms: 60_000, max_bytes: 1 << 20 } })
    assert.equal(created.status, 201)
    assert.equal(created.json.name, 'orders')
    assert.equal(created.json.partitions, 3)
    assert.equal(created.json.replication, 1)
    assert.deepEqual(created.json.retention, { max_age_ms: 60_000, max_bytes: 1 << 20 })
    assert.match(created.json.created_at, ISO)
    assert.deepEqual(created.json.offsets, [0, 1, 2].map(p => ({ partition: p, low: 0, high: 0 })))

    assertError(await api(g.url, 'POST', '/topics', { name: 'orders' }), 409, 'TOPIC_EXISTS')

    const list = await api(g.url, 'GET', '/topics')
    assert.ok(list.json.topics.some((t: any) => t.name === 'orders'))
    const one = await api(g.url, 'GET', '/topics/orders')
    assert.deepEqual(one.json, created.json)

    const del = await api(g.url, 'DELETE', '/topics/orders')
    assert.equal(del.status, 204)
    assertError(await api(g.url, 'GET', '/topics/orders'), 404, 'TOPIC_NOT_FOUND')
    assertError(await api(g.url, 'DELETE', '/topics/orders'), 404, 'TOPIC_NOT_FOUND')
  })

  test('publish: 201 after durability, duplicates answer 200 with the original, and reads return what was stored', async () => {
    await api(g.url, 'POST', '/topics', { name: 'pub' })
    const a = await api(g.url, 'POST', '/topics/pub/messages', { payload: 'hello', id: 'm-1', key: 'k', headers: { h: 'v' }, priority: 7 })
    assert.equal(a.status, 201)
    assert.deepEqual(a.json, { id: 'm-1', partition: 0, offset: 0 })
    const dup = await api(g.url, 'POST', '/topics/pub/messages', { payload: 'hello again', id: 'm-1' })
    assert.equal(dup.status, 200)
    assert.deepEqual(dup.json, { id: 'm-1', partition: 0, offset: 0, duplicate: true })
    const j = await api(g.url, 'POST', '/topics/pub/messages', { payload: { n: 1, list: [true, null] } })
    assert.equal(j.status, 201)
    assert.equal(j.json.offset, 1)
    assert.equal(typeof j.json.id, 'string')
    const b = await api(g.url, 'POST', '/topics/pub/messages', { payload_base64: Buffer.from([0, 1, 254]).toString('base64') })
    assert.equal(b.json.offset, 2)

    const r = await api(g.url, 'GET', '/topics/pub/messages')
    assert.equal(r.status, 200)
    assert.equal(r.json.next, 3)
    const [m0, m1, m2] = r.json.messages
    assert.deepEqual(Object.keys(m0), ['id', 'topic', 'partition', 'offset', 'payload', 'key', 'headers', 'priority', 'ts'])
    assert.equal(m0.payload, 'hello')
    assert.equal(m0.key, 'k')
    assert.deepEqual(m0.headers, { h: 'v' })
    assert.equal(m0.priority, 7)
    assert.match(m0.ts, ISO)
    assert.deepEqual(m1.payload, { n: 1, list: [true, null] })
    assert.deepEqual(m1.headers, {})
    assert.equal(m2.payload_base64, Buffer.from([0, 1, 254]).toString('base64'))

    const page = await api(g.url, 'GET', '/topics/pub/messages?partition=0&from=1&limit=1')
    assert.equal(page.json.messages.length, 1)
    assert.equal(page.json.messages[0].offset, 1)
    assert.equal(page.json.next, 2)
    const end = await api(g.url, 'GET', '/topics/pub/messages?from=3')
    assert.deepEqual(end.json, { messages: [], next: 3 })
  })

  test('batch publish: array and {"messages": [...]} bodies', async () => {
    await api(g.url, 'POST', '/topics', { name: 'batch' })
    const a = await api(g.url, 'POST', '/topics/batch/messages', [{ payload: 'a' }, { payload: 'b', id: 'b1' }])
    assert.equal(a.status, 201)
    assert.deepEqual(a.json.results.map((x: any) => x.offset), [0, 1])
    assert.equal(a.json.results[1].id, 'b1')
    const b = await api(g.url, 'POST', '/topics/batch/messages', { messages: [{ payload: 'c' }, { payload: 'again', id: 'b1' }] })
    assert.equal(b.status, 201)
    assert.equal(b.json.results[0].offset, 2)
    assert.deepEqual(b.json.results[1], { id: 'b1', partition: 0, offset: 1, duplicate: true })
    // A bad item refuses the whole batch before anything is stored.
    assertError(await api(g.url, 'POST', '/topics/batch/messages', [{ payload: 'd' }, { payload: 'e', priority: 'x' }]), 400, 'BAD_REQUEST', /messages\[1\]\.priority/)
    assertError(await api(g.url, 'POST', '/topics/batch/messages', [{ payload: 'd' }, { payload: 'e', priority: 11 }]), 400, 'BAD_REQUEST', /messages\[1\]\.priority/)
    assertError(await api(g.url, 'POST', '/topics/batch/messages', []), 400, 'BAD_REQUEST', /empty/)
    // Limits only the broker knows (here the id length) are checked for every item before any is stored.
    assertError(await api(g.url, 'POST', '/topics/batch/messages', [{ payload: 'd' }, { payload: 'e', id: 'x'.repeat(300) }]), 400, 'BAD_REQUEST', /messages\[1\].*id/)
    const r = await api(g.url, 'GET', '/topics/batch/messages')
    assert.deepEqual(r.json.messages.map((m: any) => m.payload), ['a', 'b', 'c'])
  })

  test('bad input: malformed JSON, wrong types, missing fields, unknown topics and routes, bad query params', async () => {
    await api(g.url, 'POST', '/topics', { name: 'bad' })
    assertError(await api(g.url, 'POST', '/topics', '{"name": '), 400, 'BAD_REQUEST', /not valid JSON/)
    assertError(await api(g.url, 'POST', '/topics', ''), 400, 'BAD_REQUEST', /body is required/)
    assertError(await api(g.url, 'POST', '/topics', { partitions: 2 }), 400, 'BAD_REQUEST', /name is required/)
    assertError(await api(g.url, 'POST', '/topics', { name: 5 }), 400, 'BAD_REQUEST', /name must be a string/)
    assertError(await api(g.url, 'POST', '/topics', { name: 'x1', partitions: 'two' }), 400, 'BAD_REQUEST', /partitions/)
    assertError(await api(g.url, 'POST', '/topics', { name: 'x2', partitions: 0 }), 400, 'BAD_REQUEST', /partitions/)
    assertError(await api(g.url, 'POST', '/topics', { name: 'x3', retention: 5 }), 400, 'BAD_REQUEST', /retention/)
    assertError(await api(g.url, 'POST', '/topics', { name: 'x4', retention: { max_age_ms: -1 } }), 400, 'BAD_REQUEST', /max_?[aA]ge/)
    assertError(await api(g.url, 'POST', '/topics', { name: 'has/slash' }), 400, 'BAD_REQUEST', /topic name/)
    assertError(await api(g.url, 'POST', '/topics', [1, 2]), 400, 'BAD_REQUEST')

    assertError(await api(g.url, 'POST', '/topics/bad/messages', '{oops'), 400, 'BAD_REQUEST', /JSON/)
    assertError(await api(g.url, 'POST', '/topics/bad/messages', { id: 'x' }), 400, 'BAD_REQUEST', /payload is required/)
    assertError(await api(g.url, 'POST', '/topics/bad/messages', { payload: 'x', headers: { a: 1 } }), 400, 'BAD_REQUEST', /headers\.a/)
    assertError(await api(g.url, 'POST', '/topics/bad/messages', { payload: 'x', priority: 11 }), 400, 'BAD_REQUEST', /priority/)
    assertError(await api(g.url, 'POST', '/topics/bad/messages', { payload_base64: '***' }), 400, 'BAD_REQUEST', /base64/)
    assertError(await api(g.url, 'POST', '/topics/bad/messages', 'null'), 400, 'BAD_REQUEST')
    assertError(await api(g.url, 'POST', '/topics/nope/messages', { payload: 'x' }), 404, 'TOPIC_NOT_FOUND')
    assertError(await api(g.url, 'GET', '/topics/nope/messages'), 404, 'TOPIC_NOT_FOUND')
    assertError(await api(g.url, 'GET', '/topics/nope'), 404, 'TOPIC_NOT_FOUND')
    assertError(await api(g.url, 'POST', '/topics/nope/groups/g/pull'), 404, 'TOPIC_NOT_FOUND')

    assertError(await api(g.url, 'GET', '/topics/bad/messages?from=abc'), 400, 'BAD_REQUEST', /from/)
    assertError(await api(g.url, 'GET', '/topics/bad/messages?limit=-1'), 400, 'BAD_REQUEST', /limit/)
    assertError(await api(g.url, 'GET', '/topics/bad/messages?limit=0'), 400, 'BAD_REQUEST', /limit/)
    assertError(await api(g.url, 'GET', '/topics/bad/messages?partition=9'), 400, 'BAD_REQUEST', /partition/)
    assertError(await api(g.url, 'POST', '/topics/bad/groups/g/pull?max=lots'), 400, 'BAD_REQUEST', /max/)
    assertError(await api(g.url, 'POST', '/topics/bad/groups/g/pull?wait_ms=1.5'), 400, 'BAD_REQUEST', /wait_ms/)
    assertError(await api(g.url, 'POST', '/topics/bad/groups/bad%20group/pull'), 400, 'BAD_REQUEST', /group/)
    assertError(await api(g.url, 'GET', '/topics/bad/events?from=sometime'), 400, 'BAD_REQUEST', /from/)

    assertError(await api(g.url, 'GET', '/nowhere'), 404, 'NOT_FOUND')
    assertError(await api(g.url, 'PUT', '/topics'), 404, 'NOT_FOUND')

    const health = await api(g.url, 'GET', '/health')
    assert.equal(health.status, 200)
    const unmatched = await (await fetch(g.url + '/metrics')).text()
    assert.match(unmatched, /route="unmatched",status="404"/)
  })

  test('oversize: payload over the limit, a body over the limit by Content-Length and while streaming', async () => {
    await api(g.url, 'POST', '/topics', { name: 'big' })
    assertError(await api(g.url, 'POST', '/topics/big/messages', { payload: 'x'.repeat(MAX_PAYLOAD + 1) }), 413, 'PAYLOAD_TOO_LARGE')
    const ok = await api(g.url, 'POST', '/topics/big/messages', { payload: 'x'.repeat(MAX_PAYLOAD) })
    assert.equal(ok.status, 201)

    // Declared too large: refused from the header, before the body is read.
    const huge = Buffer.alloc(4 * MAX_PAYLOAD + 200_000, 0x61)
    const declared = await rawRequest(g.url, { method: 'POST', path: '/topics/big/messages', headers: { 'content-type': 'application/json', 'content-length': huge.length }, body: huge })
    assert.equal(declared.status, 413)
    assert.equal(JSON.parse(declared.body).error, 'PAYLOAD_TOO_LARGE')

    // Chunked, no length: refused at the first byte past the limit.
    const chunk = Buffer.alloc(32 * 1024, 0x61)
    const chunks = [Buffer.from('{"payload":"'), ...Array.from({ length: 8 }, () => chunk), Buffer.from('"}')]
    const streamed = await rawRequest(g.url, { method: 'POST', path: '/topics/big/messages', headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' }, chunks })
    assert.equal(streamed.status, 413)
    assert.equal(JSON.parse(streamed.body).error, 'PAYLOAD_TOO_LARGE')

    assert.equal((await api(g.url, 'GET', '/health')).status, 200)
    const r = await api(g.url, 'GET', '/topics/big/messages')
    assert.equal(r.json.messages.length, 1, 'only the accepted message was stored')
  })

  test('a client that aborts a POST mid-body leaves the server serving and stores nothing half-read', async () => {
    await api(g.url, 'POST', '/topics', { name: 'abort' })
    const acked = await api(g.url, 'POST', '/topics/abort/messages', { payload: 'before', id: 'before' })
    assert.equal(acked.status, 201)
    const u = new URL(g.url)
    await new Promise<void>((resolve) => {
      const req = request({ host: u.hostname, port: u.port, method: 'POST', path: '/topics/abort/messages', headers: { 'content-type': 'application/json', 'content-length': 1000 } })
      req.on('error', () => resolve())
      req.on('close', () => resolve())
      req.write('{"payload":"half of a bo')
      // Give the server the first bytes, then vanish.
      setImmediate(() => req.destroy())
    })
    await waitFor(async () => (await api(g.url, 'GET', '/health')).status === 200, 'health after an aborted request')
    const after1 = await api(g.url, 'POST', '/topics/abort/messages', { payload: 'after', id: 'after' })
    assert.equal(after1.status, 201)
    const r = await api(g.url, 'GET', '/topics/abort/messages')
    assert.deepEqual(r.json.messages.map((m: any) => m.id), ['before', 'after'])
  })

  test('browsers on other origins may call the API (CORS)', async () => {
    const pre = await fetch(g.url + '/topics', { method: 'OPTIONS', headers: { origin: 'http://localhost:5173', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } })
    assert.equal(pre.status, 204)
    assert.equal(pre.headers.get('access-control-allow-origin'), '*')
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/)
    const get = await fetch(g.url + '/health', { headers: { origin: 'http://localhost:5173' } })
    assert.equal(get.headers.get('access-control-allow-origin'), '*')
    await get.text()
  })

  test('keep-alive connections keep working after an error response', async () => {
    await api(g.url, 'POST', '/topics', { name: 'ka' })
    for (let i = 0; i < 5; i++) {
      assertError(await api(g.url, 'POST', '/topics/ka/messages', '{bad'), 400, 'BAD_REQUEST')
      assert.equal((await api(g.url, 'POST', '/topics/ka/messages', { payload: `m${i}` })).status, 201)
    }
    const r = await api(g.url, 'GET', '/topics/ka/messages')
    assert.equal(r.json.messages.length, 5)
  })
})
