import { defineConfig } from 'vite';
import { singleFileConfig } from '../inline-plugin.ts';

/** The trace viewer as one self-contained HTML file: dist/web/viewer/index.html. */
export default defineConfig(singleFileConfig(new URL('.', import.meta.url), 'viewer'));
