/** The browser runtime as one ESM file with the kernel builds beside it: `web/dist/lib/`. */
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string): string => fileURLToPath(new URL(p, import.meta.url));

export default defineConfig({
  root: here('.'),
  build: {
    outDir: here('dist/lib'),
    emptyOutDir: true,
    target: 'es2022',
    assetsInlineLimit: 0,
    rolldownOptions: {
      input: { 'parsimony-browser': here('../src/browser/index.ts') },
      preserveEntrySignatures: 'strict',
      output: { format: 'es', entryFileNames: '[name].js', assetFileNames: '[name][extname]' },
    },
  },
});
