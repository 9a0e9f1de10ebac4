// The version of @gem-mesh/node, read once from its package.json, for `gem --version`, /info and node.json.
// Kept apart from node.ts so that client commands can print it without loading the server stack.
import { readFileSync } from 'node:fs'

export const VERSION: string = (() => {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version
  } catch {
    return '0.0.0'
  }
})()
