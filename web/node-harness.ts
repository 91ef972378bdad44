/**
 * Node side of the demo, for tests and benchmarks: builds the page with Vite, serves the build (with
 * the cross-origin isolation headers of vite.config.ts) and opens it in headless Chromium.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { build, preview, type PreviewServer } from 'vite';

const CONFIG = fileURLToPath(new URL('./vite.config.ts', import.meta.url));

/** Chromium's flags for containers (no sandbox, no /dev/shm) on a closed network (no background traffic). */
export const CHROMIUM_ARGS: readonly string[] = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

/** Debian's Chromium, or the executable named by PARSIMONY_CHROMIUM; null when there is none. */
export function chromiumPath(): string | null {
  const candidates = [process.env['PARSIMONY_CHROMIUM'], '/usr/bin/chromium', '/usr/bin/chromium-browser'];
  return candidates.find((p): p is string => p !== undefined && p !== '' && existsSync(p)) ?? null;
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = chromiumPath();
  if (executablePath === null) throw new Error('no Chromium: install Debian\'s `chromium` package or set PARSIMONY_CHROMIUM');
  return chromium.launch({ executablePath, args: [...CHROMIUM_ARGS] });
}

export interface ServedDemo {
  readonly url: string;
  readonly outDir: string;
  close(): Promise<void>;
}

/** Builds the page into a fresh temporary folder and serves it on a free local port. */
export async function buildAndServeDemo(): Promise<ServedDemo> {
  const outDir = mkdtempSync(join(tmpdir(), 'parsimony-web-'));
  let server: PreviewServer | null = null;
  try {
    await build({ configFile: CONFIG, logLevel: 'warn', build: { outDir } });
    server = await preview({ configFile: CONFIG, logLevel: 'warn', build: { outDir }, preview: { host: '127.0.0.1', port: 0, strictPort: false, open: false } });
    const url = server.resolvedUrls?.local[0];
    if (url === undefined) throw new Error('the preview server reports no local URL');
    const s = server;
    return {
      url, outDir,
      async close() {
        await s.close();
        rmSync(outDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await server?.close();
    rmSync(outDir, { recursive: true, force: true });
    throw e;
  }
}
