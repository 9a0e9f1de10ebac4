// Prometheus metrics of one node: process defaults, broker events (via BrokerObserver), gateway traffic, group backlog.
// It only counts and exposes; it never changes what the broker or the gateway do, and its hooks never throw.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { BrokerApi, BrokerObserver } from '@gem-mesh/core'

export interface GatewayMetrics {
  httpRequest(method: string, route: string, status: number, seconds: number): void
  wsConnected(): void
  wsDisconnected(): void
  wsMessage(direction: 'in' | 'out', type: string): void
  sseOpened(): void
  sseClosed(): void
  slowConsumerDisconnect(surface: 'ws' | 'sse'): void
  slowConsumerDropped(surface: 'ws' | 'sse', events: number): void
}

export interface GemMetrics {
  registry: Registry
  observer: BrokerObserver
  gateway: GatewayMetrics
  /** Exposes backlog, in-flight and consumers per durable group, read from broker.stats() at scrape time. Returns the undo. */
  trackGroups(broker: Pick<BrokerApi, 'stats'>): () => void
}

// Ephemeral groups get a fresh name per consumer; as labels they would grow without bound.
const groupLabel = (g: string): string => g.startsWith('_ephemeral.') ? '_ephemeral' : g

export function createMetrics (): GemMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]

  const published = new Counter({ name: 'gem_published_records_total', help: 'Records committed durably, by topic.', labelNames: ['topic'], registers })
  const publishedBytes = new Counter({ name: 'gem_published_bytes_total', help: 'Payload bytes committed durably, by topic.', labelNames: ['topic'], registers })
  const commitSeconds = new Histogram({
    name: 'gem_commit_duration_seconds',
    help: 'Time of one group commit (one synced storage write).',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  })
  const commitRecords = new Histogram({
    name: 'gem_commit_batch_records',
    help: 'Records covered by one group commit.',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384],
    registers,
  })
  const commitBytes = new Counter({ name: 'gem_commit_bytes_total', help: 'Bytes written by group commits.', registers })
  const delivered = new Counter({ name: 'gem_delivered_total', help: 'Deliveries to consumers, by topic and group.', labelNames: ['topic', 'group'], registers })
  const redelivered = new Counter({ name: 'gem_redelivered_total', help: 'Redeliveries scheduled, by reason (deadline, nack).', labelNames: ['topic', 'group', 'reason'], registers })
  const deadLettered = new Counter({ name: 'gem_dead_lettered_total', help: 'Records moved to the dead-letter topic.', labelNames: ['topic', 'group'], registers })
  const ackSeconds = new Histogram({
    name: 'gem_ack_latency_seconds',
    help: 'Time from delivery to ack.',
    labelNames: ['topic', 'group'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  })
  const brokerErrors = new Counter({ name: 'gem_broker_errors_total', help: 'Errors the broker reported, by where they happened.', labelNames: ['where'], registers })

  // Label children cached by key: the observer runs once per commit or delivery, so the label hashing is skipped.
  const children = new Map<string, unknown>()
  const child = <T>(key: string, make: () => T): T => {
    let c = children.get(key) as T | undefined
    if (c === undefined) { c = make(); children.set(key, c) }
    return c
  }

  const observer: BrokerObserver = {
    committed (info) {
      commitSeconds.observe(info.durationMs / 1000)
      commitRecords.observe(info.records)
      commitBytes.inc(info.bytes)
    },
    published (topic, records, bytes) {
      child('p\0' + topic, () => published.labels(topic)).inc(records)
      child('pb\0' + topic, () => publishedBytes.labels(topic)).inc(bytes)
    },
    delivered (topic, group) {
      const g = groupLabel(group)
      child(`d\0${topic}\0${g}`, () => delivered.labels(topic, g)).inc()
    },
    acked (topic, group, latencyMs) {
      const g = groupLabel(group)
      child(`a\0${topic}\0${g}`, () => ackSeconds.labels(topic, g)).observe(latencyMs / 1000)
    },
    redelivered (topic, group, reason) {
      const g = groupLabel(group)
      child(`r\0${topic}\0${g}\0${reason}`, () => redelivered.labels(topic, g, reason)).inc()
    },
    deadLettered (topic, group) {
      const g = groupLabel(group)
      deadLettered.labels(topic, g).inc()
    },
    error (where) {
      brokerErrors.labels(where).inc()
    },
  }
  // The broker calls observers inline: a metrics bug must never become a broker failure.
  for (const [name, fn] of Object.entries(observer) as Array<[keyof BrokerObserver, (...a: unknown[]) => void]>) {
    observer[name] = ((...args: unknown[]) => { try { fn(...args) } catch { /* metrics only */ } }) as never
  }

  const httpRequests = new Counter({ name: 'gem_http_requests_total', help: 'HTTP requests, by method, route pattern and status.', labelNames: ['method', 'route', 'status'], registers })
  const httpSeconds = new Histogram({
    name: 'gem_http_request_duration_seconds',
    help: 'Time to the response head, by method and route pattern (SSE: until the stream opens).',
    labelNames: ['method', 'route'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30],
    registers,
  })
  const wsOpen = new Gauge({ name: 'gem_ws_connections', help: 'Open WebSocket connections.', registers })
  const wsTotal = new Counter({ name: 'gem_ws_connections_total', help: 'WebSocket connections accepted.', registers })
  // Counted in plain maps and copied into the counter at scrape time: two increments per publish stay off the hot path.
  const wsCounts = { in: new Map<string, number>(), out: new Map<string, number>() }
  new Counter({
    name: 'gem_ws_messages_total',
    help: 'WebSocket messages, by direction and type.',
    labelNames: ['direction', 'type'],
    registers,
    collect () {
      this.reset()
      for (const direction of ['in', 'out'] as const) {
        for (const [type, n] of wsCounts[direction]) this.labels(direction, type).inc(n)
      }
    },
  })
  const sseOpen = new Gauge({ name: 'gem_sse_streams', help: 'Open Server-Sent Events streams.', registers })
  const slowDisconnects = new Counter({ name: 'gem_slow_consumer_disconnects_total', help: 'Push subscribers disconnected for falling behind.', labelNames: ['surface'], registers })
  const slowDropped = new Counter({ name: 'gem_slow_consumer_dropped_events_total', help: 'Events dropped for push subscribers that fell behind (drop_oldest).', labelNames: ['surface'], registers })

  const gateway: GatewayMetrics = {
    httpRequest (method, route, status, seconds) {
      httpRequests.labels(method, route, String(status)).inc()
      httpSeconds.labels(method, route).observe(seconds)
    },
    wsConnected () { wsOpen.inc(); wsTotal.inc() },
    wsDisconnected () { wsOpen.dec() },
    wsMessage (direction, type) {
      const m = wsCounts[direction]
      m.set(type, (m.get(type) ?? 0) + 1)
    },
    sseOpened () { sseOpen.inc() },
    sseClosed () { sseOpen.dec() },
    slowConsumerDisconnect (surface) { slowDisconnects.labels(surface).inc() },
    slowConsumerDropped (surface, events) { slowDropped.labels(surface).inc(events) },
  }

  const tracked = new Set<Pick<BrokerApi, 'stats'>>()
  const collectGroups = (): Array<{ topic: string, group: string, backlog: number, inFlight: number, consumers: number }> => {
    const out = []
    for (const b of tracked) {
      try { out.push(...b.stats().groups) } catch { /* a closed broker has nothing to report */ }
    }
    return out
  }
  // The three gauges are collected one after the other in a scrape: one stats() call serves them all.
  let snapshot: ReturnType<typeof collectGroups> = []
  let snapshotAt = -Infinity
  const groupsNow = (): ReturnType<typeof collectGroups> => {
    const now = performance.now()
    if (now - snapshotAt > 50) { snapshot = collectGroups(); snapshotAt = now }
    return snapshot
  }
  const groupGauge = (name: string, help: string, value: (g: ReturnType<typeof collectGroups>[number]) => number): void => {
    new Gauge({
      name,
      help,
      labelNames: ['topic', 'group'],
      registers,
      collect () {
        this.reset()
        for (const g of groupsNow()) this.labels(g.topic, g.group).set(value(g))
      },
    })
  }
  groupGauge('gem_group_backlog', 'Records not yet acknowledged by a durable consumer group.', g => g.backlog)
  groupGauge('gem_group_in_flight', 'Deliveries of a durable group awaiting ack.', g => g.inFlight)
  groupGauge('gem_group_consumers', 'Consumers attached to a durable group.', g => g.consumers)

  return {
    registry,
    observer,
    gateway,
    trackGroups (broker) {
      tracked.add(broker)
      return () => { tracked.delete(broker) }
    },
  }
}
