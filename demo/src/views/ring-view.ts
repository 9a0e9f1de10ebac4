// The ring and its partition leaders: every topic partition as an arc around one circle, colored by the node that
// leads it (grey when leaderless), with the epoch; beside it, each partition's leader, replicas and offsets.
import { nodeColor } from '../colors.ts'
import { el, replaceChildren, svg } from '../dom.ts'
import type { ClusterView, PartitionView } from '../node-api.ts'

const SIZE = 220
const R_OUT = 100
const R_IN = 70

export class RingView {
  private readonly ring: HTMLElement
  private readonly table: HTMLElement

  constructor (container: HTMLElement) {
    this.ring = el('div', { class: 'ring' })
    this.table = el('div', { class: 'scroll' })
    container.append(el('div', { class: 'ring-layout' }, this.ring, this.table))
  }

  update (cluster: ClusterView): void {
    const parts = [...cluster.partitions].sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition)
    const alive = new Set(cluster.nodes.filter(n => n.state === 'alive').map(n => n.id))
    const leaders = new Map<string, number>()
    for (const p of parts) if (p.leader !== null) leaders.set(p.leader, (leaders.get(p.leader) ?? 0) + 1)

    const arcs = parts.map((p, i) => {
      const gap = parts.length > 1 ? 0.02 : 0
      const a0 = (i / parts.length) * 2 * Math.PI + gap
      const a1 = ((i + 1) / parts.length) * 2 * Math.PI - gap
      const color = p.leader === null ? '#3a4252' : nodeColor(p.leader)
      return svg('path', { d: arcPath(a0, a1), fill: color, 'fill-opacity': p.leader !== null && alive.has(p.leader) ? 0.9 : 0.35 },
        svg('title', {}, `${p.topic}/${p.partition} leader ${p.leader ?? 'none'} epoch ${p.epoch}`))
    })
    const summary = [...leaders].sort((a, b) => b[1] - a[1]).map(([id, n]) => el('div', { class: 'leader-count' },
      el('i', { class: 'dot', style: `--c:${nodeColor(id)}` }), `${id}`, el('b', {}, ` leads ${n}`)))
    replaceChildren(this.ring,
      svg('svg', { viewBox: `${-SIZE / 2} ${-SIZE / 2} ${SIZE} ${SIZE}`, width: SIZE, height: SIZE },
        ...arcs,
        svg('text', { class: 'ring-center', 'text-anchor': 'middle', dy: -2 }, String(parts.length)),
        svg('text', { class: 'ring-center-sub', 'text-anchor': 'middle', dy: 16 }, 'partitions')),
      el('div', { class: 'leaders' }, ...summary))

    replaceChildren(this.table, parts.length === 0
      ? el('p', { class: 'muted' }, 'No topics yet.')
      : el('table', { class: 'partitions', 'data-testid': 'partitions' },
        el('thead', {}, el('tr', {}, el('th', {}, 'partition'), el('th', {}, 'leader'), el('th', {}, 'replicas'), el('th', {}, 'epoch'), el('th', {}, 'offsets'))),
        el('tbody', {}, ...parts.map(p => row(p, alive)))))
  }
}

function row (p: PartitionView, alive: Set<string>): HTMLElement {
  return el('tr', {},
    el('td', {}, `${p.topic}/${p.partition}`),
    el('td', {}, p.leader === null ? el('span', { class: 'bad' }, 'none') : el('span', { class: 'tag', style: `--c:${nodeColor(p.leader)}` }, p.leader)),
    el('td', { class: 'replicas' }, ...p.replicas.map(r => el('i', { class: `dot${r !== null && alive.has(r) ? '' : ' down'}`, style: `--c:${r === null ? '#3a4252' : nodeColor(r)}`, title: r ?? 'unknown' }))),
    el('td', {}, String(p.epoch)),
    el('td', { class: 'num' }, `${p.offsets.low}–${p.offsets.high}`))
}

function arcPath (a0: number, a1: number): string {
  const pt = (r: number, a: number): string => `${(r * Math.sin(a)).toFixed(2)} ${(-r * Math.cos(a)).toFixed(2)}`
  const large = a1 - a0 > Math.PI ? 1 : 0
  // A full circle cannot be one arc: split it in two halves.
  if (a1 - a0 >= 2 * Math.PI - 1e-6) return arcPath(0, Math.PI) + arcPath(Math.PI, 2 * Math.PI)
  return `M ${pt(R_OUT, a0)} A ${R_OUT} ${R_OUT} 0 ${large} 1 ${pt(R_OUT, a1)} L ${pt(R_IN, a1)} A ${R_IN} ${R_IN} 0 ${large} 0 ${pt(R_IN, a0)} Z`
}
