// What every part of the gateway is handed: the broker, limits, policies, logger, metrics and the node's identity.
// Plain data and types only; the parts that use it (REST, SSE, WebSocket) live in their own files.
import type { BrokerApi } from '@gem-mesh/core'
import type { Logger } from 'pino'
import type { GemMetrics } from '../metrics.ts'
import type { ClusterPrediction } from '../predict/load-prediction.ts'
import type { MemberView, MeshTopic, NodeCard, PartitionMove, PartitionReplicaView } from '@gem-mesh/core/mesh'

export type SlowConsumerPolicy = 'disconnect' | 'drop_oldest'

export interface GatewayOptions {
  broker: BrokerApi
  host: string
  /** 0 picks a free port. */
  port: number
  logger: Logger
  metrics: GemMetrics
  limits: { maxPayloadBytes: number }
  slowConsumer: { policy: SlowConsumerPolicy, maxBufferedBytes: number }
  info: GatewayNodeInfo
  /** SSE heartbeat comment interval. Default 15 s. */
  sseHeartbeatMs?: number
}

export interface GatewayContext {
  readonly broker: BrokerApi
  readonly logger: Logger
  readonly metrics: GemMetrics
  readonly maxPayloadBytes: number
  /** Largest REST body or WebSocket frame: room for a full payload after JSON escaping or base64, plus the envelope. */
  readonly maxBodyBytes: number
  readonly slowConsumer: { policy: SlowConsumerPolicy, maxBufferedBytes: number }
  readonly info: GatewayNodeInfo
  readonly sseHeartbeatMs: number
  readonly startedAt: number
  /** Aborted when the gateway starts closing: long polls and streams end on it. */
  readonly shutdown: AbortSignal
  /** Set once the server listens. */
  url: string
  /** Open push connections, for /stats. */
  readonly counts: { ws: number, sse: number }
}

/** Base64 is 4/3 of the bytes and JSON escaping of ordinary text far below 2x: 2x + 64 KiB admits a full payload in either, with its envelope. */
export function maxBodyBytesFor (maxPayloadBytes: number): number {
  return 2 * maxPayloadBytes + 64 * 1024
}

/** Who this node is, for /health, /info and /cluster. `mesh` is absent when the node runs without the mesh. */
export interface GatewayNodeInfo {
  nodeId: string
  version: string
  dataDir: string
  /** The tier chain's state (local bytes and budget, remote tier ok or degraded, offload backlog), for /health. */
  storage?(): { remote: { state: string } } & Record<string, unknown>
  mesh?: {
    peerId: string
    multiaddrs(): string[]
    /** The other GEM nodes connected now. */
    peers(): NodeCard[]
    /** SWIM's view of every member (peer id, state, incarnation, load report, metadata). */
    members?(): MemberView[]
    /** Topic placement (replica peer ids per partition) and this node's replicas. */
    topics?(): MeshTopic[]
    replicas?(): PartitionReplicaView[]
    /** Replica moves under way on partitions this node leads. */
    moves?(): PartitionMove[]
    /** Load prediction: the predictor, predicted load per node, the newest decisions (#7). */
    prediction?(): ClusterPrediction
  }
}
