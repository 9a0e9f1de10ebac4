// MeshTransport: how the rest of the mesh talks to peers — framed protocol streams, requests and gossip.
// Types only and free of libp2p's types, so membership, replication and the simulator can run on any transport.
import type { GemError } from '../errors.ts'

/**
 * Handles a frame that arrived on a `/gem/1/*` protocol. For one-way frames (`send`) the result is ignored.
 * For requests (`request`) the resolved value is the response (an empty response when it is undefined),
 * and a thrown GemError reaches the requester with its code; anything else thrown reaches it as INTERNAL.
 */
export type FrameHandler = (from: string, frame: Uint8Array) => void | Uint8Array | Promise<void | Uint8Array>

export type GossipHandler = (from: string | undefined, data: Uint8Array) => void

export interface RequestOptions {
  /** Default 10 s. The request rejects with TIMEOUT after it; the late response is dropped. */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
}

export interface MeshTransportEvents {
  /** A connection to the peer opened (the first one, if several). */
  connect: (peerId: string) => void
  /** The last connection to the peer closed. */
  disconnect: (peerId: string) => void
  /**
   * A failure no caller is waiting on: a peer sent a bad frame (we answered and closed that stream), a peer
   * answered ours with a stream-level error (e.g. VERSION_MISMATCH), a one-way handler threw, a gossip
   * message was malformed. Mixed versions surface here on both sides.
   */
  error: (err: GemError, peerId: string | undefined) => void
}

export interface MeshTransport {
  /** This node's id (a libp2p peer id string in production, any string in tests). */
  readonly localPeerId: string

  /**
   * Queues a frame on the long-lived stream to `peerId` for `protocol` (opened on first use, reopened after
   * it breaks). Frames queued in the same microtask go out in one write, in order per peer and protocol.
   * Resolves at once while the queue has room and the stream is open; waits when the queue is full
   * (backpressure) or the stream is still opening. Rejects with PEER_UNREACHABLE when the peer cannot be
   * dialled within the dial timeout, CLOSED after close(), PAYLOAD_TOO_LARGE for an oversize frame.
   * Delivery is at most once: a frame written just before a connection breaks is lost; protocols above
   * acknowledge what matters. Do not await every send in a hot loop: that gives one frame per write.
   */
  send (peerId: string, protocol: string, frame: Uint8Array): Promise<void>

  /** Sends a request on the same stream and resolves with the peer's response; TIMEOUT, PEER_UNREACHABLE, or the handler's error. */
  request (peerId: string, protocol: string, frame: Uint8Array, options?: RequestOptions): Promise<Uint8Array>

  /** Serves `protocol` (a `/gem/1/...` id). Replaces an earlier handler for it. */
  handle (protocol: string, handler: FrameHandler): Promise<void>
  unhandle (protocol: string): Promise<void>

  /** Peers with an open connection now. */
  peers (): string[]

  on<E extends keyof MeshTransportEvents> (event: E, listener: MeshTransportEvents[E]): () => void

  /** Publishes on gossip topic `gem/1/<topic>` (the prefix is added when missing). */
  publishGossip (topic: string, data: Uint8Array): Promise<void>
  /** Subscribes to `gem/1/<topic>`; returns the unsubscribe function. */
  subscribeGossip (topic: string, handler: GossipHandler): () => void
  /** Peers known to be subscribed to the gossip topic (useful to wait until a mesh has formed). */
  gossipPeers (topic: string): string[]

  close (): Promise<void>
}

/** Protocol ids and gossip topics of wire major version 1. A major bump changes these ids, so old peers fail to negotiate. */
export const PROTOCOL_PREFIX = '/gem/1/'
export const GOSSIP_PREFIX = 'gem/1/'

export function gossipTopic (topic: string): string {
  return topic.startsWith(GOSSIP_PREFIX) ? topic : GOSSIP_PREFIX + topic
}
