// Types for the part of d3-force the mesh graph uses (the package ships none, and @types/d3-force is not installed).
declare module 'd3-force' {
  export interface SimulationNodeDatum { index?: number, x?: number, y?: number, vx?: number, vy?: number, fx?: number | null, fy?: number | null }
  export interface SimulationLinkDatum<N extends SimulationNodeDatum> { source: N | string, target: N | string, index?: number }
  export interface Force<N extends SimulationNodeDatum> { (alpha: number): void, initialize?(nodes: N[]): void }
  export interface Simulation<N extends SimulationNodeDatum> {
    nodes(): N[]
    nodes(nodes: N[]): this
    force(name: string): Force<N> | undefined
    force(name: string, force: Force<N> | null): this
    alpha(a: number): this
    alphaTarget(a: number): this
    restart(): this
    stop(): this
    on(type: 'tick' | 'end', listener: () => void): this
  }
  export interface LinkForce<N extends SimulationNodeDatum, L extends SimulationLinkDatum<N>> extends Force<N> {
    links(links: L[]): this
    id(fn: (n: N) => string): this
    distance(d: number | ((l: L) => number)): this
    strength(s: number | ((l: L) => number)): this
  }
  export interface ManyBodyForce<N extends SimulationNodeDatum> extends Force<N> { strength(s: number): this }
  export interface CollideForce<N extends SimulationNodeDatum> extends Force<N> { radius(r: number | ((n: N) => number)): this }
  export interface PositionForce<N extends SimulationNodeDatum> extends Force<N> { strength(s: number): this }
  export function forceSimulation<N extends SimulationNodeDatum> (nodes?: N[]): Simulation<N>
  export function forceLink<N extends SimulationNodeDatum, L extends SimulationLinkDatum<N>> (links?: L[]): LinkForce<N, L>
  export function forceManyBody<N extends SimulationNodeDatum> (): ManyBodyForce<N>
  export function forceCollide<N extends SimulationNodeDatum> (radius?: number): CollideForce<N>
  export function forceX<N extends SimulationNodeDatum> (x?: number): PositionForce<N>
  export function forceY<N extends SimulationNodeDatum> (y?: number): PositionForce<N>
  export function forceCenter<N extends SimulationNodeDatum> (x?: number, y?: number): Force<N>
}
