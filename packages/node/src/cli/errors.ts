// How the CLI fails: `error CODE: message` on stderr, exit 2 for bad input on the command line, 1 for everything else.
// It only classifies and prints errors; commands decide when to throw them.
import { GemError, toGemError } from '@gem-mesh/core'
import { ConfigError } from '../config.ts'

/** Bad command-line input: the user can fix it by changing the command. Exit code 2. */
export class UsageError extends GemError {
  constructor (message: string) {
    super('BAD_REQUEST', message)
    this.name = 'UsageError'
  }
}

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
export const EXIT_USAGE = 2

export function exitCodeFor (err: unknown): number {
  return err instanceof UsageError || err instanceof ConfigError ? EXIT_USAGE : EXIT_FAILURE
}

export function printError (err: unknown, hint?: string): void {
  const e = toGemError(err)
  process.stderr.write(`error ${e.code}: ${e.message}${hint !== undefined ? `\n${hint}` : ''}\n`)
}
