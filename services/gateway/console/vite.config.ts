import { defineConfig } from 'vitest/config';

// The console: a single-page app served by the gateway at /, assets under /assets/
// (content-hashed, cached forever). `npm run dev` proxies the API to a local
// `helmdesk dev` on :8080.
export default defineConfig({
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2022',
    assetsInlineLimit: 4096,
    reportCompressedSize: false,
  },
  server: {
    proxy: {
      '/api': { target: 'http://localhost:8080', ws: true },
      '/widget.js': 'http://localhost:8080',
    },
  },
  test: {
    include: ['src/**/*.test.ts'],
    environment: 'node',
  },
});
