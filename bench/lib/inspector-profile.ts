// CPU profiles of a spawned node over its inspector (started with --inspect=127.0.0.1:0): start and stop at will,
// so a profile covers the steady phase of a bench and not the node's start-up. Bench tooling only.
import WebSocket from 'ws'

export interface RunningProfile { stop(): Promise<unknown> }

/**
 * Starts the V8 sampling profiler of the node whose output (stderr included) is `output`. The last "Debugger
 * listening" line counts: `gem start` re-executes itself once with tuned flags, and the new image listens anew.
 */
export async function startInspectorProfile (output: string, intervalUs = 200): Promise<RunningProfile> {
  const url = [...output.matchAll(/Debugger listening on (ws:\/\/\S+)/g)].at(-1)?.[1]
  if (url === undefined) throw new Error('no inspector url in the node output: start it with --inspect=127.0.0.1:0')
  const ws = new WebSocket(url)
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  let id = 0
  const pending = new Map<number, (result: any) => void>()
  ws.on('message', raw => {
    const msg = JSON.parse(String(raw)) as { id?: number, result?: unknown }
    if (msg.id !== undefined) { pending.get(msg.id)?.(msg.result); pending.delete(msg.id) }
  })
  const call = (method: string, params: unknown = {}): Promise<any> => new Promise(resolve => {
    const i = ++id
    pending.set(i, resolve)
    ws.send(JSON.stringify({ id: i, method, params }))
  })
  await call('Profiler.enable')
  await call('Profiler.setSamplingInterval', { interval: intervalUs })
  await call('Profiler.start')
  return { stop: async () => { const r = await call('Profiler.stop'); ws.close(); return r.profile } }
}
