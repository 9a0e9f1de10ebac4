// @gem-mesh/browser: the GEM core for browsers. For now it re-exports the isomorphic SDK
// (memory tier); the IndexedDB tier and the WebRTC mesh peer arrive with the browser-peer work.
export * from '@gem-mesh/core'
