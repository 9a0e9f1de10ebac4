// Tests for config.ts: defaults, precedence (flags > env > YAML > defaults), YAML key styles, and errors that name
// the field and where its value came from.
import { test, describe, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CONFIG_FIELDS, ConfigError, describeConfig, loadConfig, loadConfigWithSources } from '../src/config.ts'

let dir: string
const yaml = (name: string, text: string): string => {
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

/** Runs fn expecting a ConfigError and returns it. */
function configError (fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`)
    assert.equal(err.code, 'BAD_REQUEST')
    return err
  }
  assert.fail('expected a ConfigError')
}

describe('loadConfig', () => {
  before(() => { dir = mkdtempSync(join(tmpdir(), 'gem-config-')) })
  after(() => { rmSync(dir, { recursive: true, force: true }) })

  test('defaults work with no flags, env or file', () => {
    const c = loadConfig({ flags: {}, env: {}, cwd: dir })
    assert.equal(c.dataDir, join(dir, '.gem-data'))
    assert.equal(c.host, '127.0.0.1')
    assert.equal(c.httpPort, 8080)
    assert.equal(c.p2pPort, 0)
    assert.deepEqual(c.join, [])
    assert.equal(c.durability, 'fsync')
    assert.equal(c.autoCreateTopics, false)
    assert.equal(c.defaultPartitions, 1)
    assert.equal(c.maxPayloadBytes, 1024 * 1024)
    assert.deepEqual(c.slowConsumer, { policy: 'disconnect', maxBufferedBytes: 8 * 1024 * 1024 })
    assert.deepEqual(c.consumer, { ackWaitMs: 30_000, maxDeliver: 5, maxInFlight: 256, backoffMs: 1000, maxBackoffMs: 60_000 })
    assert.equal(c.dedupWindowMs, 120_000)
    assert.deepEqual(c.retention, { maxAgeMs: 7 * 24 * 3600 * 1000, maxBytes: 0 })
    assert.equal(c.segmentBytes, 64 * 1024 * 1024)
    assert.equal(c.logLevel, 'info')
  })

  test('flags beat env, env beats the YAML file, the file beats defaults', () => {
    const file = yaml('precedence.yaml', [
      'httpPort: 9001',
      'p2pPort: 9101',
      'host: 10.0.0.1',
      'logLevel: debug',
      'consumer:',
      '  ackWaitMs: 1111',
      '  maxDeliver: 7',
    ].join('\n'))
    const { config: c, sources } = loadConfigWithSources({
      flags: { config: file, httpPort: '9003', consumerAckWaitMs: '3333' },
      env: { GEM_HTTP_PORT: '9002', GEM_P2P_PORT: '9102', GEM_CONSUMER_ACK_WAIT_MS: '2222', GEM_CONSUMER_MAX_DELIVER: '8' },
      cwd: dir,
    })
    assert.equal(c.httpPort, 9003) // flag over env and file
    assert.equal(c.p2pPort, 9102) // env over file
    assert.equal(c.host, '10.0.0.1') // file over default
    assert.equal(c.logLevel, 'debug')
    assert.equal(c.consumer.ackWaitMs, 3333)
    assert.equal(c.consumer.maxDeliver, 8)
    assert.equal(c.consumer.maxInFlight, 256) // untouched nested default survives a partial section
    assert.equal(c.durability, 'fsync')
    assert.deepEqual(sources.httpPort, { kind: 'flag', name: '--http-port' })
    assert.deepEqual(sources.p2pPort, { kind: 'env', name: 'GEM_P2P_PORT' })
    assert.deepEqual(sources.host, { kind: 'file', name: 'host', file })
    assert.deepEqual(sources.durability, { kind: 'default' })
  })

  test('YAML accepts snake_case and camelCase keys, including nested sections', () => {
    const file = yaml('snake.yaml', [
      'data_dir: ./snake-data',
      'http_port: 0',
      'auto_create_topics: true',
      'max_payload_bytes: 2048',
      'slow_consumer:',
      '  policy: drop_oldest',
      '  max_buffered_bytes: 65536',
      'consumer:',
      '  max_in_flight: 10',
      '  backoffMs: 50',
      'retention:',
      '  max_age_ms: 0',
      '  maxBytes: 1000000',
      'join:',
      '  - http://127.0.0.1:9000',
      '  - /ip4/127.0.0.1/tcp/9100',
      'dedup_window_ms: 5000',
    ].join('\n'))
    const c = loadConfig({ flags: { config: file }, env: {}, cwd: dir })
    assert.equal(c.dataDir, join(dir, 'snake-data'))
    assert.equal(c.httpPort, 0)
    assert.equal(c.autoCreateTopics, true)
    assert.equal(c.maxPayloadBytes, 2048)
    assert.deepEqual(c.slowConsumer, { policy: 'drop_oldest', maxBufferedBytes: 65536 })
    assert.equal(c.consumer.maxInFlight, 10)
    assert.equal(c.consumer.backoffMs, 50)
    assert.deepEqual(c.retention, { maxAgeMs: 0, maxBytes: 1_000_000 })
    assert.deepEqual(c.join, ['http://127.0.0.1:9000', '/ip4/127.0.0.1/tcp/9100'])
    assert.equal(c.dedupWindowMs, 5000)
  })

  test('GEM_CONFIG names the file when --config is absent; --config wins over it', () => {
    const a = yaml('a.yaml', 'httpPort: 7001\n')
    const b = yaml('b.yaml', 'httpPort: 7002\n')
    assert.equal(loadConfig({ flags: {}, env: { GEM_CONFIG: a }, cwd: dir }).httpPort, 7001)
    assert.equal(loadConfig({ flags: { config: b }, env: { GEM_CONFIG: a }, cwd: dir }).httpPort, 7002)
    // A relative path resolves against cwd.
    assert.equal(loadConfig({ flags: { config: 'b.yaml' }, env: {}, cwd: dir }).httpPort, 7002)
  })

  test('env strings become lists, booleans and numbers', () => {
    const c = loadConfig({
      flags: {},
      env: { GEM_JOIN: 'http://127.0.0.1:1, http://127.0.0.1:2', GEM_AUTO_CREATE_TOPICS: 'yes', GEM_SEGMENT_BYTES: '1_048_576', GEM_DURABILITY: 'none' },
      cwd: dir,
    })
    assert.deepEqual(c.join, ['http://127.0.0.1:1', 'http://127.0.0.1:2'])
    assert.equal(c.autoCreateTopics, true)
    assert.equal(c.segmentBytes, 1_048_576)
    assert.equal(c.durability, 'none')
  })

  test('repeated --join flags and a bare boolean flag', () => {
    const c = loadConfig({ flags: { join: ['a', 'b'], autoCreateTopics: true }, env: { GEM_JOIN: 'c' }, cwd: dir })
    assert.deepEqual(c.join, ['a', 'b'])
    assert.equal(c.autoCreateTopics, true)
  })

  test('an empty env variable counts as unset', () => {
    assert.equal(loadConfig({ flags: {}, env: { GEM_HTTP_PORT: '' }, cwd: dir }).httpPort, 8080)
  })

  test('a bad flag value names the field and the flag', () => {
    const err = configError(() => loadConfig({ flags: { httpPort: 'abc' }, env: {}, cwd: dir }))
    assert.equal(err.field, 'httpPort')
    assert.deepEqual(err.source, { kind: 'flag', name: '--http-port' })
    assert.match(err.message, /httpPort/)
    assert.match(err.message, /--http-port/)
    assert.match(err.message, /"abc"/)
  })

  test('an out-of-range env value names the field and the variable', () => {
    const err = configError(() => loadConfig({ flags: {}, env: { GEM_HTTP_PORT: '70000' }, cwd: dir }))
    assert.equal(err.field, 'httpPort')
    assert.match(err.message, /GEM_HTTP_PORT/)
    assert.match(err.message, /70000/)
    const enumErr = configError(() => loadConfig({ flags: {}, env: { GEM_DURABILITY: 'maybe' }, cwd: dir }))
    assert.equal(enumErr.field, 'durability')
    assert.match(enumErr.message, /fsync, none/)
  })

  test('a bad value in the YAML file names the field, the key as written and the file', () => {
    const file = yaml('bad.yaml', 'consumer:\n  max_deliver: 0\n')
    const err = configError(() => loadConfig({ flags: { config: file }, env: {}, cwd: dir }))
    assert.equal(err.field, 'consumer.maxDeliver')
    assert.equal(err.source.kind, 'file')
    assert.match(err.message, /consumer\.max_deliver/)
    assert.ok(err.message.includes(file))
  })

  test('a wrongly typed YAML value is refused, not coerced silently', () => {
    const file = yaml('typed.yaml', 'autoCreateTopics: sometimes\n')
    const err = configError(() => loadConfig({ flags: { config: file }, env: {}, cwd: dir }))
    assert.equal(err.field, 'autoCreateTopics')
    assert.match(err.message, /true or false/)
  })

  test('unknown YAML keys are errors (a typo must not silently fall back to a default)', () => {
    const file = yaml('typo.yaml', 'http_prot: 9000\n')
    const err = configError(() => loadConfig({ flags: { config: file }, env: {}, cwd: dir }))
    assert.match(err.message, /unknown setting http_prot/)
  })

  test('a missing or malformed config file is reported with its path and how it was named', () => {
    const missing = join(dir, 'nope.yaml')
    const err = configError(() => loadConfig({ flags: {}, env: { GEM_CONFIG: missing }, cwd: dir }))
    assert.ok(err.message.includes(missing))
    assert.match(err.message, /GEM_CONFIG/)
    const broken = yaml('broken.yaml', 'httpPort: [1, 2\n')
    assert.match(configError(() => loadConfig({ flags: { config: broken }, env: {}, cwd: dir })).message, /not valid YAML/)
  })

  test('cross-field rule: the first redelivery delay cannot exceed the maximum', () => {
    const err = configError(() => loadConfig({ flags: { consumerBackoffMs: '90000' }, env: {}, cwd: dir }))
    assert.equal(err.field, 'consumer.backoffMs')
    assert.match(err.message, /--consumer-backoff-ms/)
  })

  test('describeConfig lists every field with its flag, env variable and default', () => {
    const text = describeConfig()
    for (const f of CONFIG_FIELDS) {
      assert.ok(text.includes(f.flag), f.flag)
      assert.ok(text.includes(f.env), f.env)
    }
    assert.match(text, /`slow_consumer\.max_buffered_bytes`/)
    assert.match(text, /\(7 days\)/)
    assert.ok(text.includes('--http-port'))
  })
})
