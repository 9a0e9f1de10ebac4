// One GEM server node in one process: LevelDB log, broker engine, metrics and the HTTP gateway, started and stopped in order.
// It wires components together and records where the node listens; it never implements protocol or storage logic itself.
import { randomBytes } from 'node:crypto'
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Broker, GemError } from '@gem-mesh/core'
import type { BrokerObserver, StorageTier } from '@gem-mesh/core'
import type { GemConfig } from './config.ts'
import { startGateway } from './gateway/server.ts'
import { VERSION } from './cli/version.ts'
import { componentLogger, createLogger } from './logger.ts'
import type { Logger } from './logger.ts'
import { createMetrics } from './metrics.ts'
import { openLevelTier } from './storage/leveldb-tier.ts'
import { openNodeStorage } from './storage/node-storage.ts'
import { startNodeMeshHost } from './mesh/node-host.ts'
import { ClientService, MembershipService, MeshBroker, PartitionMover, PeerDirectory, ReplicationService, TierReplicaStore } from '@gem-mesh/core/mesh'
import { startLoadSampler } from './mesh/load-sampler.ts'
import { registerClientMetrics } from './mesh/client-metrics.ts'
import { startNodeLoadPrediction } from './predict/load-prediction.ts'
import type { NodeLoadPrediction } from './predict/load-prediction.ts'
import { registerPredictionMetrics } from './predict/prediction-metrics.ts'
import type { MemberView, MeshNode } from '@gem-mesh/core/mesh'
import { decodeRecord } from '@gem-mesh/core'
import type { BrokerApi } from '@gem-mesh/core'

/** What `<dataDir>/node.json` holds; other processes (CLI, tests, peers) read it to find a node. */
export interface NodeFile {
  nodeId: string
  /** Present while the node runs. */
  httpUrl?: string
  multiaddrs?: string[]
  /** The libp2p peer id (stable: the key is in <dataDir>/peer.key). */
  peerId?: string
  pid?: number
  startedAt?: string
  stoppedAt?: string
  version?: string
}

export interface GemNode {
  /** The local engine: this node's copy of every partition it holds. */
  broker: Broker
  /** What clients use: the mesh broker when the mesh is on (publishes go to partition leaders), else `broker`. */
  api: BrokerApi
  /** Topic placement and this node's replicas, when the mesh is on. */
  meshBroker?: MeshBroker
  gateway: { url: string, port: number, close(): Promise<void> }
  /** The libp2p host, when the mesh is on. */
  mesh?: MeshNode
  url: string
  nodeId: string
  dataDir: string
  logger: Logger
  /** Stops accepting requests, flushes the broker, closes storage. Safe to call more than once. */
  stop(): Promise<void>
}

export interface StartNodeOptions {
  logger?: Logger
}

export const NODE_FILE = 'node.json'

export { VERSION }

export async function startNode (config: GemConfig, opts: StartNodeOptions = {}): Promise<GemNode> {
  const root = opts.logger ?? createLogger({ level: config.logLevel })
  const dataDir = config.dataDir
  mkdirSync(dataDir, { recursive: true })
  const nodeId = readNodeFile(dataDir)?.nodeId ?? newNodeId()
  const log = root.child({ nodeId })
  const nodeLog = componentLogger(log, 'node')

  if (!config.mesh && config.join.length > 0) {
    throw new GemError('BAD_REQUEST', '--join needs the mesh; it is turned off (mesh: false)')
  }

  // Everything opened so far, closed in reverse if a later step fails.
  const undo: Array<() => Promise<void>> = []
  const unwind = async () => {
    for (const fn of undo.reverse()) {
      try { await fn() } catch (err) { nodeLog.error({ err }, 'cleanup after a failed start failed') }
    }
  }

  try {
    const levelTier = await openTier(join(dataDir, 'log'), config.durability)
    undo.push(() => levelTier.close())

    const metrics = createMetrics()
    // The applied log goes through the tier chain: memory (the broker's hot tail), LevelDB, then S3 for sealed segments.
    const storage = await openNodeStorage({ config, nodeId, local: levelTier, logger: componentLogger(log, 'storage'), registry: metrics.registry })
    undo.push(() => storage.close())
    const tier = storage.tier
    const brokerLog = componentLogger(log, 'broker')
    // Delegates by call (not by spreading) so an observer with prototype methods keeps working.
    const m: BrokerObserver = metrics.observer
    const observer: BrokerObserver = {
      committed: info => m.committed?.(info),
      published: (topic, records, bytes) => m.published?.(topic, records, bytes),
      delivered: (topic, group, attempt) => m.delivered?.(topic, group, attempt),
      acked: (topic, group, latencyMs) => m.acked?.(topic, group, latencyMs),
      redelivered: (topic, group, reason) => m.redelivered?.(topic, group, reason),
      deadLettered (topic, group, reason) {
        brokerLog.warn({ topic, group, reason }, 'message dead-lettered')
        m.deadLettered?.(topic, group, reason)
      },
      error (where, err) {
        brokerLog.error({ err, where }, 'broker error')
        m.error?.(where, err)
      },
    }
    const broker = await Broker.open({
      tier,
      ownsTier: false,
      observer,
      autoCreateTopics: config.autoCreateTopics,
      defaultPartitions: config.defaultPartitions,
      dedupWindowMs: config.dedupWindowMs,
      consumerDefaults: { ...config.consumer },
      retentionDefaults: { ...config.retention },
      segmentBytes: config.segmentBytes,
      segmentMaxAgeMs: config.segmentMaxAgeMs,
      hotBytesPerPartition: config.hotBytes,
    })
    undo.push(() => broker.close())
    const untrack = metrics.trackGroups(broker) as unknown
    if (typeof untrack === 'function') undo.push(async () => { (untrack as () => void)() })

    // The gateway url is known only once it listens; the directory reads it on every hello.
    let gatewayUrl: string | undefined
    const mesh = config.mesh
      ? await startNodeMeshHost({
        dataDir,
        host: config.host,
        tcpPort: config.p2pPort,
        webrtcDirectPort: config.webrtcDirect ? 0 : false,
        join: config.join,
      })
      : undefined
    let directory: PeerDirectory | undefined
    let meshBroker: MeshBroker | undefined
    let mover: PartitionMover | undefined
    let members: () => MemberView[] = () => []
    let prediction: NodeLoadPrediction | undefined
    // Edge peers attached over /gem/1/client, counted with the gateway's connections as a load feature.
    let edgePeers = (): number => 0
    if (mesh !== undefined) {
      const meshLog = componentLogger(log, 'mesh')
      undo.push(() => mesh.stop())
      const dir = new PeerDirectory(mesh, () => ({
        nodeId, peerId: mesh.localPeerId, httpUrl: gatewayUrl, multiaddrs: mesh.multiaddrs(), role: 'server', version: VERSION,
      }), (err, peer) => meshLog.debug({ err, peer }, 'hello failed'))
      undo.push(() => dir.stop())
      directory = dir
      meshLog.info({ peerId: mesh.localPeerId, multiaddrs: mesh.multiaddrs(), join: config.join }, 'mesh host listening')

      const replLog = componentLogger(log, 'replication')
      // Replica logs get a LevelDB of their own: their synced writes must not queue the applied log's unsynced
      // ones behind each fsync (LevelDB runs one writer at a time), nor share its compactions.
      const replicaTier = await openTier(join(dataDir, 'replicas'), config.durability)
      undo.push(() => replicaTier.close())
      const replication = new ReplicationService({
        transport: mesh,
        store: new TierReplicaStore(replicaTier, bytes => { try { decodeRecord(bytes); return true } catch { return false } }),
        broker,
        onError: (where, err) => replLog.error({ err, where }, 'replication error'),
        // Behind every applied batch still queued (they may be visible before written): one synced write makes them durable.
        syncApplied: () => broker.sync(),
        onRoleChange: v => replLog.info({ topic: v.topic, partition: v.partition, role: v.role, epoch: v.epoch, leader: v.leader, commit: v.commit }, 'replica role'),
        onMembershipChange: v => mover?.onMembershipChange(v),
      })
      await replication.start()
      undo.push(() => replication.close())
      // Load prediction (#7): forecasts from the load samples, decisions on them (placement load, credit, leadership).
      const lp = await startNodeLoadPrediction({
        config: config.predict, log: componentLogger(log, 'predict'), self: mesh.localPeerId,
        members: () => members(), replicas: () => replication.views(),
        transferLeadership: (topic, partition, to) => replication.transferLeadership(topic, partition, to),
        // The mover starts after the prediction loop (it needs the mesh broker); until then no replica moves.
        moveReplica: (topic, partition, from, to) => {
          if (mover === undefined) throw new GemError('UNAVAILABLE', 'replica moves start with the partition mover')
          mover.moveReplica(topic, partition, from, to)
        },
        movesUnderWay: () => mover === undefined ? 1 : mover.moves().length,
        nodeName: id => id === mesh.localPeerId ? nodeId : dir.peers().find(p => p.peerId === id)?.nodeId ?? id,
      })
      prediction = lp
      undo.push(async () => lp.stop())
      registerPredictionMetrics(metrics.registry, lp, () => [
        { peerId: mesh.localPeerId, nodeId },
        ...dir.peers().map(p => ({ peerId: p.peerId, nodeId: p.nodeId })),
      ])
      meshBroker = new MeshBroker({
        local: broker,
        tier,
        transport: mesh,
        replication,
        // Server nodes by hello card or, before the card arrives (a node just restarted), by SWIM's metadata.
        servers: () => [...new Set([
          ...dir.peers().filter(p => p.role === 'server').map(p => p.peerId),
          ...members().filter(m => !m.self && m.state === 'alive' && m.meta?.role === 'server').map(m => m.id),
        ])],
        autoCreateTopics: config.autoCreateTopics,
        defaultPartitions: config.defaultPartitions,
        defaultReplication: config.defaultReplication,
        placementLoad: id => lp.placementLoad(id),
        onPlacement: (topic, loads) => lp.service.recordPlacement(topic, loads),
        ...(lp.admission !== undefined ? { admit: () => lp.admission!.admit() } : {}),
        onError: (where, err) => meshLog.warn({ err, where }, 'mesh broker'),
      })
      await meshBroker.start()
      const mb = meshBroker
      undo.push(() => mb.close())
      // Partitions follow the ring as server nodes join and leave (dead for longer than the grace period): each
      // partition's leader adds the new replicas as learners, lets them catch up, hands off its leadership, removes the old.
      const moveLog = componentLogger(log, 'reassign')
      const placementServers = (): string[] => {
        const now = Date.now()
        const swimServers = members().filter(m => !m.self && m.meta?.role === 'server')
        const gone = new Set(swimServers.filter(m => m.state === 'left' || (m.state === 'dead' && now - m.lastChange >= config.reassignGraceMs)).map(m => m.id))
        return [...new Set([
          ...dir.peers().filter(p => p.role === 'server').map(p => p.peerId),
          ...swimServers.map(m => m.id),
        ])].filter(id => !gone.has(id))
      }
      const partitionMover = new PartitionMover({
        transport: mesh,
        service: replication,
        definitions: () => mb.definitions(),
        servers: placementServers,
        onPlaced: (topic, partition, replicas, epoch, version, placedOn) => {
          moveLog.info({ topic, partition, replicas, epoch, version }, 'replica set committed')
          mb.updatePlacement(topic, partition, replicas, epoch, version, placedOn).catch(err => moveLog.warn({ err, topic, partition }, 'placement update'))
        },
        onError: (where, err) => moveLog.debug({ err, where }, 'reassign'),
        onHandOff: (handedOff, led) => moveLog.info({ handedOff, led }, 'leaderships handed off'),
      })
      await partitionMover.start()
      // A node that stops hands its leaderships to other voters first (at most 3 s), rather than leaving its
      // partitions to wait out an election timeout.
      undo.push(() => partitionMover.close(3_000))
      mover = partitionMover
      // Edge peers (browsers) publish, subscribe and read through this node over /gem/1/client.
      const clients = new ClientService({ transport: mesh, api: mb, onError: (where, err) => meshLog.debug({ err, where }, 'client service') })
      await clients.start()
      undo.push(() => clients.close())
      registerClientMetrics(metrics.registry, clients)
      edgePeers = () => clients.stats().clients
    }
    const api: BrokerApi = meshBroker ?? broker

    const gateway = await startGateway({
      broker: api,
      host: config.host,
      port: config.httpPort,
      logger: componentLogger(log, 'gateway'),
      metrics,
      limits: { maxPayloadBytes: config.maxPayloadBytes },
      slowConsumer: { ...config.slowConsumer },
      info: {
        nodeId,
        version: VERSION,
        dataDir,
        storage: () => ({ ...tier.status(), ...(storage.cold !== undefined ? { cold: storage.cold } : {}) }),
        ...(mesh !== undefined && directory !== undefined && meshBroker !== undefined
          ? { mesh: { peerId: mesh.localPeerId, multiaddrs: () => mesh.multiaddrs(), peers: () => directory.peers(), members: () => members(), topics: () => meshBroker.definitions(), replicas: () => meshBroker.replicaViews(), moves: () => mover?.moves() ?? [], ...(prediction !== undefined ? { prediction: () => prediction!.view() } : {}) } }
          : {}),
      },
    })
    undo.push(() => gateway.close())

    const url = gateway.url
    gatewayUrl = url
    await directory?.start()
    if (mesh !== undefined) {
      // Started once the gateway listens, so the url it gossips (in its metadata) is the real one.
      const sampler = startLoadSampler(broker, () => gateway.connections() + edgePeers())
      undo.push(async () => sampler.stop())
      const swimLog = componentLogger(log, 'membership')
      const swim = new MembershipService({
        transport: mesh,
        meta: { node: nodeId, role: 'server', http: url },
        loadReport: () => { const s = sampler.sample(); prediction?.observe(s); return s },
        onMember: e => { if (e.change === 'state' && e.id !== mesh.localPeerId) swimLog.info({ peer: e.id, state: e.state, incarnation: e.incarnation }, 'member') },
        onError: (err, peer) => swimLog.debug({ err, peer }, 'membership'),
      })
      await swim.start()
      undo.push(() => swim.stop())
      members = () => swim.members()
    }
    writeNodeFile(dataDir, {
      nodeId,
      httpUrl: url,
      multiaddrs: mesh?.multiaddrs() ?? [],
      ...(mesh !== undefined ? { peerId: mesh.localPeerId } : {}),
      pid: process.pid,
      startedAt: new Date().toISOString(),
      version: VERSION,
    })
    nodeLog.info({ url, dataDir, durability: config.durability, version: VERSION }, 'gateway listening')

    let stopping: Promise<void> | undefined
    const stop = () => {
      stopping ??= (async () => {
        nodeLog.info('stopping')
        // Reverse order: stop taking requests, let the broker flush pending commits, then close storage.
        await unwind()
        try {
          writeNodeFile(dataDir, { nodeId, stoppedAt: new Date().toISOString(), version: VERSION })
        } catch (err) {
          nodeLog.warn({ err }, 'could not update node.json')
        }
        nodeLog.info('stopped')
      })()
      return stopping
    }

    return { broker, api, ...(meshBroker !== undefined ? { meshBroker } : {}), gateway, ...(mesh !== undefined ? { mesh } : {}), url, nodeId, dataDir, logger: log, stop }
  } catch (err) {
    await unwind()
    throw err
  }
}

async function openTier (path: string, durability: GemConfig['durability']): Promise<StorageTier> {
  try {
    return await openLevelTier({ path, durability })
  } catch (err) {
    const code = (err as { code?: string, cause?: { code?: string } }).cause?.code ?? (err as { code?: string }).code
    if (code === 'LEVEL_LOCKED' || /lock/i.test(String((err as Error).message) + String((err as { cause?: Error }).cause?.message))) {
      throw new GemError('UNAVAILABLE', `data directory ${path} is in use by another GEM node (LevelDB lock held)`)
    }
    throw err
  }
}

function newNodeId (): string {
  return randomBytes(8).toString('hex')
}

/** The node file of `dataDir`, or undefined when there is none or it is unreadable. */
export function readNodeFile (dataDir: string): NodeFile | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dataDir, NODE_FILE), 'utf8')) as NodeFile
    return typeof v?.nodeId === 'string' && v.nodeId !== '' ? v : undefined
  } catch {
    return undefined
  }
}

/** Atomic replace: readers polling for the file never see half of it. */
function writeNodeFile (dataDir: string, file: NodeFile): void {
  const path = join(dataDir, NODE_FILE)
  const tmp = `${path}.${process.pid}.tmp`
  writeFileSync(tmp, JSON.stringify(file, null, 2) + '\n')
  renameSync(tmp, path)
}
