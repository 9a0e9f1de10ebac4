// The REST surface as a Hono app: topics, publish and read, pull consumers, SSE, and /health /info /stats /metrics /cluster.
// Handlers translate JSON to broker calls and back; they hold no state of their own beyond the SSE registry.
import { performance as perf } from 'node:perf_hooks'
import { Hono } from 'hono'
import type { Context } from 'hono'
import { cors } from 'hono/cors'
import { routePath } from 'hono/route'
import { GemError, toGemError } from '@gem-mesh/core'
import type { BrokerStats, PublishInput, PublishResult, TopicConfig, TopicInfo } from '@gem-mesh/core'
import type { GatewayContext } from './context.ts'
import { isoNow, isoOf } from './iso-time.ts'
import { restError, restErrorOf } from './json-errors.ts'
import { messageView } from './payload.ts'
import { parsePublishRequest } from './publish-request.ts'
import { readJson } from './request-body.ts'
import type { SseStreams } from './sse.ts'
import type { LoadReport, NodeCard, PartitionMove, PartitionReplicaView } from '@gem-mesh/core/mesh'

const JSON_TYPE = { 'content-type': 'application/json; charset=utf-8' }
const READ_LIMIT_DEFAULT = 100
const READ_LIMIT_MAX = 1000

function json (body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: JSON_TYPE })
}

export function createRestApp (ctx: GatewayContext, sse: SseStreams): Hono {
  const { broker } = ctx
  const app = new Hono()

  app.use('*', async (c, next) => {
    const started = performance.now()
    await next()
    const route = routePath(c, -1)
    ctx.metrics.gateway.httpRequest(c.req.method, route === '/*' || route === '*' || route === '' ? 'unmatched' : route, c.res.status, (performance.now() - started) / 1000)
  })

  // Browser dashboards are served from other origins (the Vite dev server, a CDN). There are no credentials to
  // protect yet, so any origin may read; WebSocket connections are not subject to CORS at all.
  app.use('*', cors())

  app.onError((err, c) => {
    const e = toGemError(err)
    if (e.code === 'INTERNAL') ctx.logger.error({ err, method: c.req.method, path: c.req.path }, 'request failed')
    return restErrorOf(e)
  })
  app.notFound(c => restError('NOT_FOUND', `no route for ${c.req.method} ${c.req.path}`))

  // ---- node --------------------------------------------------------------------------------------

  app.get('/health', () => {
    // Still 200 when the remote tier is degraded: the node serves every request; the status says what is wrong.
    const storage = ctx.info.storage?.()
    return json({
      status: storage?.remote.state === 'degraded' ? 'degraded' : 'ok',
      node_id: ctx.info.nodeId,
      version: ctx.info.version,
      uptime_s: uptime(ctx),
      ...(storage !== undefined ? { storage } : {}),
      ts: isoNow(),
    })
  })

  app.get('/info', () => json({
    node_id: ctx.info.nodeId,
    version: ctx.info.version,
    http_url: ctx.url,
    ws_url: ctx.url.replace(/^http/, 'ws') + '/ws',
    data_dir: ctx.info.dataDir,
    peer_id: ctx.info.mesh?.peerId ?? null,
    multiaddrs: ctx.info.mesh?.multiaddrs() ?? [],
    started_at: isoOf(ctx.startedAt),
    uptime_s: uptime(ctx),
    runtime: { name: 'node', version: process.versions.node, pid: process.pid },
    config: {
      max_payload_bytes: ctx.maxPayloadBytes,
      max_body_bytes: ctx.maxBodyBytes,
      slow_consumer: { policy: ctx.slowConsumer.policy, max_buffered_bytes: ctx.slowConsumer.maxBufferedBytes },
      sse_heartbeat_ms: ctx.sseHeartbeatMs,
    },
  }))

  app.get('/stats', () => json({ ...statsView(broker.stats()), gateway: { ws_connections: ctx.counts.ws, sse_streams: ctx.counts.sse } }))

  app.get('/metrics', async () => {
    const registry = ctx.metrics.registry
    return new Response(await registry.metrics(), { headers: { 'content-type': registry.contentType } })
  })

  // Every partition is still led and held by the node that owns it locally (replication comes with the
  // mesh's replica layer); the node list is this node plus the GEM nodes connected over the mesh now.
  let elu = perf.eventLoopUtilization()
  /** Each partition as this node sees it: replicas and leader as node ids, its epoch, and the local offsets. */
  const partitionViews = () => {
    const mesh = ctx.info.mesh
    const nodeOf = new Map<string, string>([...(mesh?.peers() ?? []).map(p => [p.peerId, p.nodeId] as [string, string])])
    if (mesh !== undefined) nodeOf.set(mesh.peerId, ctx.info.nodeId)
    const name = (peer: string | null): string | null => peer === null ? null : nodeOf.get(peer) ?? peer
    const defs = new Map((mesh?.topics?.() ?? []).map(d => [d.name, d]))
    const replicas = new Map((mesh?.replicas?.() ?? []).map(v => [`${v.topic}/${v.partition}`, v]))
    const moves = new Map((mesh?.moves?.() ?? []).map(m => [`${m.topic}/${m.partition}`, m]))
    return broker.listTopics().flatMap(t => t.offsets.map(o => {
      const placed = defs.get(t.name)?.replicas[o.partition]
      const here = replicas.get(`${t.name}/${o.partition}`)
      const leaderPeer = here !== undefined ? here.leader : placed?.length === 1 ? placed[0] : null
      return {
        topic: t.name,
        partition: o.partition,
        leader: placed === undefined ? ctx.info.nodeId : name(leaderPeer),
        replicas: placed === undefined ? [ctx.info.nodeId] : placed.map(p => name(p)),
        epoch: here?.epoch ?? 0,
        offsets: { low: o.low, high: o.high, ...(here !== undefined ? { commit: here.commit, end: here.end, replica_start: here.start } : {}) },
        ...(here !== undefined ? { role: here.role, ...(here.installs > 0 ? { snapshot_installs: here.installs } : {}) } : {}),
        ...movingView(moves.get(`${t.name}/${o.partition}`), here, name),
      }
    }))
  }

  /**
   * Every other node SWIM knows (alive, suspect or dead; a node that left is gone), with its gossiped load, plus
   * connected nodes SWIM has not confirmed yet. Node id and url come from the hello card, else from SWIM metadata.
   */
  const otherNodes = (): Array<Record<string, unknown>> => {
    const mesh = ctx.info.mesh
    if (mesh === undefined) return []
    const cards = new Map(mesh.peers().map(c => [c.peerId, c]))
    const out: Array<Record<string, unknown>> = []
    const listed = new Set<string>([mesh.peerId])
    for (const m of mesh.members?.() ?? []) {
      if (m.self || m.state === 'left' || listed.has(m.id)) continue
      listed.add(m.id)
      const card = cards.get(m.id) ?? { nodeId: m.meta?.node ?? m.id, peerId: m.id, httpUrl: m.meta?.http, multiaddrs: [], role: m.meta?.role === 'browser' ? 'browser' as const : 'server' as const }
      out.push({ ...nodeView(card, m.state, m.load?.utilization ?? null, predictedOf(m.id)), incarnation: m.incarnation, load_report: m.load === undefined ? null : loadView(m.load) })
    }
    // Other nodes' load arrives with membership's load reports; until then it is unknown, not zero.
    for (const c of cards.values()) if (!listed.has(c.peerId)) out.push(nodeView(c, 'alive', null, predictedOf(c.peerId)))
    return out
  }

  const predictedOf = (peerId: string | undefined): number | null => peerId === undefined ? null : ctx.info.mesh?.prediction?.().predicted(peerId) ?? null

  app.get('/cluster', () => {
    // Load = event-loop utilization since the previous /cluster answer.
    const now = perf.eventLoopUtilization()
    const load = perf.eventLoopUtilization(now, elu).utilization
    elu = now
    const prediction = ctx.info.mesh?.prediction?.()
    return json({
      nodes: [
        nodeView({ nodeId: ctx.info.nodeId, peerId: ctx.info.mesh?.peerId, httpUrl: ctx.url, multiaddrs: ctx.info.mesh?.multiaddrs() ?? [], role: 'server' }, 'alive', load, predictedOf(ctx.info.mesh?.peerId)),
        ...otherNodes(),
      ],
      partitions: partitionViews(),
      // Load prediction (#7): what this node decided on its forecasts, newest last, each with its prediction.
      decisions: prediction?.decisions ?? [],
      ...(prediction !== undefined ? { prediction: { predictor: prediction.predictor, capacity: prediction.capacity, admission: prediction.admission, features: prediction.features } } : {}),
    })
  })

  // ---- topics ------------------------------------------------------------------------------------

  app.post('/topics', async c => {
    const body = await readJson(c.req.raw, ctx.maxBodyBytes)
    const { name, config } = parseCreateTopic(body)
    return json(topicView(await broker.createTopic(name, config)), 201)
  })

  app.get('/topics', () => json({ topics: broker.listTopics().map(topicView) }))

  app.get('/topics/:name', c => json(topicView(broker.getTopic(c.req.param('name')))))

  app.delete('/topics/:name', async c => {
    await broker.deleteTopic(c.req.param('name'))
    return new Response(null, { status: 204 })
  })

  // ---- messages ----------------------------------------------------------------------------------

  app.post('/topics/:name/messages', async c => {
    const topic = c.req.param('name')
    const body = await readJson(c.req.raw, ctx.maxBodyBytes)
    const batch = batchOf(body)
    if (batch === undefined) {
      const r = await broker.publish(topic, parsePublishRequest(body, ctx.maxPayloadBytes, ''))
      return json(ackView(r), r.duplicate ? 200 : 201)
    }
    // Validate all before storing any: a bad item refuses the whole batch.
    const inputs: PublishInput[] = batch.map((m, i) => parsePublishRequest(m, ctx.maxPayloadBytes, `messages[${i}]`))
    inputs.forEach((input, i) => {
      try {
        broker.checkPublish(topic, input)
      } catch (err) {
        const e = toGemError(err)
        throw new GemError(e.code, `messages[${i}]: ${e.message}`)
      }
    })
    const settled = await Promise.allSettled(inputs.map(input => broker.publish(topic, input)))
    const results = settled.map(s => s.status === 'fulfilled' ? ackView(s.value) : errorView(s.reason))
    const failed = settled.find(s => s.status === 'rejected')
    if (failed === undefined) return json({ results }, 201)
    const e = toGemError((failed as PromiseRejectedResult).reason)
    return restError(e.code, e.message, { results })
  })

  app.get('/topics/:name/messages', async c => {
    const partition = intQuery(c, 'partition', 0)
    const from = intQuery(c, 'from', 0)
    const limit = Math.min(intQuery(c, 'limit', READ_LIMIT_DEFAULT), READ_LIMIT_MAX)
    if (limit < 1) throw new GemError('BAD_REQUEST', `limit must be an integer from 1 to ${READ_LIMIT_MAX}`)
    const res = await broker.read(c.req.param('name'), partition, from, limit)
    return json({ messages: res.messages.map(r => messageView(r)), next: res.next })
  })

  // ---- pull consumers ----------------------------------------------------------------------------

  app.post('/topics/:name/groups/:group/pull', async c => {
    const max = intQuery(c, 'max', 10)
    const waitMs = intQuery(c, 'wait_ms', 0)
    // A client that goes away, or a gateway that shuts down, ends the wait; what was taken is redelivered later.
    const signal = AbortSignal.any([c.req.raw.signal, ctx.shutdown])
    const deliveries = await broker.pull(c.req.param('name'), c.req.param('group'), { max, waitMs, signal })
    return json({ messages: deliveries.map(d => messageView(d.record, { attempt: d.attempt, tag: d.tag })) })
  })

  app.post('/topics/:name/groups/:group/ack', async c => {
    const { tags } = await readTags(c, ctx, false)
    return json(await broker.ack(c.req.param('name'), c.req.param('group'), tags))
  })

  app.post('/topics/:name/groups/:group/nack', async c => {
    const { tags, delayMs } = await readTags(c, ctx, true)
    return json(await broker.nack(c.req.param('name'), c.req.param('group'), tags, delayMs))
  })

  // ---- server-sent events ------------------------------------------------------------------------

  app.get('/topics/:name/events', c => sse.open({
    topic: c.req.param('name'),
    group: c.req.query('group'),
    from: c.req.query('from'),
    lastN: c.req.query('last_n'),
    lastEventId: c.req.header('last-event-id') ?? c.req.query('last_event_id'),
    signal: c.req.raw.signal,
  }))

  return app
}

function uptime (ctx: GatewayContext): number {
  return Math.floor((Date.now() - ctx.startedAt) / 1000)
}

/** A non-negative integer query parameter, or its default when absent. */
function intQuery (c: Context, name: string, dflt: number): number {
  const raw = c.req.query(name)
  if (raw === undefined || raw === '') return dflt
  if (!/^\d{1,15}$/.test(raw)) throw new GemError('BAD_REQUEST', `${name} must be a non-negative integer, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

/** `[...]` and `{"messages":[...]}` are batches; an object with a payload is one message. */
function batchOf (body: unknown): unknown[] | undefined {
  let list: unknown
  if (Array.isArray(body)) list = body
  else if (body !== null && typeof body === 'object' && 'messages' in body && !('payload' in body) && !('payload_base64' in body)) {
    list = (body as { messages: unknown }).messages
    if (!Array.isArray(list)) throw new GemError('BAD_REQUEST', 'messages must be an array')
  } else return undefined
  if ((list as unknown[]).length === 0) throw new GemError('BAD_REQUEST', 'messages must not be empty')
  return list as unknown[]
}

function parseCreateTopic (body: unknown): { name: string, config: TopicConfig } {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new GemError('BAD_REQUEST', 'the body must be a JSON object with a name')
  const b = body as Record<string, unknown>
  if (b.name === undefined) throw new GemError('BAD_REQUEST', 'name is required')
  if (typeof b.name !== 'string') throw new GemError('BAD_REQUEST', 'name must be a string')
  const config: TopicConfig = {}
  const optInt = (v: unknown, field: string): number | undefined => {
    if (v === undefined || v === null) return undefined
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw new GemError('BAD_REQUEST', `${field} must be an integer`)
    return v
  }
  const partitions = optInt(b.partitions, 'partitions')
  if (partitions !== undefined) config.partitions = partitions
  const replication = optInt(b.replication, 'replication')
  if (replication !== undefined) config.replication = replication
  if (b.retention !== undefined && b.retention !== null) {
    if (typeof b.retention !== 'object' || Array.isArray(b.retention)) throw new GemError('BAD_REQUEST', 'retention must be an object: {"max_age_ms"?, "max_bytes"?}')
    const r = b.retention as Record<string, unknown>
    // camelCase too: the SDK's TopicConfig spells them that way.
    const maxAgeMs = optInt(r.max_age_ms ?? r.maxAgeMs, 'retention.max_age_ms')
    const maxBytes = optInt(r.max_bytes ?? r.maxBytes, 'retention.max_bytes')
    config.retention = {}
    if (maxAgeMs !== undefined) config.retention.maxAgeMs = maxAgeMs
    if (maxBytes !== undefined) config.retention.maxBytes = maxBytes
  }
  return { name: b.name, config }
}

async function readTags (c: Context, ctx: GatewayContext, nack: boolean): Promise<{ tags: string[], delayMs?: number }> {
  const body = await readJson(c.req.raw, ctx.maxBodyBytes)
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new GemError('BAD_REQUEST', 'the body must be a JSON object: {"tags": [...]}')
  const b = body as Record<string, unknown>
  if (b.tags === undefined) throw new GemError('BAD_REQUEST', 'tags is required')
  if (!Array.isArray(b.tags) || b.tags.some(t => typeof t !== 'string')) throw new GemError('BAD_REQUEST', 'tags must be an array of strings')
  const out: { tags: string[], delayMs?: number } = { tags: b.tags as string[] }
  if (nack && b.delay_ms !== undefined && b.delay_ms !== null) {
    if (typeof b.delay_ms !== 'number' || !Number.isSafeInteger(b.delay_ms) || b.delay_ms < 0) throw new GemError('BAD_REQUEST', 'delay_ms must be a non-negative integer')
    out.delayMs = b.delay_ms
  }
  return out
}

export function topicView (t: TopicInfo): Record<string, unknown> {
  return {
    name: t.name,
    partitions: t.partitions,
    replication: t.replication,
    retention: { max_age_ms: t.retention.maxAgeMs, max_bytes: t.retention.maxBytes },
    created_at: isoOf(t.createdAt),
    offsets: t.offsets.map(o => ({ partition: o.partition, low: o.low, high: o.high })),
  }
}

function ackView (r: PublishResult): Record<string, unknown> {
  return r.duplicate
    ? { id: r.id, partition: r.partition, offset: r.offset, duplicate: true }
    : { id: r.id, partition: r.partition, offset: r.offset }
}

function errorView (err: unknown): Record<string, unknown> {
  const e = toGemError(err)
  return { error: e.code, message: e.message }
}

function statsView (s: BrokerStats): Record<string, unknown> {
  return {
    topics: s.topics,
    published: s.published,
    published_bytes: s.publishedBytes,
    duplicates: s.duplicates,
    delivered: s.delivered,
    delivered_bytes: s.deliveredBytes,
    redelivered: s.redelivered,
    dead_lettered: s.deadLettered,
    commits: s.commits,
    groups: s.groups.map(g => ({
      topic: g.topic,
      group: g.group,
      backlog: g.backlog,
      in_flight: g.inFlight,
      consumers: g.consumers,
      committed: g.committed.map(x => ({ partition: x.partition, offset: x.offset })),
    })),
  }
}

/**
 * A replica move under way on a partition this node leads (partition reassignment), for /cluster: absent when none.
 * `learners` are joining replicas still catching up; `step` says what the leader does now and with whom.
 */
function movingView (move: PartitionMove | undefined, here: PartitionReplicaView | undefined, name: (peer: string | null) => string | null): Record<string, unknown> {
  if (move === undefined && (here === undefined || here.learners.length === 0)) return {}
  return {
    moving: {
      ...(move !== undefined ? { step: move.step, peer: name(move.peer), target: move.target.map(p => name(p)), cause: move.cause } : {}),
      learners: (here?.learners ?? []).map(p => name(p)),
    },
  }
}

/**
 * One /cluster node entry, the same shape for this node and for the peers the mesh reports. `predicted` (and its older
 * name `predicted_load`) is max(current, predicted within 30 s) load as this node forecasts it, null while unknown.
 */
function nodeView (n: Omit<NodeCard, 'peerId'> & { peerId?: string }, state: string, load: number | null, predicted: number | null = null): Record<string, unknown> {
  return {
    id: n.nodeId,
    peer_id: n.peerId ?? null,
    role: n.role,
    http_url: n.httpUrl ?? null,
    multiaddrs: n.multiaddrs,
    state,
    load,
    predicted_load: predicted,
    predicted,
  }
}

function loadView (l: LoadReport): Record<string, number> {
  return {
    publish_rate: l.publishRate, delivery_rate: l.deliveryRate, backlog: l.backlog, event_loop_lag_ms: l.eventLoopLagMs,
    ...(l.utilization === undefined ? {} : { utilization: l.utilization }), weight: l.weight,
  }
}
