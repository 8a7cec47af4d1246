import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import { inlineIntoHtml } from '../inline-plugin.ts';

/** The trace viewer as one self-contained HTML file: dist/web/viewer/index.html. */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: './',
  logLevel: 'warn',
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: {
    outDir: fileURLToPath(new URL('../../dist/web/viewer', import.meta.url)),
    emptyOutDir: true,
    assetsInlineLimit: Number.MAX_SAFE_INTEGER,
    cssCodeSplit: false,
    modulePreload: false,
  },
  plugins: [inlineIntoHtml()],
});
