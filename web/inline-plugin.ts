/**
 * A Vite plugin that inlines every emitted JS chunk and CSS file into the
 * HTML page and drops the separate files: the result opens from file:// (a
 * module script loaded from file:// is blocked by CORS) with no server and no
 * network. Workers are inlined by Vite itself (`?worker&inline`).
 */
import { fileURLToPath } from 'node:url';
import type { Plugin, UserConfig } from 'vite';

/**
 * The Vite configuration of a page built as one self-contained HTML file:
 * `root` is the page's folder, `out` the folder under dist/web/ it goes to.
 */
export function singleFileConfig(root: URL, out: string, extra: UserConfig = {}): UserConfig {
  return {
    root: fileURLToPath(root),
    base: './',
    logLevel: 'warn',
    esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
    build: {
      outDir: fileURLToPath(new URL(`../dist/web/${out}`, import.meta.url)),
      emptyOutDir: true,
      assetsInlineLimit: Number.MAX_SAFE_INTEGER,
      cssCodeSplit: false,
      modulePreload: false,
    },
    plugins: [inlineIntoHtml()],
    ...extra,
  };
}

export function inlineIntoHtml(): Plugin {
  return {
    name: 'dmabuf-check-inline',
    enforce: 'post',
    generateBundle(_options, bundle) {
      const html = Object.values(bundle).filter((f) => f.type === 'asset' && f.fileName.endsWith('.html'));
      for (const page of html) {
        if (page.type !== 'asset') continue;
        let source = String(page.source);
        for (const [name, chunk] of Object.entries(bundle)) {
          if (chunk.type === 'chunk' && chunk.isEntry) {
            const re = new RegExp(`<script[^>]*src="[^"]*${escapeRe(chunk.fileName)}"[^>]*></script>`);
            const code = chunk.code.replace(/<\/script/gi, '<\\/script');
            source = source.replace(re, () => `<script type="module">${code}</script>`);
            delete bundle[name];
          } else if (chunk.type === 'asset' && chunk.fileName.endsWith('.css')) {
            const re = new RegExp(`<link[^>]*href="[^"]*${escapeRe(chunk.fileName)}"[^>]*>`);
            source = source.replace(re, () => `<style>${String(chunk.source)}</style>`);
            delete bundle[name];
          }
        }
        page.source = source;
      }
    },
  };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
