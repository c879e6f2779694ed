// Browser end-to-end harness: starts `helmdesk dev` on a fresh data folder and a free
// port, a tiny "customer website" on another port, and Debian's Chromium driven by
// playwright-core. Screenshots go to test-results/browser/ at the repository root.

import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, existsSync, createWriteStream } from 'node:fs';
import { createServer } from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '../../../..');
export const resultsDir = process.env.HELMDESK_E2E_RESULTS ?? path.join(repoRoot, 'test-results', 'browser');

export const CHROMIUM_ARGS = [
  '--headless=new',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-dev-shm-usage',
];

export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

async function waitFor(url, timeoutMs, proc) {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (proc && proc.exitCode !== null) throw new Error(`helmdesk exited with ${proc.exitCode} before it was ready`);
    try {
      const r = await fetch(url);
      if (r.ok) return;
      last = `HTTP ${r.status}`;
    } catch (e) {
      last = e.message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} not ready after ${timeoutMs} ms: ${last}`);
}

/** Start `helmdesk dev` on a fresh data dir and a free port. */
export async function startHelmdesk() {
  const bin = process.env.HELMDESK_BIN ?? path.join(repoRoot, 'bin', 'helmdesk');
  if (!existsSync(bin)) throw new Error(`${bin} is missing: build it with \`go build -o bin/helmdesk ./services/cmd/helmdesk\` (make e2e-browser does)`);
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'helmdesk-e2e-'));
  rmSync(resultsDir, { recursive: true, force: true });
  mkdirSync(resultsDir, { recursive: true });
  const log = createWriteStream(path.join(resultsDir, 'helmdesk.log'));
  const proc = spawn(bin, ['dev'], {
    env: { ...process.env, HELMDESK_HTTP_ADDR: `127.0.0.1:${port}`, HELMDESK_DATA_DIR: dataDir, HELMDESK_LOG_LEVEL: process.env.HELMDESK_LOG_LEVEL ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.pipe(log);
  proc.stderr.pipe(log);
  const url = `http://127.0.0.1:${port}`;
  const started = Date.now();
  await waitFor(`${url}/readyz`, 90_000, proc);
  return {
    url,
    port,
    startupMs: Date.now() - started,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            proc.kill('SIGKILL');
            r();
          }, 15_000);
          proc.once('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A customer's website on its own origin: pages are set with setPage(path, html). */
export async function startSite() {
  const pages = new Map();
  const srv = createServer((req, res) => {
    const p = new URL(req.url, 'http://x').pathname;
    const html = pages.get(p);
    if (!html) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found');
      return;
    }
    res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' }).end(html);
  });
  const port = await freePort();
  await new Promise((r) => srv.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}`,
    setPage: (p, html) => pages.set(p, html),
    stop: () => new Promise((r) => srv.close(r)),
  };
}

export async function launchBrowser() {
  const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) throw new Error(`${executablePath} is missing: apt-get install -y chromium (make deps-browser)`);
  return chromium.launch({ executablePath, headless: true, args: CHROMIUM_ARGS });
}

export function shotPath(name) {
  mkdirSync(resultsDir, { recursive: true });
  return path.join(resultsDir, `${name}.png`);
}

export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  if (!s.length) return NaN;
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}
