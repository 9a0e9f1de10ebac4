// A uPlot line chart over time whose set of series can change (topics and nodes come and go): rebuilt when the
// series change, otherwise only fed new data. Sized to its container's width.
import uPlot from 'uplot'
import 'uplot/dist/uPlot.min.css'

const MIN_SPAN_S = 60

export interface SeriesSpec {
  label: string
  color: string
  dash?: number[]
  values: Array<number | null>
}

export class TimeChart {
  private readonly container: HTMLElement
  private readonly height: number
  private readonly yLabel: string
  private readonly format: (v: number) => string
  private plot: uPlot | undefined
  private key = ''

  constructor (container: HTMLElement, opts: { height: number, yLabel: string, format: (v: number) => string }) {
    this.container = container
    this.height = opts.height
    this.yLabel = opts.yLabel
    this.format = opts.format
    new ResizeObserver(() => this.plot?.setSize({ width: this.width(), height: this.height })).observe(container)
  }

  update (times: number[], series: SeriesSpec[]): void {
    const data = [times, ...series.map(s => s.values)] as uPlot.AlignedData
    const key = series.map(s => s.label).join('\u0000')
    if (this.plot !== undefined && key === this.key) { this.plot.setData(data); return }
    this.plot?.destroy()
    this.key = key
    const axis = { stroke: '#8a96ab', grid: { stroke: '#263041', width: 1 }, ticks: { stroke: '#263041' } }
    this.plot = new uPlot({
      width: this.width(),
      height: this.height,
      legend: { show: true, live: false },
      cursor: { drag: { x: false, y: false } },
      scales: {
        // At least a minute wide: a chart that just started would otherwise label quarter seconds.
        x: { time: true, range: (_u, min, max) => [Math.min(min, max - MIN_SPAN_S), max] },
        y: { range: (_u, _min, max) => [0, Math.max(max, 1e-9) * 1.15] } },
      axes: [axis, { ...axis, label: this.yLabel, size: 56, values: (_u, ticks) => ticks.map(this.format) }],
      series: [{}, ...series.map(s => ({ label: s.label, stroke: s.color, width: 2, dash: s.dash, spanGaps: false, points: { show: false }, value: (_u: uPlot, v: number | null) => v === null ? '–' : this.format(v) }))],
    }, data, this.container)
  }

  private width (): number {
    return Math.max(240, this.container.clientWidth)
  }
}
