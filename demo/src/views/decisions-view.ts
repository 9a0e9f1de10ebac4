// The load-prediction decisions of the serving node (GET /cluster `decisions`): what was decided, when, and the
// prediction it was decided on, newest first. Leadership and replica moves, producer credit, load-aware placements.
import { el, percent, replaceChildren, shortId } from '../dom.ts'
import type { LoadDecision } from '../node-api.ts'

const SHOWN = 6

export class DecisionsView {
  private readonly list: HTMLElement

  constructor (container: HTMLElement) {
    this.list = el('div', { class: 'decisions', 'data-testid': 'decisions' })
    container.append(el('h3', { class: 'sub' }, 'Decisions on predicted load ', el('small', {}, '(this node)')), this.list)
  }

  update (decisions: LoadDecision[] | undefined): void {
    const newest = [...(decisions ?? [])].sort((a, b) => b.at.localeCompare(a.at)).slice(0, SHOWN)
    if (newest.length === 0) {
      replaceChildren(this.list, el('p', { class: 'muted small' }, 'None yet: leadership and replica moves and producer credit are opt-in (--predict-moves, --predict-admission); placements show when a topic is created.'))
      return
    }
    replaceChildren(this.list, ...newest.map(d => el('div', { class: 'decision' },
      el('span', { class: 'muted' }, new Date(d.at).toLocaleTimeString()),
      el('b', {}, d.kind),
      el('span', {}, describeDecision(d)))))
  }
}

/** One decision as a line of text (pure: the dashboard model test reads it). */
export function describeDecision (d: LoadDecision): string {
  const p = d.prediction
  const on = p === undefined ? '' : ` (${percent(p.current)} now, ${percent(p.predicted)} predicted in ${p.horizon_s} s, ${p.predictor})`
  switch (d.kind) {
    case 'move-leader': return `${d.topic}/${d.partition} ${shortId(d.from ?? '?')} → ${shortId(d.to ?? '?')}${on}`
    // The hot node is the one the prediction is about: the follower that sheds its replica, or the leader making room.
    case 'move-replica': return `${d.topic}/${d.partition} replica ${shortId(d.from ?? '?')} → ${shortId(d.to ?? '?')} for ${shortId(d.hot ?? '?')}${on}`
    case 'admission': return `${shortId(d.node ?? '?')} credit ${percent(d.credit)}${on}`
    case 'placement': return `${d.topic} placed on ${Object.entries(d.loads ?? {}).map(([n, v]) => `${shortId(n)} ${percent(v)}`).join(', ')} (${d.predictor ?? '?'})`
    default: return ''
  }
}
