// The publish form: a topic and a text payload, published through the mesh client. It shows where the message was
// stored, that it is queued while offline, or the error code. Oversize payloads are refused before they are sent.
import { el } from '../dom.ts'
import { DashboardError, errorCode } from '../mesh-client.ts'
import type { MeshClient } from '../mesh-client.ts'

export class PublishFormView {
  private readonly client: MeshClient
  private readonly maxPayloadBytes: number
  private readonly topic: HTMLInputElement
  private readonly payload: HTMLTextAreaElement
  private readonly result: HTMLElement
  /** Once the user typed a topic, suggestions never overwrite it (not even an emptied field). */
  private typed = false

  constructor (container: HTMLElement, client: MeshClient, maxPayloadBytes: number) {
    this.client = client
    this.maxPayloadBytes = maxPayloadBytes
    this.topic = el('input', { type: 'text', placeholder: 'topic', 'data-testid': 'publish-topic', autocomplete: 'off', list: 'tail-topics' })
    this.topic.addEventListener('input', () => { this.typed = true })
    this.payload = el('textarea', { rows: 3, placeholder: 'payload (text or JSON)', 'data-testid': 'publish-payload' })
    const button = el('button', { type: 'submit', 'data-testid': 'publish-send' }, 'Publish')
    this.result = el('div', { class: 'publish-result muted', 'data-testid': 'publish-result' }, `Up to ${(maxPayloadBytes / 1024).toFixed(0)} KiB per message.`)
    const form = el('form', { class: 'publish' }, this.topic, this.payload, el('div', { class: 'row' }, button, this.result))
    form.addEventListener('submit', ev => { ev.preventDefault(); void this.send() })
    container.append(form)
  }

  /** Suggests a topic (the first known one, or one clicked in the topics table). */
  setTopic (topic: string, chosen = false): void {
    if (chosen) { this.typed = true; this.topic.value = topic } else if (!this.typed && this.topic.value === '') this.topic.value = topic
  }

  private async send (): Promise<void> {
    const topic = this.topic.value.trim()
    const payload = this.payload.value
    // Cleared first, so that the same error twice still reads as a new answer.
    this.say('')
    try {
      if (topic === '') throw new DashboardError('BAD_REQUEST', 'a topic is required')
      const bytes = new TextEncoder().encode(payload).byteLength
      // The node would refuse it too; refusing here keeps a huge frame off the connection.
      if (bytes > this.maxPayloadBytes) throw new DashboardError('PAYLOAD_TOO_LARGE', `the payload is ${bytes} bytes; the limit is ${this.maxPayloadBytes}`)
      this.say(this.client.online ? 'Publishing …' : 'Offline: queued, it will be sent when a node is reachable.')
      const ack = await this.client.publish(topic, payload)
      this.say(`Stored in ${topic} p${ack.partition}@${ack.offset}`)
    } catch (err) {
      this.say(`${errorCode(err)}: ${(err as Error).message}`, true)
    }
  }

  private say (text: string, error = false): void {
    this.result.textContent = text
    this.result.classList.toggle('error', error)
    this.result.classList.toggle('muted', false)
  }
}
