// `gem trace record` against a real node: a header and one sample per node a second, readable by the training parser;
// bad arguments are usage errors (exit 2) and an unreachable gateway a clear failure (exit 1).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseRecordedTrace, TRACE_FORMAT_VERSION } from '../packages/core/src/predict/index.ts'
import { startGem, tempDataDir } from './support/gem-process.ts'

const CLI = join(resolve(import.meta.dirname, '..'), 'packages/node/src/cli/main.ts')

function gem (args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GEM_CONFIG: '', GEM_URL: '' } })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', d => { stdout += d })
  child.stderr.on('data', d => { stderr += d })
  return new Promise((res, rej) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); rej(new Error(`gem ${args.join(' ')} did not exit:\n${stderr}`)) }, 60_000)
    child.once('close', code => { clearTimeout(timer); res({ code, stdout, stderr }) })
  })
}

test('gem trace record writes a trace the training parser reads', { timeout: 120_000 }, async () => {
  const dir = tempDataDir('gem-trace-')
  const node = await startGem(dir.dir)
  try {
    const out = join(dir.dir, 'trace.jsonl')
    const r = await gem(['trace', 'record', '--url', node.url, '--seconds', '3', '--out', out])
    assert.equal(r.code, 0, r.stderr)
    const lines = readFileSync(out, 'utf8').trim().split('\n').map(l => JSON.parse(l))
    assert.equal(lines[0].gem_trace, TRACE_FORMAT_VERSION)
    assert.equal(lines[0].source, node.url)
    const samples = lines.slice(1)
    assert.equal(samples.filter(s => String(s.series).startsWith('node:')).length, 3, 'one node sample a second')
    assert.ok(samples.every(s => typeof s.load === 'number' && s.load >= 0 && typeof s.ts === 'string'))
    // Three seconds is too short to train on: parsed, valid, and no series long enough yet.
    assert.deepEqual(parseRecordedTrace('trace.jsonl', readFileSync(out, 'utf8')), [])
  } finally {
    await node.kill()
    dir.remove()
  }
})

test('gem trace record: bad --seconds is a usage error, an unreachable gateway a failure', { timeout: 60_000 }, async () => {
  for (const s of ['0', 'abc', '1.5']) {
    const r = await gem(['trace', 'record', '--seconds', s, '--url', 'http://127.0.0.1:9'])
    assert.equal(r.code, 2, `--seconds ${s}: ${r.stderr}`)
    assert.match(r.stderr, /--seconds/)
  }
  const r = await gem(['trace', 'record', '--seconds', '1', '--url', 'http://127.0.0.1:9'])
  assert.equal(r.code, 1, r.stderr)
})
