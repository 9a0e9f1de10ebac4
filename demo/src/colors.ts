// One stable color per server node and per link kind, shared by the graph, the ring and the load chart,
// so that a node is the same color in every view.

/** Colors handed out in the order keys are first seen, never changing afterwards. */
function stablePalette (palette: string[]): (key: string) => string {
  const assigned = new Map<string, string>()
  return key => {
    let c = assigned.get(key)
    if (c === undefined) {
      c = palette[assigned.size % palette.length]
      assigned.set(key, c)
    }
    return c
  }
}

export const nodeColor = stablePalette(['#4f9dff', '#ff8a4c', '#3ccf91', '#c77dff', '#ffd166', '#ef476f', '#06d6a0', '#8ecae6'])

/** Topic series use their own palette, so that a topic's line is never mistaken for a node's. */
export const topicColor = stablePalette(['#8ecae6', '#ffb703', '#fb8500', '#90be6d', '#f28482', '#b8c0ff'])

export type LinkKind = 'webrtc' | 'webrtc-direct' | 'websockets' | 'relayed' | 'tcp'

export const LINK_STYLE: Record<LinkKind, { color: string, dash?: string, label: string }> = {
  'webrtc': { color: '#3ccf91', label: 'WebRTC (browser↔browser)' },
  'webrtc-direct': { color: '#4f9dff', label: 'WebRTC-direct' },
  'websockets': { color: '#ffb347', label: 'WebSocket' },
  'relayed': { color: '#c77dff', dash: '6 4', label: 'relayed' },
  'tcp': { color: '#5b6b82', label: 'TCP (server↔server)' },
}
