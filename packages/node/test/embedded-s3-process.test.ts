// The embedded S3 stand-in of `gem start` runs as a child process of the node: it serves the node's offloads, and it
// is gone once the node is, whether the node stopped on SIGTERM or SIGINT or was killed outright.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { api, startGem, tempDataDir } from '../../../test/support/gem-process.ts'
import { waitFor } from '../../core/test/wait-for.ts'

/** Live (not zombie) child processes of `pid`. */
function childrenOf (pid: number): number[] {
  const f = `/proc/${pid}/task/${pid}/children`
  if (!existsSync(f)) return []
  return readFileSync(f, 'utf8').trim().split(/\s+/).filter(s => s !== '').map(Number).filter(alive)
}

function alive (pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

for (const how of ['SIGTERM', 'SIGINT', 'SIGKILL'] as const) {
  test(`the embedded S3 child serves the node and ends with it (${how})`, { skip: process.platform !== 'linux' && 'reads /proc' }, async () => {
    const data = tempDataDir('gem-s3child-')
    const node = await startGem(data.dir, ['--mesh', 'false', '--segment-bytes', '4096'])
    const pid = node.child.pid!
    let s3pid: number | undefined
    try {
      const health = await api(node.url, 'GET', '/health')
      assert.equal(health.json.storage.remote.tier, 's3')
      const [child] = await waitFor(() => { const c = childrenOf(pid); return c.length > 0 && c }, 'the S3 child process')
      s3pid = child
      assert.match(readFileSync(`/proc/${child}/cmdline`, 'utf8'), /embedded-s3-process\.ts/)
      // Enough to seal segments: they reach the child's bucket.
      await api(node.url, 'POST', '/topics', { name: 't' })
      for (let i = 0; i < 40; i++) assert.equal((await api(node.url, 'POST', '/topics/t/messages', { payload: 'x'.repeat(200) })).status, 201)
      await waitFor(async () => (await api(node.url, 'GET', '/health')).json.storage.remote.offloadedSegments > 0, 'an offloaded segment', 20_000)
      if (how === 'SIGKILL') await node.kill()
      else {
        node.child.kill(how)
        const code = await new Promise(resolve => node.child.once('exit', resolve))
        assert.equal(code, 0)
      }
      await waitFor(() => !alive(child), `the S3 child ${child} to exit after the node's ${how}`, 15_000)
    } finally {
      await node.kill()
      if (s3pid !== undefined && alive(s3pid)) process.kill(s3pid, 'SIGKILL')
      data.remove()
    }
  })
}
