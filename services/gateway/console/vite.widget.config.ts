import { defineConfig } from 'vite';

// The customer widget: one self-contained IIFE script, dist/widget.js, served by the
// gateway at /widget.js. No framework: it must stay small (≤ 40 KB gzipped).
export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: false,
    target: 'es2019',
    reportCompressedSize: false,
    lib: {
      entry: 'src/widget/main.ts',
      name: 'HelmdeskWidget',
      formats: ['iife'],
      fileName: () => 'widget.js',
    },
  },
});
