// The `gem` command line: parses arguments with commander and dispatches to one command module per subcommand.
// Exit codes: 0 ok, 1 failure (server, network, runtime), 2 bad command-line input. Run directly: `node main.ts start`.
import { Command, CommanderError, Option } from 'commander'
import { CONFIG_FIELDS, loadConfig } from '../config.ts'
import type { ConfigField } from '../config.ts'
import { benchCommand } from './bench.ts'
import { EXIT_USAGE, exitCodeFor, printError, UsageError } from './errors.ts'
import { DEFAULT_URL } from './http-client.ts'
import { VERSION } from './version.ts'
import { publishCommand } from './publish.ts'
import { tuneServerProcess } from './server-process.ts'
import { statusCommand } from './status.ts'
import { subscribeCommand } from './subscribe.ts'
import { createTopicCommand, deleteTopicCommand, listTopicsCommand } from './topics.ts'

const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value]
const urlOption = () => new Option('--url <url>', `gateway URL (env GEM_URL, default ${DEFAULT_URL})`)

function placeholder (f: ConfigField): string {
  if (f.choices !== undefined) return f.choices.join('|')
  if (f.kind === 'number') return 'n'
  return f.path === 'dataDir' ? 'dir' : 'value'
}

function buildProgram (done: (code: number) => void, signal: AbortSignal): Command {
  const program = new Command('gem')
    .description('GEM, the Global Event Mesh: run a node and talk to one.')
    .version(VERSION, '-v, --version')
    .exitOverride()
    // Commander's own error printing is replaced by `error CODE: message` in runCli.
    .configureOutput({ outputError: () => {} })
    .showHelpAfterError(false)

  const start = program.command('start')
    .description('run a node in the foreground until SIGINT/SIGTERM (flags > GEM_* env > --config YAML > defaults)')
    .option('--config <file>', 'YAML configuration file (env GEM_CONFIG)')
  for (const f of CONFIG_FIELDS) {
    const help = `${f.description} (env ${f.env})`
    if (f.kind === 'boolean') start.option(`${f.flag} [bool]`, help)
    else if (f.kind === 'list') start.option(`${f.flag} <url|multiaddr>`, help, collect)
    else start.option(`${f.flag} <${placeholder(f)}>`, help)
  }
  start.action(async (opts: Record<string, unknown>) => {
    // Validate before loading the server stack, so a bad flag is a usage error whatever else is broken.
    const config = loadConfig({ flags: opts, env: process.env, cwd: process.cwd() })
    // Loaded on demand: client commands should not pay for the broker, LevelDB and the gateway.
    const { startCommand } = await import('./start.ts')
    done(await startCommand(config))
  })

  program.command('publish')
    .description('publish PAYLOAD, or one message per stdin line, and print each ack as JSON')
    .argument('<topic>', 'topic name')
    .argument('[payload]', 'message payload (text; with --json, a JSON value); omitted: read lines from stdin')
    .option('--key <key>', 'partitioning key')
    .option('--id <id>', 'message id, for idempotent retries (stdin line n gets <id>-n)')
    .option('--header <k=v>', 'message header (repeatable)', collect)
    .option('--priority <n>', 'priority 1-10')
    .option('--json', 'parse the payload as JSON and publish the value')
    .addOption(urlOption())
    .action(async (topic: string, payload: string | undefined, opts) => { done(await publishCommand(topic, payload, opts)) })

  program.command('subscribe')
    .description('print one JSON line per message from the topic (Server-Sent Events) until interrupted')
    .argument('<topic>', 'topic name')
    .option('--group <group>', 'durable consumer group (default: an ephemeral subscription)')
    .option('--from <pos>', 'where to start: earliest, latest or an offset')
    .option('--count <n>', 'exit after n messages')
    .addOption(urlOption())
    .action(async (topic: string, opts) => { done(await subscribeCommand(topic, opts, signal)) })

  const topics = program.command('topics').description('list, create or delete topics (default: list)')
  topics.command('list', { isDefault: true })
    .description('list topics')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (opts) => { done(await listTopicsCommand(opts)) })
  topics.command('create')
    .description('create a topic')
    .argument('<name>', 'topic name')
    .option('--partitions <n>', 'number of partitions')
    .option('--replication <n>', 'replicas per partition')
    .option('--retention-max-age-ms <ms>', 'delete segments older than this; 0 keeps forever')
    .option('--retention-max-bytes <bytes>', 'per-partition size limit; 0 = none')
    .addOption(urlOption())
    .action(async (name: string, opts) => { done(await createTopicCommand(name, opts)) })
  topics.command('delete')
    .description('delete a topic and its messages')
    .argument('<name>', 'topic name')
    .addOption(urlOption())
    .action(async (name: string, opts) => { done(await deleteTopicCommand(name, opts)) })

  program.command('status')
    .description('health, counters, topics and consumer groups of a node')
    .option('--json', 'print JSON')
    .addOption(urlOption())
    .action(async (opts) => { done(await statusCommand(opts)) })

  program.command('trace')
    .description('load traces for the load predictor (npm run train reads them from models/traces/)')
    .command('record')
    .description('poll GET /cluster once a second and write a load trace as JSON lines')
    .option('--seconds <n>', 'how long to record', '300')
    .option('--out <file>', 'write here instead of stdout')
    .addOption(urlOption())
    .action(async (opts) => { const { traceRecordCommand } = await import('./trace.ts'); done(await traceRecordCommand(opts, signal)) })

  program.command('local-mesh')
    .description('run a mesh of several nodes on this machine, each a `gem start` process (what `npm start` runs)')
    .option('--nodes <n>', 'how many nodes', '3')
    .option('--data-dir <dir>', 'parent of the nodes\' data directories (node-1, node-2, ...)', '.gem-data')
    .option('--http-port <port>', 'gateway port of the first node; the others take the next ones (0: any free port)', '8080')
    .action(async (opts) => {
      const { localMeshCommand } = await import('./local-mesh.ts')
      done(await localMeshCommand(opts))
    })

  // Listed for --help; runCli hands `bench` and everything after it to the harness untouched.
  program.command('bench').description('run the benchmark harness (node bench/run.ts) with the given arguments')
    .argument('[args...]').allowUnknownOption()

  return program
}

/** Runs the CLI on `argv` (process.argv layout) and returns the exit code; never calls process.exit. */
export async function runCli (argv: string[] = process.argv, signal: AbortSignal = new AbortController().signal): Promise<number> {
  const args = argv.slice(2)
  if (args[0] === 'bench') {
    try {
      return await benchCommand(args.slice(1))
    } catch (err) {
      printError(err)
      return exitCodeFor(err)
    }
  }
  let code = 0
  const program = buildProgram(c => { code = c }, signal)
  try {
    await program.parseAsync(argv, { from: 'node' })
    return code
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') return 0
      // `gem` alone, or `gem topics` misuse: commander already printed the help; it is still a usage error.
      if (err.code === 'commander.help') return EXIT_USAGE
      printError(new UsageError(err.message.replace(/^error: /, '')), 'run with --help for usage')
      return EXIT_USAGE
    }
    printError(err)
    return exitCodeFor(err)
  }
}

/** The process entry (used by bin/gem.js and `node main.ts`): runs the CLI and exits with its code. */
export async function main (): Promise<never> {
  // A server process tunes its allocators first (it may re-execute itself, keeping its pid): server-process.ts says why.
  if (process.argv[2] === 'start') tuneServerProcess()
  const ac = new AbortController()
  // Ctrl-C ends `gem subscribe` with exit 0; `gem start` installs its own handlers for a graceful stop,
  // and every other command keeps Node's default (die at once: nothing to clean up).
  if (process.argv[2] === 'subscribe') {
    const onSignal = () => { if (ac.signal.aborted) process.exit(130); ac.abort() }
    process.on('SIGINT', onSignal)
    process.on('SIGTERM', onSignal)
  }
  const code = await runCli(process.argv, ac.signal)
  // Exit explicitly: idle keep-alive sockets of fetch must not hold a finished command open.
  process.exit(code)
}

if (import.meta.main) await main()
