// One line under the mesh graph: how many messages this page received from server nodes and from other browsers,
// by transport, and how many batches it fed on to other browsers (the point of browser-to-browser feeds).
import { el, replaceChildren } from '../dom.ts'
import type { DeliveryCounts } from '../mesh-client.ts'

export class DeliverySummaryView {
  private readonly line: HTMLElement

  constructor (container: HTMLElement) {
    this.line = el('p', { class: 'delivery-summary muted', 'data-testid': 'deliveries' })
    container.append(this.line)
  }

  update (d: DeliveryCounts): void {
    const transports = Object.entries(d.byTransport).filter(([, n]) => n !== undefined && n > 0).map(([t, n]) => `${t} ${n}`)
    replaceChildren(this.line,
      'This page received ', el('b', {}, String(d.server)), ' messages from server nodes and ', el('b', {}, String(d.browser)), ' from other browsers',
      transports.length > 0 ? ` (${transports.join(', ')})` : '',
      d.fedBatches > 0 ? `; it fed ${d.fedBatches} batches on to other browsers.` : '.')
  }
}
