// Per-node load: each server node's measured load (event-loop utilization) next to its predicted load when the
// prediction engine reports one, as bars now and as lines over time (predicted dashed).
import { nodeColor } from '../colors.ts'
import { el, percent, replaceChildren } from '../dom.ts'
import type { MeshHistory } from '../history.ts'
import { predictedLoad } from '../node-api.ts'
import type { ClusterView } from '../node-api.ts'
import { TimeChart } from './time-chart.ts'
import type { SeriesSpec } from './time-chart.ts'

export class LoadView {
  private readonly bars: HTMLElement
  private readonly chart: TimeChart

  constructor (container: HTMLElement) {
    this.bars = el('div', { class: 'load-bars', 'data-testid': 'load' })
    const chartBox = el('div', { class: 'chart' })
    container.append(this.bars, chartBox)
    this.chart = new TimeChart(chartBox, { height: 150, yLabel: 'load', format: v => `${Math.round(v * 100)}%` })
  }

  update (cluster: ClusterView, h: MeshHistory): void {
    const servers = cluster.nodes.filter(n => n.role === 'server').sort((a, b) => a.id.localeCompare(b.id))
    const anyPrediction = servers.some(n => predictedLoad(n) !== null)
    replaceChildren(this.bars, ...servers.map(n => {
      const load = n.load ?? 0
      const predicted = predictedLoad(n)
      const report = n.load_report
      return el('div', { class: `load-row${n.state === 'alive' ? '' : ' down'}` },
        el('span', { class: 'load-name' }, el('i', { class: 'dot', style: `--c:${nodeColor(n.id)}` }), n.id),
        el('span', { class: 'bar' },
          el('span', { class: 'fill', style: `width:${Math.min(100, load * 100)}%;--c:${nodeColor(n.id)}` }),
          predicted === null ? null : el('span', { class: 'predicted', style: `left:${Math.min(100, predicted * 100)}%`, title: `predicted ${percent(predicted)}` })),
        el('span', { class: 'load-num' }, n.state === 'alive' ? percent(n.load) : n.state,
          predicted === null ? null : el('small', {}, ` → ${percent(predicted)}`)),
        report === null || report === undefined ? null : el('span', { class: 'load-detail' }, `${report.publish_rate.toFixed(0)} pub/s · lag ${report.event_loop_lag_ms.toFixed(1)} ms`))
    }), anyPrediction ? null : el('p', { class: 'muted small' }, 'No predicted load reported yet: the bars show measured load only.'))

    const series: SeriesSpec[] = []
    for (const n of servers) {
      series.push({ label: n.id, color: nodeColor(n.id), values: h.nodeLoad.get(n.id) ?? [] })
      const predicted = h.nodePredicted.get(n.id)
      if (predicted?.some(v => v !== null) === true) series.push({ label: `${n.id} predicted`, color: nodeColor(n.id), dash: [5, 4], values: predicted })
    }
    this.chart.update(h.times, series)
  }
}
