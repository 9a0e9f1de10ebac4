// One stable color per server node and per link kind, shared by the graph, the ring and the load chart,
// so that a node is the same color in every view.

const NODE_PALETTE = ['#4f9dff', '#ff8a4c', '#3ccf91', '#c77dff', '#ffd166', '#ef476f', '#06d6a0', '#8ecae6']
const assigned = new Map<string, string>()

/** Colors are handed out in the order nodes are first seen, and never change afterwards. */
export function nodeColor (nodeId: string): string {
  let c = assigned.get(nodeId)
  if (c === undefined) {
    c = NODE_PALETTE[assigned.size % NODE_PALETTE.length]
    assigned.set(nodeId, c)
  }
  return c
}

const TOPIC_PALETTE = ['#8ecae6', '#ffb703', '#fb8500', '#90be6d', '#f28482', '#b8c0ff']
const topics = new Map<string, string>()

/** Topic series use their own palette, so that a topic's line is never mistaken for a node's. */
export function topicColor (topic: string): string {
  let c = topics.get(topic)
  if (c === undefined) {
    c = TOPIC_PALETTE[topics.size % TOPIC_PALETTE.length]
    topics.set(topic, c)
  }
  return c
}

export type LinkKind = 'webrtc' | 'webrtc-direct' | 'websockets' | 'relayed' | 'tcp'

export const LINK_STYLE: Record<LinkKind, { color: string, dash?: string, label: string }> = {
  'webrtc': { color: '#3ccf91', label: 'WebRTC (browser↔browser)' },
  'webrtc-direct': { color: '#4f9dff', label: 'WebRTC-direct' },
  'websockets': { color: '#ffb347', label: 'WebSocket' },
  'relayed': { color: '#c77dff', dash: '6 4', label: 'relayed' },
  'tcp': { color: '#5b6b82', label: 'TCP (server↔server)' },
}
