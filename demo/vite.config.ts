// The dashboard's Vite build: demo/index.html -> demo/dist, with relative asset urls so that every gateway can
// serve it under /dashboard/ (and the dev server at /). Nothing else; building is driven by build-dashboard.ts.
import { defineConfig } from 'vite'

export default defineConfig({
  root: import.meta.dirname,
  base: './',
  publicDir: false,
  logLevel: 'warn',
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2023',
    reportCompressedSize: false,
    // libp2p and onnxruntime-web make big chunks; the size warning says nothing useful here.
    chunkSizeWarningLimit: 20_000,
  },
})
