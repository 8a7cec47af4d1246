import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { inlineIntoHtml } from '../inline-plugin.ts';

/** The playground as a static folder (one HTML file, worker inlined): dist/web/playground/. */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../../dist/web/playground', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: Number.MAX_SAFE_INTEGER,
    cssCodeSplit: false,
    modulePreload: false,
  },
  worker: { format: 'iife' },
  plugins: [inlineIntoHtml()],
});
