// @gem-mesh/core sim: the deterministic simulator (seeded randomness, virtual time, faulty network and disks).
// Used by the test suite and by `npm run sim`; nothing here runs in a production node.
export { Prng } from './prng.ts'
export { SimScheduler } from './scheduler.ts'
export { SimNetwork, CALM } from './network.ts'
export type { LinkFaults } from './network.ts'
export { SimDisk } from './disk.ts'
export { runReplicationSim } from './replication-sim.ts'
export type { ReplicationSimOptions, ReplicationSimResult, SimValue } from './replication-sim.ts'
