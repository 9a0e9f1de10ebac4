// The README's configuration table is generated from the config schema; this keeps the two in step.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { describeConfig } from '../packages/node/src/config.ts'

test('README configuration reference matches the schema', () => {
  const readme = readFileSync(resolve(import.meta.dirname, '../README.md'), 'utf8')
  const m = /<!-- config-table:start[^>]*-->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme)
  assert.ok(m !== null, 'README has the config-table markers')
  assert.equal(m[1].trim(), describeConfig().trim(), 'regenerate the table with describeConfig() from packages/node/src/config.ts')
})
