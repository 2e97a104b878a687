#!/usr/bin/env node
// Serves the example outer portal (outer.html) on 127.0.0.1, to try the
// studio's embedding. Start the gateway with this page's origin allowed:
//
//   node deploy/local/serve-outer.mjs            # PORT=8090 by default
//   ALLOWED_FRAME_ANCESTORS=http://outer.playbooks.localhost:8090 make run
//   open http://outer.playbooks.localhost:8090/?portal=http://playbooks.localhost:8080
//
// outer.playbooks.localhost is another origin than the studio but the same
// site, so the studio's ordinary SameSite=Lax cookies work in the frame (see
// the README for an outer portal on another site).
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const port = Number(process.env.PORT || 8090);
const host = process.env.HOST || '127.0.0.1';

const files = {
  '/': ['outer.html', 'text/html; charset=utf-8'],
  '/outer.html': ['outer.html', 'text/html; charset=utf-8'],
  '/outer.js': ['outer.js', 'text/javascript; charset=utf-8'],
  '/outer.css': ['outer.css', 'text/css; charset=utf-8'],
};

const server = createServer(async (req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  const f = files[path];
  if (!f || (req.method !== 'GET' && req.method !== 'HEAD')) {
    res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    return;
  }
  const body = await readFile(join(here, f[0]));
  res.writeHead(200, {
    'Content-Type': f[1],
    'Cache-Control': 'no-cache',
    'Content-Security-Policy': "default-src 'self'; frame-src http: https:; base-uri 'none'; object-src 'none'",
    'X-Content-Type-Options': 'nosniff',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
});

server.listen(port, host, () => {
  const { port: p } = server.address();
  console.log(`outer portal: http://outer.playbooks.localhost:${p}/?portal=http://playbooks.localhost:8080`);
  console.log(`(the gateway needs ALLOWED_FRAME_ANCESTORS=http://outer.playbooks.localhost:${p})`);
});

for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => server.close(() => process.exit(0)));
