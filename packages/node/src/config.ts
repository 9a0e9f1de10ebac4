// The node's configuration: one zod schema with defaults, filled from flags, then GEM_* env, then a YAML file.
// It only reads and validates settings; it never opens storage, sockets or anything else the settings describe.
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import * as z from 'zod'
import { GemError } from '@gem-mesh/core'

const MiB = 1024 * 1024
const port = () => z.int().min(0).max(65535)
const positiveInt = () => z.int().min(1)
const nonNegativeInt = () => z.int().min(0)

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const

/** The single source of truth: field names, types, bounds, defaults and the reference text. */
export const GemConfigSchema = z.strictObject({
  dataDir: z.string().min(1).default('.gem-data')
    .describe('Directory for the log (LevelDB) and node.json; relative paths resolve against the working directory.'),
  host: z.string().min(1).default('127.0.0.1')
    .describe('Interface the HTTP gateway binds to. Use 0.0.0.0 to accept remote clients.'),
  httpPort: port().default(8080)
    .describe('HTTP/WebSocket/SSE gateway port; 0 picks a free port (see node.json for the one chosen).'),
  mesh: z.boolean().default(true)
    .describe('Run the libp2p mesh host (tcp, websockets, webrtc-direct, relay server) beside the gateway.'),
  p2pPort: port().default(0)
    .describe('Mesh (libp2p) TCP listen port on `host`; 0 = ephemeral. The websockets and webrtc-direct listeners take free ports.'),
  webrtcDirect: z.boolean().default(true)
    .describe('Listen for webrtc-direct (UDP) so browsers can dial this node directly.'),
  join: z.array(z.string().min(1)).default([])
    .describe('Peers to join: another node\'s http URL or multiaddr. Repeat the flag; comma-separated in env.'),
  durability: z.enum(['fsync', 'none']).default('fsync')
    .describe('fsync: a publish is acknowledged only after it is synced to disk. none: faster, loses the last writes on power failure.'),
  autoCreateTopics: z.boolean().default(false)
    .describe('Publishing to a missing topic creates it instead of failing with TOPIC_NOT_FOUND.'),
  defaultPartitions: z.int().min(1).max(1024).default(1)
    .describe('Partitions of a topic created without an explicit count.'),
  defaultReplication: z.int().min(1).max(16).default(3)
    .describe('Replicas of each partition of a topic created without an explicit count; clamped to the number of server nodes at creation.'),
  reassignGraceMs: positiveInt().default(10_000)
    .describe('How long a server node may be dead before the partitions it held are re-replicated elsewhere (ms).'),
  maxPayloadBytes: positiveInt().default(MiB)
    .describe('Largest message payload the gateway accepts (bytes).'),
  slowConsumer: z.strictObject({
    policy: z.enum(['disconnect', 'drop_oldest']).default('disconnect')
      .describe('What the gateway does when a push subscriber falls behind: disconnect it (SLOW_CONSUMER) or drop its oldest buffered events.'),
    maxBufferedBytes: positiveInt().default(8 * MiB)
      .describe('Bytes buffered for one push subscriber before the slow-consumer policy applies.'),
  }).prefault({}),
  consumer: z.strictObject({
    ackWaitMs: positiveInt().default(30_000)
      .describe('Time a consumer has to ack a delivery before it is redelivered (ms).'),
    maxDeliver: positiveInt().default(5)
      .describe('Deliveries without an ack before a message moves to `<topic>.dlq`.'),
    maxInFlight: positiveInt().default(256)
      .describe('Unacknowledged deliveries outstanding per consumer (backpressure credit).'),
    backoffMs: nonNegativeInt().default(1_000)
      .describe('First redelivery delay; doubles per attempt, with jitter (ms).'),
    maxBackoffMs: nonNegativeInt().default(60_000)
      .describe('Upper bound of the redelivery delay (ms).'),
  }).prefault({}),
  dedupWindowMs: nonNegativeInt().default(120_000)
    .describe('A producer-chosen message id seen again within this window is stored once (ms).'),
  retention: z.strictObject({
    maxAgeMs: nonNegativeInt().default(7 * 24 * 3600_000)
      .describe('Default retention: segments older than this are deleted (ms); 0 keeps forever.'),
    maxBytes: nonNegativeInt().default(0)
      .describe('Default retention: oldest segments are deleted while a partition holds more (bytes); 0 = no limit.'),
  }).prefault({}),
  segmentBytes: z.int().min(4096).default(64 * MiB)
    .describe('A log segment rolls when it would grow past this (bytes). A sealed segment is what goes to S3, as one object.'),
  segmentMaxAgeMs: nonNegativeInt().default(3_600_000)
    .describe('A log segment also rolls (and so becomes eligible for S3) once its first record is this old (ms); 0 = by size only.'),
  hotBytes: nonNegativeInt().default(8 * MiB)
    .describe('Recent records kept in memory per partition, served without touching storage (bytes).'),
  localBytes: nonNegativeInt().default(1024 * MiB)
    .describe('Budget of log segment bytes on local disk: segments already in S3 are evicted to stay under it; when segments not yet in S3 fill it, publishes fail with STORAGE_FULL. 0 = no budget.'),
  coldCacheBytes: nonNegativeInt().default(32 * MiB)
    .describe('Memory for recent reads from S3, so sequential cold readers do not fetch per request (bytes).'),
  s3: z.enum(['auto', 'embedded', 'none']).default('auto')
    .describe('auto: the S3 given by s3Endpoint/s3Bucket, or else the embedded stand-in (fauxqs on 127.0.0.1, objects under <dataDir>/s3). none: no cold tier; segments stay local.'),
  s3Endpoint: z.string().default('')
    .describe('S3-compatible endpoint URL; empty with s3Bucket set means AWS itself.'),
  s3Bucket: z.string().default('')
    .describe('Bucket for offloaded segments (default `gem`); created if missing when an endpoint is given.'),
  s3Region: z.string().min(1).default('us-east-1')
    .describe('S3 region.'),
  s3Prefix: z.string().default('')
    .describe('Key prefix of this node\'s objects; empty = `gem/<node id>`. One node per prefix.'),
  s3AccessKeyId: z.string().default('')
    .describe('S3 access key; empty = the standard AWS credential chain (AWS_ACCESS_KEY_ID, shared config, instance role).'),
  s3SecretAccessKey: z.string().default('')
    .describe('S3 secret key, with s3AccessKeyId.'),
  predict: z.strictObject({
    model: z.string().default('')
      .describe('ONNX load-predictor model file; empty = the one shipped in the repo (models/load-predictor.onnx); `none` = EWMA only. A model that is missing or fails to load is reported once and EWMA is used.'),
    capacity: z.number().gt(0).max(1).default(0.85)
      .describe('Event-loop utilization above which a node is over capacity: leadership moves and placement act on max(current, predicted) load against it.'),
    target: z.number().gt(0).max(1).default(0.7)
      .describe('Leadership moves stop once this node is projected at or below this load, and never leave the receiving node above it.'),
    admission: z.boolean().default(false)
      .describe('Opt-in: slow producers with credit when this node is over capacity and predicted to saturate within 5 s; a publish that gets no credit within predict.maxWaitMs fails with OVERLOADED. Off by default: a pipelined client drives event-loop utilization to 1 at any rate, so benchmarks and bulk loads would be slowed.'),
    maxWaitMs: nonNegativeInt().default(1_000)
      .describe('Longest a publish waits for admission credit before OVERLOADED (ms).'),
    moves: z.boolean().default(false)
      .describe('Opt-in: when a node is predicted over capacity, hand the leadership of partitions it leads to a follower, and move one replica off it when that is not enough. Off by default: the signal (event-loop utilization) saturates under any pipelined client with gateway work that no move relieves, so leaders and replicas would move during every saturating benchmark (README, Load prediction).'),
  }).prefault({}),
  logLevel: z.enum(LOG_LEVELS).default('info')
    .describe('pino log level.'),
})

export type GemConfig = z.infer<typeof GemConfigSchema>

type LeafKind = 'string' | 'number' | 'boolean' | 'enum' | 'list'

/** One settable value of the schema, with the name it has on every surface. */
export interface ConfigField {
  /** Dotted camelCase path, e.g. `slowConsumer.policy`. */
  path: string
  keys: string[]
  kind: LeafKind
  /** Commander-style key of the flag (`slowConsumerPolicy`); the flag itself is `--slow-consumer-policy`. */
  flagKey: string
  flag: string
  env: string
  yaml: string
  choices?: readonly string[]
  default: unknown
  description: string
}

type AnyDef = { type: string, innerType?: z.ZodType, shape?: Record<string, z.ZodType>, entries?: Record<string, string>, defaultValue?: unknown }
const defOf = (s: z.ZodType): AnyDef => (s as unknown as { def: AnyDef }).def

const kebab = (s: string) => s.replace(/[A-Z]/g, c => '-' + c.toLowerCase())
const snake = (s: string) => s.replace(/[A-Z]/g, c => '_' + c.toLowerCase())
const camel = (s: string) => s.replace(/[_-]([a-z0-9])/g, (_, c: string) => c.toUpperCase())

function collectFields (shape: Record<string, z.ZodType>, prefix: string[], out: ConfigField[]): void {
  for (const [key, outer] of Object.entries(shape)) {
    let s = outer
    let dflt: unknown
    while (defOf(s).type === 'default' || defOf(s).type === 'prefault' || defOf(s).type === 'optional') {
      if (dflt === undefined) dflt = defOf(s).defaultValue
      s = defOf(s).innerType!
    }
    const keys = [...prefix, key]
    const def = defOf(s)
    if (def.type === 'object') { collectFields(def.shape!, keys, out); continue }
    const kind: LeafKind = def.type === 'number' ? 'number'
      : def.type === 'boolean' ? 'boolean'
        : def.type === 'enum' ? 'enum'
          : def.type === 'array' ? 'list'
            : 'string'
    const joined = keys.map((k, i) => i === 0 ? k : k[0]!.toUpperCase() + k.slice(1)).join('')
    out.push({
      path: keys.join('.'),
      keys,
      kind,
      flagKey: joined,
      flag: '--' + kebab(joined),
      env: 'GEM_' + snake(joined).toUpperCase(),
      yaml: keys.join('.'),
      ...(kind === 'enum' ? { choices: Object.values(def.entries!) } : {}),
      default: dflt,
      description: outer.description ?? '',
    })
  }
}

/** Every settable field, in schema order. */
export const CONFIG_FIELDS: readonly ConfigField[] = (() => {
  const out: ConfigField[] = []
  collectFields(GemConfigSchema.shape as unknown as Record<string, z.ZodType>, [], out)
  return out
})()

export type ConfigSource =
  | { kind: 'flag', name: string }
  | { kind: 'env', name: string }
  | { kind: 'file', name: string, file: string }
  | { kind: 'default' }

export function describeSource (s: ConfigSource): string {
  switch (s.kind) {
    case 'flag': return `flag ${s.name}`
    case 'env': return `env ${s.name}`
    case 'file': return `file ${s.file} (${s.name})`
    case 'default': return 'default'
  }
}

/** A configuration value is missing, malformed or out of range; the CLI exits with code 2. */
export class ConfigError extends GemError {
  readonly field: string
  readonly source: ConfigSource

  constructor (field: string, source: ConfigSource, message: string) {
    super('BAD_REQUEST', message, { field, source: describeSource(source) })
    this.name = 'ConfigError'
    this.field = field
    this.source = source
  }
}

export interface LoadConfigOptions {
  /** Parsed command-line options keyed like commander keys them (`httpPort`, `slowConsumerPolicy`, `config`). */
  flags?: Record<string, unknown>
  env?: Record<string, string | undefined>
  /** Base for a relative --config path and dataDir. Default process.cwd(). */
  cwd?: string
}

export interface LoadedConfig {
  config: GemConfig
  /** Where each field's value came from, by dotted path. */
  sources: Record<string, ConfigSource>
  /** The YAML file read, if any. */
  file?: string
}

/** Loads and validates the configuration; throws ConfigError naming the field and where its value came from. */
export function loadConfig (opts: LoadConfigOptions = {}): GemConfig {
  return loadConfigWithSources(opts).config
}

export function loadConfigWithSources (opts: LoadConfigOptions = {}): LoadedConfig {
  const flags = opts.flags ?? {}
  const env = opts.env ?? process.env
  const cwd = opts.cwd ?? process.cwd()

  let file: string | undefined
  let fileValues: Map<string, { value: unknown, name: string }> = new Map()
  const fileFlag = flags.config
  const fileEnv = env.GEM_CONFIG
  if (fileFlag !== undefined && fileFlag !== '') {
    file = resolve(cwd, String(fileFlag))
    fileValues = readYamlFile(file, { kind: 'flag', name: '--config' })
  } else if (fileEnv !== undefined && fileEnv !== '') {
    file = resolve(cwd, fileEnv)
    fileValues = readYamlFile(file, { kind: 'env', name: 'GEM_CONFIG' })
  }

  const raw: Record<string, unknown> = {}
  const sources: Record<string, ConfigSource> = {}
  for (const f of CONFIG_FIELDS) {
    let source: ConfigSource = { kind: 'default' }
    let value: unknown
    const flagValue = flags[f.flagKey]
    const envValue = env[f.env]
    const fromFile = fileValues.get(f.path)
    if (flagValue !== undefined) {
      source = { kind: 'flag', name: f.flag }
      value = coerce(f, flagValue, source)
    } else if (envValue !== undefined && envValue !== '') {
      source = { kind: 'env', name: f.env }
      value = coerce(f, envValue, source)
    } else if (fromFile !== undefined) {
      source = { kind: 'file', name: fromFile.name, file: file! }
      value = coerce(f, fromFile.value, source)
    }
    sources[f.path] = source
    if (source.kind !== 'default') setPath(raw, f.keys, value)
  }

  const parsed = GemConfigSchema.safeParse(raw)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!
    const path = issue.path.join('.')
    const source = sources[path] ?? { kind: 'default' }
    const got = getPath(raw, issue.path as Array<string | number>)
    const shown = got === undefined ? '' : ` (got ${JSON.stringify(got)})`
    throw new ConfigError(path, source, `invalid ${path} from ${describeSource(source)}: ${issue.message}${shown}`)
  }
  const config = parsed.data
  const { backoffMs, maxBackoffMs } = config.consumer
  if (maxBackoffMs < backoffMs) {
    // Blame the value someone actually set; a default is never the mistake.
    const field = sources['consumer.maxBackoffMs']!.kind === 'default' ? 'consumer.backoffMs' : 'consumer.maxBackoffMs'
    const source = sources[field]!
    throw new ConfigError(field, source,
      `invalid ${field} from ${describeSource(source)}: consumer.backoffMs (${backoffMs}) must not exceed consumer.maxBackoffMs (${maxBackoffMs})`)
  }
  if (config.localBytes > 0 && config.localBytes < 2 * config.segmentBytes) {
    // The open segment always stays local, and a sealed one waits there for its upload: the budget must hold two.
    const field = sources.localBytes!.kind === 'default' ? 'segmentBytes' : 'localBytes'
    const source = sources[field]!
    throw new ConfigError(field, source,
      `invalid ${field} from ${describeSource(source)}: localBytes (${config.localBytes}) must be 0 or at least twice segmentBytes (${config.segmentBytes})`)
  }
  config.dataDir = resolve(cwd, config.dataDir)
  return { config, sources, ...(file !== undefined ? { file } : {}) }
}

/** Reads a YAML file into dotted camelCase paths; snake_case and kebab-case keys are accepted too. */
function readYamlFile (file: string, via: ConfigSource): Map<string, { value: unknown, name: string }> {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (err as Error).message
    throw new ConfigError('config', via, `cannot read config file ${file} (from ${describeSource(via)}): ${reason}`)
  }
  let doc: unknown
  try {
    doc = parseYaml(text)
  } catch (err) {
    throw new ConfigError('config', via, `config file ${file} is not valid YAML: ${(err as Error).message}`)
  }
  const out = new Map<string, { value: unknown, name: string }>()
  if (doc === null || doc === undefined) return out
  const fileSource = (name: string): ConfigSource => ({ kind: 'file', name, file })
  if (!isPlainObject(doc)) throw new ConfigError('config', via, `config file ${file} must hold a mapping of settings`)
  const known = new Set(CONFIG_FIELDS.map(f => f.path))
  const groups = new Set(CONFIG_FIELDS.filter(f => f.keys.length > 1).map(f => f.keys[0]!))
  const walk = (obj: Record<string, unknown>, prefix: string[], written: string[]) => {
    for (const [rawKey, value] of Object.entries(obj)) {
      const key = camel(rawKey)
      const path = [...prefix, key].join('.')
      const name = [...written, rawKey].join('.')
      if (prefix.length === 0 && groups.has(key)) {
        if (!isPlainObject(value)) throw new ConfigError(path, fileSource(name), `invalid ${path} from file ${file} (${name}): expected a mapping`)
        walk(value, [key], [rawKey])
      } else if (known.has(path)) {
        out.set(path, { value, name })
      } else {
        throw new ConfigError(path, fileSource(name), `unknown setting ${name} in file ${file}`)
      }
    }
  }
  walk(doc, [], [])
  return out
}

const TRUE = new Set(['true', '1', 'yes', 'on'])
const FALSE = new Set(['false', '0', 'no', 'off'])
const NUMBER = /^[+-]?(\d[\d_]*)(\.\d+)?([eE][+-]?\d+)?$/

/** Turns strings from flags and env (and sloppy YAML) into the field's type; zod then checks the value. */
function coerce (f: ConfigField, value: unknown, source: ConfigSource): unknown {
  const bad = (expected: string) => new ConfigError(f.path, source,
    `invalid ${f.path} from ${describeSource(source)}: expected ${expected}, got ${JSON.stringify(value)}`)
  switch (f.kind) {
    case 'number':
      if (typeof value === 'number') return value
      if (typeof value === 'string' && NUMBER.test(value.trim())) return Number(value.trim().replaceAll('_', ''))
      throw bad('a number')
    case 'boolean':
      if (typeof value === 'boolean') return value
      if (typeof value === 'string' && TRUE.has(value.trim().toLowerCase())) return true
      if (typeof value === 'string' && FALSE.has(value.trim().toLowerCase())) return false
      throw bad('true or false')
    case 'list': {
      const items = Array.isArray(value) ? value : typeof value === 'string' ? value.split(',') : null
      if (items === null) throw bad('a list of strings')
      return items.map(v => typeof v === 'string' ? v.trim() : v).filter(v => v !== '')
    }
    case 'enum':
      if (typeof value === 'string' && f.choices!.includes(value)) return value
      throw bad('one of ' + f.choices!.join(', '))
    case 'string':
      if (typeof value === 'string' || typeof value === 'number') return String(value)
      throw bad('a string')
  }
}

function setPath (obj: Record<string, unknown>, keys: string[], value: unknown): void {
  let o = obj
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>
  o[keys[keys.length - 1]!] = value
}

function getPath (obj: unknown, keys: Array<string | number>): unknown {
  let o = obj
  for (const k of keys) o = isPlainObject(o) || Array.isArray(o) ? (o as Record<string, unknown>)[k] : undefined
  return o
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function formatDefault (f: ConfigField): string {
  const v = f.default
  if (Array.isArray(v)) return v.length === 0 ? '`[]`' : '`' + v.join(',') + '`'
  if (typeof v === 'number') {
    if (v >= MiB && v % MiB === 0) return `\`${v}\` (${v / MiB} MiB)`
    if (f.path.endsWith('Ms') && v >= 86_400_000 && v % 86_400_000 === 0) return `\`${v}\` (${v / 86_400_000} days)`
  }
  return '`' + String(v) + '`'
}

/** The configuration reference as a Markdown table (the README embeds it). */
export function describeConfig (): string {
  const rows = [
    '| Setting (YAML) | Flag | Env | Default | Meaning |',
    '| --- | --- | --- | --- | --- |',
  ]
  for (const f of CONFIG_FIELDS) {
    const snakeName = f.keys.map(snake).join('.')
    const yaml = snakeName === f.path ? `\`${f.path}\`` : `\`${f.path}\` / \`${snakeName}\``
    const choices = f.choices !== undefined ? ` One of: ${f.choices.map(c => '`' + c + '`').join(', ')}.` : ''
    rows.push(`| ${yaml} | \`${f.flag}\` | \`${f.env}\` | ${formatDefault(f)} | ${f.description}${choices} |`)
  }
  rows.push('', 'Precedence: flags, then `GEM_*` environment variables, then the YAML file given by `--config` or `GEM_CONFIG`, then the defaults above.')
  return rows.join('\n')
}
