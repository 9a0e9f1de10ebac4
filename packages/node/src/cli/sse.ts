// A Server-Sent Events reader: turns a response body into events, following the WHATWG event-stream rules.
// Hand-written because Node ships no EventSource by default and only the parsing half is needed.

export interface SseEvent {
  /** 'message' when the server sent no `event:` field. */
  event: string
  data: string
  id?: string
}

export function readSse (body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  // The reader is taken now, not at the generator's first next(): fetch (undici) cancels a response body that is not
  // yet locked once its Response object is garbage collected, which closes the connection. A caller that keeps only
  // the generator and reads later (the tests' SseClient) would lose the stream, and with it any group events already
  // written to it (they are acked as written), at whichever GC came first.
  return events(body.getReader())
}

async function * events (reader: ReadableStreamDefaultReader<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder()
  let buf = ''
  let event = ''
  let data: string[] = []
  let id: string | undefined
  let sawData = false
  try {
    for (;;) {
      const chunk = await reader.read()
      if (chunk.done) return
      buf += decoder.decode(chunk.value, { stream: true })
      let nl: number
      while ((nl = buf.search(/\r\n|\r|\n/)) >= 0) {
        // A lone \r at the end of the buffer may be half of \r\n: wait for the next chunk.
        if (buf[nl] === '\r' && nl === buf.length - 1) break
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1))
        if (line === '') {
          if (sawData) yield { event: event === '' ? 'message' : event, data: data.join('\n'), ...(id !== undefined ? { id } : {}) }
          event = ''
          data = []
          sawData = false
          continue
        }
        if (line.startsWith(':')) continue
        const colon = line.indexOf(':')
        const field = colon < 0 ? line : line.slice(0, colon)
        let value = colon < 0 ? '' : line.slice(colon + 1)
        if (value.startsWith(' ')) value = value.slice(1)
        if (field === 'data') {
          data.push(value)
          sawData = true
        } else if (field === 'event') {
          event = value
        } else if (field === 'id' && !value.includes('\0')) {
          id = value
        }
      }
    }
  } finally {
    // Cancelling releases the connection when the consumer stops early (--count, Ctrl-C).
    await reader.cancel().catch(() => {})
  }
}
