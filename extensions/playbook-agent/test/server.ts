// A tiny gateway stand-in on 127.0.0.1 for the tests: each test sets `handle`.
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Seen {
  method: string;
  url: string;
  authorization?: string;
}

export type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

export class FakeGateway {
  handle: Handler = (_req, res) => json(res, 500, {});
  seen: Seen[] = [];
  private server = http.createServer((req, res) => {
    this.seen.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => this.handle(req, res));
  });

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

export function apiError(res: http.ServerResponse, status: number, code: string, message: string, extra = {}): void {
  json(res, status, { error: { code, message }, ...extra });
}

/** An address on 127.0.0.1 that nothing listens on (a port just released). */
export async function closedAddress(): Promise<string> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}
