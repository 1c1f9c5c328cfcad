// SPDX-License-Identifier: MIT
// A loopback upstream for bench_inflight: answers every POST .../chat/completions
// with an OpenAI chat.completion after a fixed delay, holding any number of
// requests at once (one timer each, no thread per request). Binds 127.0.0.1
// only, prints its port as the first line on stdout, and stops when its stdin
// closes or on SIGTERM / SIGINT. Plain node, no npm packages.
//   node delay-upstream.cjs [--port=0] [--delay-ms=1000] [--no-stdin]
'use strict';
const http = require('http');

const opt = { port: 0, delayMs: 1000, stdin: true };
for (const a of process.argv.slice(2)) {
  let m;
  if ((m = /^--port=(\d+)$/.exec(a))) opt.port = Number(m[1]);
  else if ((m = /^--delay-ms=(\d+)$/.exec(a))) opt.delayMs = Number(m[1]);
  else if (a === '--no-stdin') opt.stdin = false;
  else if (/^\d+$/.test(a)) opt.port = Number(a);
  else {
    process.stderr.write(`usage: node delay-upstream.cjs [--port=N|N] [--delay-ms=1000] [--no-stdin]\n`);
    process.exit(2);
  }
}

const content = 'Invoice INV-2024-0117 from Northwind Traders totals 1,284.50 EUR including VAT at 19 percent.';
let served = 0;

function answer(res) {
  const body = JSON.stringify({
    id: `chatcmpl-delay${++served}`,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: 'gpt-4o-2024-08-06',
    choices: [{ index: 0, message: { role: 'assistant', content, refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 112, completion_tokens: 24, total_tokens: 136 },
  });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

const server = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || !req.url.endsWith('/chat/completions')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end('{"error":{"message":"not found","type":"invalid_request_error"}}');
      return;
    }
    const timer = setTimeout(() => answer(res), opt.delayMs);
    res.on('close', () => clearTimeout(timer));
  });
});
server.maxConnections = 1 << 20;
server.maxHeadersCount = 200;
server.keepAliveTimeout = 120000;  // idle keep-alive connections stay for the client's cache
server.headersTimeout = 130000;    // must exceed keepAliveTimeout
server.requestTimeout = 0;         // a held request is not ours to time out
server.maxRequestsPerSocket = 0;

const stop = () => {
  server.close();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (opt.stdin) {
  process.stdin.on('end', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

server.listen({ host: '127.0.0.1', port: opt.port, backlog: 20000 }, () => {
  process.stdout.write(`${server.address().port}\n`);
});
