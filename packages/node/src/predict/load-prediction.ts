// Load prediction on a Node mesh node: the predictor (ONNX via onnxruntime-node, or EWMA), the core's prediction loop
// fed by the load sampler, SWIM's load reports and the replicas, publish admission, and the /cluster view of it all.
import { resolve } from 'node:path'
import { EwmaPredictor, LoadPredictionService, PublishAdmission, DEFAULT_POLICY } from '@gem-mesh/core/predict'
import type { HeldPartition, LoadPredictor, TimedDecision } from '@gem-mesh/core/predict'
import type { MemberView, PartitionReplicaView } from '@gem-mesh/core/mesh'
import type { NodeLoadSample } from '../mesh/load-sampler.ts'
import type { GemConfig } from '../config.ts'
import type { Logger } from '../logger.ts'
import { DEFAULT_MODEL_PATH, loadPredictor } from './onnx-session.ts'

export interface NodeLoadPrediction {
  readonly service: LoadPredictionService
  readonly admission?: PublishAdmission
  /** Feeds the newest load sample (membership takes one a second; prediction reads the same one). */
  observe (sample: NodeLoadSample): void
  /** max(current, predicted) load of a node, for placement. */
  placementLoad (peerId: string): number | undefined
  /** What GET /cluster shows: the predictor, per-node predictions and the newest decisions. */
  view (): ClusterPrediction
  /** Decisions taken since start, by kind (the view keeps only the newest). */
  decisionCounts (): Readonly<Record<string, number>>
  stop (): void
}

export interface ClusterPrediction {
  predictor: string
  capacity: number
  predicted: (peerId: string) => number | null
  decisions: Array<Record<string, unknown>>
  admission: { credit: number, rate: number | null, admitted: number, delayed: number, refused: number } | null
  /** This node's newest sampled features, as the predictor's history holds them (null before the first sample). */
  features: Record<string, number> | null
}

export interface NodeLoadPredictionOptions {
  readonly config: GemConfig['predict']
  readonly log: Logger
  readonly self: string
  readonly members: () => MemberView[]
  readonly replicas: () => PartitionReplicaView[]
  readonly transferLeadership: (topic: string, partition: number, to: string) => Promise<void>
  /** Starts a replica move on a partition this node leads (PartitionMover.moveReplica); throws if it cannot now. */
  readonly moveReplica: (topic: string, partition: number, from: string, to: string) => void
  /** Replica-set changes under way on partitions this node leads. */
  readonly movesUnderWay: () => number
  /** Peer id -> node id, for logs and /cluster. */
  readonly nodeName?: (peerId: string) => string
}

export async function startNodeLoadPrediction (o: NodeLoadPredictionOptions): Promise<NodeLoadPrediction> {
  const predictor: LoadPredictor = o.config.model === 'none'
    ? new EwmaPredictor()
    : await loadPredictor(o.config.model === '' ? DEFAULT_MODEL_PATH : resolve(o.config.model), o.log)
  const admission = o.config.admission ? new PublishAdmission({ maxWaitMs: o.config.maxWaitMs }) : undefined
  let last: NodeLoadSample | undefined
  const counts: Record<string, number> = {}
  const name = o.nodeName ?? ((id: string) => id)
  const service = new LoadPredictionService({
    self: o.self,
    predictor,
    policy: { ...DEFAULT_POLICY, capacity: o.config.capacity, target: o.config.target, admitAbove: Math.min(1, o.config.capacity + 0.1) },
    sampleSelf: () => ({
      publishRate: last?.publishRate ?? 0, deliveryRate: last?.deliveryRate ?? 0, bytesRate: last?.bytesRate ?? 0, backlog: last?.backlog ?? 0, consumerLag: last?.backlog ?? 0,
      eventLoopLagMs: last?.eventLoopLagMs ?? 0, connections: last?.connections ?? 0, load: last?.utilization ?? 0,
    }),
    // Server nodes only: a browser peer neither leads partitions nor hosts replicas.
    peers: () => o.members().filter(m => !m.self && m.state === 'alive' && m.meta?.role !== 'browser').map(m => ({ id: m.id, load: m.load?.utilization })),
    partitions: () => o.replicas().map((v): HeldPartition => ({ topic: v.topic, partition: v.partition, leader: v.leader, replicas: v.replicas, end: v.end })),
    ...(o.config.moves ? { transferLeadership: o.transferLeadership, moveReplica: o.moveReplica, movesUnderWay: o.movesUnderWay } : {}),
    ...(admission !== undefined ? { admission } : {}),
    onDecision: d => { counts[d.kind] = (counts[d.kind] ?? 0) + 1; o.log.info(decisionLog(d, name), `decision: ${d.kind}`) },
    onError: (where, err) => o.log.debug({ err, where }, 'load prediction'),
  })
  service.start()
  return {
    service,
    ...(admission !== undefined ? { admission } : {}),
    observe: s => { last = s },
    placementLoad: id => service.predictedLoad(id),
    view: () => ({
      predictor: predictor.name,
      capacity: o.config.capacity,
      predicted: id => { const p = service.predictedLoad(id); return p === undefined ? null : p },
      decisions: service.decisions().map(d => decisionView(d, name)),
      admission: admission?.stats() ?? null,
      features: last === undefined ? null : featuresView(last),
    }),
    decisionCounts: () => counts,
    stop: () => service.stop(),
  }
}

/** A decision as JSON (snake_case, ISO time, node ids) for /cluster and the log. */
export function decisionView (d: TimedDecision, name: (peerId: string) => string): Record<string, unknown> {
  const at = new Date(d.at).toISOString()
  switch (d.kind) {
    case 'move-leader':
      return { at, kind: d.kind, topic: d.topic, partition: d.partition, from: name(d.from), to: name(d.to), partition_load: d.partitionLoad, prediction: predictionView(d.prediction) }
    case 'move-replica':
      return { at, kind: d.kind, topic: d.topic, partition: d.partition, from: name(d.from), to: name(d.to), hot: name(d.hot), partition_load: d.partitionLoad, prediction: predictionView(d.prediction) }
    case 'admission':
      return { at, kind: d.kind, node: name(d.node), credit: d.credit, prediction: predictionView(d.prediction) }
    case 'placement':
      return { at, kind: d.kind, topic: d.topic, predictor: d.predictor, loads: Object.fromEntries(Object.entries(d.loads).map(([k, v]) => [name(k), v])) }
  }
}

function featuresView (s: NodeLoadSample): Record<string, number> {
  return { publish_rate: s.publishRate, delivery_rate: s.deliveryRate, bytes_rate: s.bytesRate, backlog: s.backlog, event_loop_lag_ms: s.eventLoopLagMs, connections: s.connections, load: s.utilization ?? 0 }
}

function predictionView (p: { predictor: string, current: number, predicted: number, horizonS: number }): Record<string, unknown> {
  return { predictor: p.predictor, current: p.current, predicted: p.predicted, horizon_s: p.horizonS }
}

function decisionLog (d: TimedDecision, name: (peerId: string) => string): Record<string, unknown> {
  const { at: _at, ...rest } = decisionView(d, name)
  return rest
}
