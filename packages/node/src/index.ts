// @gem-mesh/node public entry: run a GEM node from code (startNode), its configuration, logging and Node adapters.
// Re-exports only; the CLI lives in src/cli and is reached through the `gem` bin.
export { startNode, readNodeFile, NODE_FILE, VERSION } from './node.ts'
export type { GemNode, NodeFile, StartNodeOptions } from './node.ts'
export { loadConfig, loadConfigWithSources, describeConfig, GemConfigSchema, CONFIG_FIELDS, ConfigError } from './config.ts'
export type { GemConfig, ConfigField, ConfigSource, LoadConfigOptions, LoadedConfig } from './config.ts'
export { createLogger, componentLogger, silentLogger } from './logger.ts'
export type { Logger, LogLevel, LoggerOptions } from './logger.ts'
export { openLevelTier } from './storage/leveldb-tier.ts'
export { startGateway } from './gateway/server.ts'
export { createMetrics } from './metrics.ts'
export { runCli } from './cli/main.ts'
