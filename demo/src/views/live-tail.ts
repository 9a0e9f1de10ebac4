// The live tail of one chosen topic: subscribes through the mesh client and lists the newest messages first
// (partition, offset, time, payload), keeping the last MAX_ROWS. Choosing another topic closes the previous tail.
import { el, replaceChildren } from '../dom.ts'
import { errorCode } from '../mesh-client.ts'
import type { MeshClient, TailHandle, TailMessage } from '../mesh-client.ts'

const MAX_ROWS = 100

export class LiveTailView {
  private readonly client: MeshClient
  private readonly input: HTMLInputElement
  private readonly options: HTMLDataListElement
  private readonly state: HTMLElement
  private readonly list: HTMLElement
  private handle: TailHandle | undefined
  private topic: string | undefined
  private received = 0
  private knownTopics = ''
  /** The first known topic is followed by itself once; after that only the user chooses. */
  private chosen = false

  constructor (container: HTMLElement, client: MeshClient) {
    this.client = client
    this.options = el('datalist', { id: 'tail-topics' })
    this.input = el('input', { type: 'text', list: 'tail-topics', placeholder: 'topic', 'data-testid': 'tail-topic', autocomplete: 'off' })
    const button = el('button', { type: 'submit', 'data-testid': 'tail-start' }, 'Tail')
    const form = el('form', { class: 'row' }, this.input, button, this.options)
    form.addEventListener('submit', ev => { ev.preventDefault(); this.follow(this.input.value.trim()) })
    this.state = el('div', { class: 'tail-state muted', 'data-testid': 'tail-state' }, 'Pick a topic to follow its new messages.')
    this.list = el('ol', { class: 'tail', 'data-testid': 'tail' })
    container.append(form, this.state, this.list)
  }

  /** Offers the known topics as suggestions, and follows the first one if nothing was chosen yet. */
  setTopics (names: string[]): void {
    const key = names.join('\u0000')
    if (key === this.knownTopics) return
    this.knownTopics = key
    replaceChildren(this.options, ...names.map(n => el('option', { value: n })))
    if (!this.chosen && names.length > 0) this.follow(names[0])
  }

  follow (topic: string): void {
    if (topic === '' || topic === this.topic) return
    this.chosen = true
    this.handle?.close()
    this.topic = topic
    this.input.value = topic
    this.received = 0
    replaceChildren(this.list)
    this.say(`Subscribing to ${topic} …`)
    const handle = this.client.tail(topic, m => this.show(m))
    this.handle = handle
    handle.ready.then(
      () => { if (this.handle === handle && this.received === 0) this.say(`Following ${topic}: waiting for new messages.`) },
      err => {
        if (this.handle !== handle) return
        this.topic = undefined
        this.say(`${errorCode(err)}: ${(err as Error).message}`, true)
      })
  }

  private show (m: TailMessage): void {
    if (m.topic !== this.topic) return
    this.received++
    this.say(`Following ${m.topic}: ${this.received} received.`)
    const time = new Date(m.timestamp).toLocaleTimeString([], { hour12: false })
    this.list.prepend(el('li', { 'data-testid': 'tail-message', 'data-offset': m.offset },
      el('span', { class: 'where' }, `p${m.partition}@${m.offset}`),
      el('span', { class: 'when' }, time),
      el('span', { class: 'via', 'data-testid': 'tail-via' }, m.via ?? ''),
      el('code', { class: 'payload' }, m.text.length > 300 ? m.text.slice(0, 300) + '…' : m.text)))
    while (this.list.children.length > MAX_ROWS) this.list.lastElementChild!.remove()
  }

  private say (text: string, error = false): void {
    this.state.textContent = text
    this.state.classList.toggle('error', error)
  }
}
