import { defineConfig } from 'vite';
import { singleFileConfig } from '../inline-plugin.ts';

/** The playground as a static folder (one HTML file, worker inlined): dist/web/playground/. */
export default defineConfig(
  singleFileConfig(new URL('.', import.meta.url), 'playground', { worker: { format: 'iife' } }),
);
