// Tiny DOM helpers for the views: build an element with attributes and children, replace a node's children.
// No framework: each view owns its subtree and redraws it from a snapshot.

type Child = Node | string | number | null | undefined | false

export function el<K extends keyof HTMLElementTagNameMap> (tag: K, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue
    node.setAttribute(k, v === true ? '' : String(v))
  }
  append(node, children)
  return node
}

const SVG_NS = 'http://www.w3.org/2000/svg'

export function svg<K extends keyof SVGElementTagNameMap> (tag: K, attrs: Record<string, string | number | undefined> = {}, ...children: Child[]): SVGElementTagNameMap[K] {
  const node = document.createElementNS(SVG_NS, tag)
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) node.setAttribute(k, String(v))
  append(node, children)
  return node
}

function append (node: Node, children: Child[]): void {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue
    node.appendChild(typeof c === 'object' ? c : document.createTextNode(String(c)))
  }
}

export function replaceChildren (node: Element, ...children: Child[]): void {
  node.replaceChildren()
  append(node, children)
}

/** A node or peer id short enough for a label. */
export function shortId (id: string): string {
  return id.length > 12 ? `${id.slice(0, 6)}…${id.slice(-4)}` : id
}

export function percent (v: number | null | undefined): string {
  return v === null || v === undefined ? '–' : `${(v * 100).toFixed(v < 0.1 ? 1 : 0)}%`
}

export function rate (v: number): string {
  return v >= 1000 ? `${(v / 1000).toFixed(1)}k/s` : `${v.toFixed(v < 10 && v > 0 ? 1 : 0)}/s`
}
