// Runs inside a sandboxed workspace whose network is only its loopback:
// listens on the loopback port of PLAYBOOK_GATEWAY_URL and carries each
// connection to the gateway's workspace API socket (argv[2]), bound
// read-only into the sandbox. Nothing else leaves the workspace.
'use strict';
const net = require('net');

const sock = process.argv[2];
const url = new URL(process.env.PLAYBOOK_GATEWAY_URL || 'http://127.0.0.1:8080');
const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));

net.createServer((client) => {
  const upstream = net.connect(sock);
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
}).listen(port, '127.0.0.1');
