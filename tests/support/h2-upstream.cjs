// SPDX-License-Identifier: MIT
// An HTTP/2 upstream over TLS (ALPN h2 only, as providers offer it) for the
// event loop's multiplexing test: answers POST .../chat/completions with an
// OpenAI chat.completion after --delay-ms, and GET /stats with the HTTP/2
// sessions (connections) and request streams it has seen. Its certificate is
// tests/data/h2-test-cert.pem (self-signed for 127.0.0.1, test use only). Binds
// 127.0.0.1 only, prints its port and pid as the first line on stdout, and exits
// on GET /quit. Plain node.
'use strict';
const fs = require('fs');
const http2 = require('http2');
const path = require('path');

let delayMs = 100;
for (const a of process.argv.slice(2)) {
  const m = /^--delay-ms=(\d+)$/.exec(a);
  if (m) delayMs = Number(m[1]);
}

let sessions = 0;
let streams = 0;
let open = 0;
let mostOpen = 0;
const data = path.join(__dirname, '..', 'data');
const server = http2.createSecureServer({
  key: fs.readFileSync(path.join(data, 'h2-test-key.pem')),
  cert: fs.readFileSync(path.join(data, 'h2-test-cert.pem')),
  allowHTTP1: false,
});
server.on('session', () => { sessions += 1; });
server.on('stream', (stream, headers) => {
  const where = headers[':path'] || '';
  if (where === '/stats') {
    stream.respond({ ':status': 200, 'content-type': 'application/json' });
    stream.end(JSON.stringify({ sessions, streams, most_open: mostOpen }));
    return;
  }
  if (where === '/quit') {
    stream.respond({ ':status': 200 });
    stream.end('bye', () => process.exit(0));
    return;
  }
  streams += 1;
  open += 1;
  mostOpen = Math.max(mostOpen, open);
  stream.on('data', () => {});
  stream.on('end', () => {
    setTimeout(() => {
      open -= 1;
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({
        id: `chatcmpl-h2${streams}`,
        object: 'chat.completion',
        created: 0,
        model: 'gpt-4o',
        choices: [{ index: 0, message: { role: 'assistant', content: 'over h2' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 },
      }));
    }, delayMs);
  });
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${server.address().port} ${process.pid}\n`);
});
