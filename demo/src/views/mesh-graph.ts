// Draws the mesh graph (mesh-graph-model.ts) as SVG laid out by d3-force: servers as large discs in their node color,
// browser peers as small ones, each link styled by its transport. Positions survive redraws; only changes re-heat it.
import { forceCollide, forceLink, forceManyBody, forceSimulation, forceX, forceY } from 'd3-force'
import type { Simulation, SimulationNodeDatum } from 'd3-force'
import { LINK_STYLE, nodeColor } from '../colors.ts'
import type { LinkKind } from '../colors.ts'
import { el, percent, replaceChildren, shortId, svg } from '../dom.ts'
import type { GraphLink, GraphNode, MeshGraph } from '../mesh-graph-model.ts'

interface SimNode extends SimulationNodeDatum { data: GraphNode }
interface SimLink { source: SimNode | string, target: SimNode | string, data: GraphLink }

const HEIGHT = 340

export class MeshGraphView {
  private readonly root: SVGSVGElement
  private readonly linkLayer: SVGGElement
  private readonly nodeLayer: SVGGElement
  private readonly sim: Simulation<SimNode>
  private readonly byKey = new Map<string, SimNode>()
  private links: SimLink[] = []
  private shape = ''
  private width = 640

  constructor (container: HTMLElement) {
    this.linkLayer = svg('g', { class: 'links' })
    this.nodeLayer = svg('g', { class: 'nodes' })
    this.root = svg('svg', { class: 'mesh-graph', height: HEIGHT, 'data-testid': 'mesh-graph' }, this.linkLayer, this.nodeLayer)
    container.append(this.root, legend())
    this.sim = forceSimulation<SimNode>([])
      .force('charge', forceManyBody<SimNode>().strength(-520))
      .force('collide', forceCollide<SimNode>(44))
      .force('x', forceX<SimNode>(0).strength(0.06))
      .force('y', forceY<SimNode>(0).strength(0.09))
      .on('tick', () => this.place())
  }

  update (graph: MeshGraph): void {
    this.width = Math.max(320, this.root.clientWidth || 640)
    this.root.setAttribute('viewBox', `${-this.width / 2} ${-HEIGHT / 2} ${this.width} ${HEIGHT}`)
    const keep = new Set(graph.nodes.map(n => n.key))
    for (const k of [...this.byKey.keys()]) if (!keep.has(k)) this.byKey.delete(k)
    for (const n of graph.nodes) {
      const existing = this.byKey.get(n.key)
      if (existing !== undefined) existing.data = n
      else this.byKey.set(n.key, { data: n })
    }
    this.links = graph.links.map(l => ({ source: l.source, target: l.target, data: l }))
    this.draw()
    // Re-run the layout only when who is linked to whom changed; load and state updates just redraw.
    const shape = graph.nodes.map(n => n.key).sort().join() + '|' + graph.links.map(l => `${l.source}-${l.target}-${l.kind}`).sort().join()
    if (shape !== this.shape) {
      this.shape = shape
      this.sim.nodes([...this.byKey.values()])
      this.sim.force('link', forceLink<SimNode, SimLink>(this.links).id(n => n.data.key)
        .distance(l => l.data.kind === 'tcp' ? 200 : 150).strength(l => l.data.kind === 'tcp' ? 0.6 : 0.4))
      this.sim.alpha(0.9).restart()
    } else {
      // Resolve link ends to the simulation's nodes so that they can be drawn without re-running the layout.
      for (const l of this.links) { l.source = this.byKey.get(l.source as string) ?? l.source; l.target = this.byKey.get(l.target as string) ?? l.target }
      this.place()
    }
  }

  private draw (): void {
    replaceChildren(this.linkLayer, ...this.links.map(l => {
      const style = LINK_STYLE[l.data.kind]
      return svg('line', { class: `link link-${l.data.kind}${l.data.attached === true ? ' attached' : ''}`, stroke: style.color, 'stroke-dasharray': style.dash, 'data-kind': l.data.kind },
        svg('title', {}, l.data.transports.join(' + ') + (l.data.attached === true ? ' (attached: requests go here)' : '')))
    }))
    replaceChildren(this.nodeLayer, ...[...this.byKey.values()].map(n => nodeGlyph(n.data)))
  }

  private place (): void {
    const half = { w: this.width / 2 - 50, h: HEIGHT / 2 - 36 }
    const lines = this.linkLayer.children
    this.links.forEach((l, i) => {
      const s = typeof l.source === 'string' ? undefined : l.source
      const t = typeof l.target === 'string' ? undefined : l.target
      if (s === undefined || t === undefined) return
      const line = lines[i]
      line.setAttribute('x1', String(clamp(s.x, half.w))); line.setAttribute('y1', String(clamp(s.y, half.h)))
      line.setAttribute('x2', String(clamp(t.x, half.w))); line.setAttribute('y2', String(clamp(t.y, half.h)))
    })
    const glyphs = this.nodeLayer.children
    ;[...this.byKey.values()].forEach((n, i) => {
      glyphs[i]?.setAttribute('transform', `translate(${clamp(n.x, half.w)},${clamp(n.y, half.h)})`)
    })
  }
}

function clamp (v: number | undefined, limit: number): number {
  return Math.max(-limit, Math.min(limit, v ?? 0))
}

function nodeGlyph (n: GraphNode): SVGGElement {
  const down = n.state !== 'alive' && n.state !== 'connected'
  if (n.kind === 'server') {
    return svg('g', { class: `node server state-${n.state}`, 'data-testid': 'graph-node', 'data-node-id': n.nodeId ?? n.key, 'data-state': n.state },
      svg('circle', { r: 24, fill: down ? '#3a4252' : nodeColor(n.nodeId ?? n.key), 'fill-opacity': down ? 0.6 : 0.9 }),
      svg('text', { class: 'glyph', 'text-anchor': 'middle', dy: 5 }, '⬢'),
      svg('text', { class: 'label', 'text-anchor': 'middle', dy: 42 }, n.label),
      svg('text', { class: 'sublabel', 'text-anchor': 'middle', dy: 56 }, down ? n.state : `load ${percent(n.load)}`),
      svg('title', {}, `${n.label}\npeer ${n.key}\n${n.state}`))
  }
  const self = n.kind === 'self'
  return svg('g', { class: `node browser${self ? ' self' : ''}`, 'data-testid': 'graph-node', 'data-node-id': n.key },
    svg('rect', { x: -13, y: -10, width: 26, height: 20, rx: 4, fill: self ? '#e9edf5' : '#8ea3c0' }),
    svg('text', { class: 'label', 'text-anchor': 'middle', dy: 28 }, self ? 'this dashboard' : shortId(n.label)),
    svg('title', {}, `${self ? 'this dashboard' : 'browser peer'}\npeer ${n.key}`))
}

function legend (): HTMLElement {
  const kinds = Object.keys(LINK_STYLE) as LinkKind[]
  return el('div', { class: 'legend' }, ...kinds.map(k => el('span', { class: 'legend-item' },
    el('i', { class: `swatch${LINK_STYLE[k].dash !== undefined ? ' dashed' : ''}`, style: `--c:${LINK_STYLE[k].color}` }), LINK_STYLE[k].label)))
}
