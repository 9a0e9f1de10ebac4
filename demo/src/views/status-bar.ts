// The status line at the top: online or offline, whether this page is a mesh peer or on the gateway fallback, its
// id, publishes queued while offline, and how fresh the cluster view is.
import { el, replaceChildren, shortId } from '../dom.ts'
import type { MeshClient } from '../mesh-client.ts'
import type { MeshSnapshot } from '../cluster-poller.ts'

export class StatusBarView {
  private readonly container: HTMLElement
  private readonly client: MeshClient
  private snapshot: MeshSnapshot | undefined
  private readonly note: string | undefined

  constructor (container: HTMLElement, client: MeshClient, note?: string) {
    this.container = container
    this.client = client
    this.note = note
    client.onChange(() => this.draw())
    this.draw()
  }

  setSnapshot (s: MeshSnapshot): void {
    this.snapshot = s
    this.draw()
  }

  /** A server's node id when the cluster view knows its peer id. */
  private nodeName (peerId: string): string {
    return this.snapshot?.cluster.nodes.find(n => n.peer_id === peerId)?.id ?? shortId(peerId)
  }

  private draw (): void {
    const c = this.client
    const s = this.snapshot
    const view = s === undefined
      ? 'loading cluster view …'
      : s.fresh ? `cluster view from ${new URL(s.source).host}` : `no node answers: cluster view from ${new Date(s.at).toLocaleTimeString([], { hour12: false })}`
    this.container.dataset.online = String(c.online)
    replaceChildren(this.container,
      el('span', { class: `pill ${c.online ? 'ok' : 'bad'}`, 'data-testid': 'online' }, c.online ? 'online' : 'offline'),
      el('span', { class: 'pill' }, c.kind === 'peer' ? 'mesh peer' : 'gateway /ws'),
      el('span', { title: c.id }, shortId(c.id)),
      c.server === undefined ? null : el('span', { class: 'muted', 'data-testid': 'attached' }, `via ${this.nodeName(c.server)}`),
      c.queued > 0 ? el('span', { class: 'pill warn', 'data-testid': 'queued' }, `${c.queued} queued`) : null,
      el('span', { class: s?.fresh === false ? 'warn' : 'muted' }, view),
      this.note === undefined ? null : el('span', { class: 'warn', title: this.note }, this.note))
  }
}
