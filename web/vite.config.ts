/**
 * The demo page: `npm run web` serves it, `npm run build:web` writes it to web/dist/ as static files.
 * Both send the headers that make the page cross-origin isolated, so that its kernels may run on
 * several threads; served without them, the page runs on one.
 */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

export const CROSS_ORIGIN_ISOLATION = {
  'Cross-Origin-Opener-Policy': 'same-origin',
  'Cross-Origin-Embedder-Policy': 'require-corp',
} as const;

export default defineConfig({
  root: here('.'),
  base: './',
  server: { headers: CROSS_ORIGIN_ISOLATION },
  preview: { headers: CROSS_ORIGIN_ISOLATION },
  build: {
    outDir: here('dist'),
    emptyOutDir: true,
    target: 'es2022',
    // Files stay files: the kernels must be fetched to compile while downloading.
    assetsInlineLimit: 0,
  },
});
