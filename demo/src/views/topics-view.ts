// Topics: partitions, stored messages, publish rate and consumer-group backlog per topic (from MeshHistory), and a
// chart of each topic's rate over the last minutes. Clicking a topic hands it to the live tail.
import { topicColor } from '../colors.ts'
import { el, rate, replaceChildren } from '../dom.ts'
import type { MeshHistory } from '../history.ts'
import { TimeChart } from './time-chart.ts'

/** More lines than this make the chart unreadable: it shows the busiest topics. */
const CHART_TOPICS = 6

export class TopicsView {
  private readonly table: HTMLElement
  private readonly chart: TimeChart
  private readonly onPick: (topic: string) => void

  constructor (container: HTMLElement, onPick: (topic: string) => void) {
    this.onPick = onPick
    this.table = el('div', { class: 'scroll' })
    const chartBox = el('div', { class: 'chart' })
    container.append(el('div', { class: 'topics-layout' }, this.table, chartBox))
    this.chart = new TimeChart(chartBox, { height: 180, yLabel: 'msg/s', format: v => rate(v).replace('/s', '') })
  }

  update (h: MeshHistory): void {
    replaceChildren(this.table, h.topics.length === 0
      ? el('p', { class: 'muted' }, 'No topics yet: publish one below, or `npx gem topics create NAME`.')
      : el('table', { class: 'topics', 'data-testid': 'topics' },
        el('thead', {}, el('tr', {}, el('th', {}, 'topic'), el('th', {}, 'partitions'), el('th', { class: 'num' }, 'messages'), el('th', { class: 'num' }, 'rate'), el('th', { class: 'num' }, 'backlog'))),
        el('tbody', {}, ...h.topics.map(t => {
          const tr = el('tr', { class: 'clickable', title: 'tail this topic', 'data-topic': t.name },
            el('td', {}, t.name),
            el('td', { class: 'num' }, String(t.partitions)),
            el('td', { class: 'num', 'data-testid': 'topic-messages' }, t.messages.toLocaleString()),
            el('td', { class: 'num' }, rate(t.rate)),
            el('td', { class: `num${t.backlog > 0 ? ' warn' : ''}` }, t.groups === 0 ? '–' : `${t.backlog.toLocaleString()} (${t.groups} group${t.groups === 1 ? '' : 's'})`))
          tr.addEventListener('click', () => this.onPick(t.name))
          return tr
        }))))
    const busiest = [...h.topics].sort((a, b) => b.messages - a.messages).slice(0, CHART_TOPICS).map(t => t.name).sort()
    this.chart.update(h.times, busiest.map(name => ({ label: name, color: topicColor(name), values: h.topicRates.get(name) ?? [] })))
  }
}
