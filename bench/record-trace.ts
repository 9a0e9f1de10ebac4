// `node bench/record-trace.ts [--seconds N] [--out FILE] [--max-rate N]`: records a real load trace for training. Starts
// one `gem start` node (temp dir, ephemeral port), drives a shaped publish load at it (a ramp, a plateau, a flash crowd,
// a drain) and runs `gem trace record` beside it. Bounded in time; stops what it started.
import { spawn } from 'node:child_process'
import { join, resolve } from 'node:path'
import { startGem, tempDataDir } from '../test/support/gem-process.ts'

const args = process.argv.slice(2)
const flag = (name: string, d: string): string => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : d }
const seconds = Number(flag('seconds', '150'))
const maxRate = Number(flag('max-rate', '1500'))
const out = resolve(flag('out', join(import.meta.dirname, '..', 'models', 'traces', 'single-node-shaped.jsonl')))
const CLI = join(import.meta.dirname, '..', 'packages/node/src/cli/main.ts')

/** The offered rate at second t: ramp to 40 %, plateau, a flash crowd to 100 % over 10 s, then an exponential drain. */
function rateAt (t: number): number {
  const f = t / seconds
  const base = f < 0.3 ? 0.4 * f / 0.3 : 0.4
  const crowdAt = 0.55 * seconds
  const crowd = t < crowdAt - 10 ? 0 : t < crowdAt ? (t - crowdAt + 10) / 10 : Math.exp(-(t - crowdAt) / 20)
  return maxRate * Math.min(1, base + 0.6 * crowd)
}

const dir = tempDataDir('gem-record-')
const node = await startGem(dir.dir)
try {
  await fetch(`${node.url}/topics`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'load', partitions: 4 }) })
  const recorder = spawn(process.execPath, [CLI, 'trace', 'record', '--url', node.url, '--seconds', String(seconds), '--out', out], { stdio: ['ignore', 'inherit', 'inherit'] })
  const recorded = new Promise<number | null>(res => recorder.once('exit', code => res(code)))
  const started = Date.now()
  let sent = 0
  for (let t = 0; t < seconds; t++) {
    const rate = rateAt(t)
    const secondEnds = started + (t + 1) * 1000
    // Batches of up to 50 messages, spread over the second.
    for (let i = 0; i < rate && Date.now() < secondEnds; i += 50) {
      const n = Math.min(50, Math.ceil(rate - i))
      const messages = Array.from({ length: n }, (_, k) => ({ payload: `m-${sent + k}`, key: String((sent + k) % 16) }))
      await fetch(`${node.url}/topics/load/messages`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ messages }) }).then(r => r.text())
      sent += n
      const due = started + t * 1000 + (i + n) / rate * 1000
      if (due > Date.now()) await new Promise(r => setTimeout(r, due - Date.now()))
    }
    if (secondEnds > Date.now()) await new Promise(r => setTimeout(r, secondEnds - Date.now()))
  }
  const code = await recorded
  console.log(`sent ${sent} messages over ${seconds} s; trace ${out} (recorder exit ${code})`)
} finally {
  await node.kill()
  dir.remove()
}
