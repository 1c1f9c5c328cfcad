// SPDX-License-Identifier: MIT
// Node preload (node -r ./loopback-only.cjs app.js): every server the process
// starts listens on 127.0.0.1 only, whatever host (or none) the app asks for.
// tests/benchmarks/run uses it so the peer gateway, which binds every
// interface by default, is reachable from this machine alone.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (first !== null && typeof first === 'object' && !Array.isArray(first)) {
    // listen({port, host, ...}, cb) or listen(handle, cb): a handle/fd/path is left alone.
    if (first.path === undefined && first.fd === undefined && first._handle === undefined && first.handle === undefined)
      args[0] = { ...first, host: '127.0.0.1' };
  } else if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, cb]): replace or insert the host.
    if (typeof args[1] === 'string' || args[1] === undefined || args[1] === null) args[1] = '127.0.0.1';
    else args.splice(1, 0, '127.0.0.1');
  } else if (first === undefined || typeof first === 'function') {
    // listen() or listen(cb): an ephemeral port.
    args.splice(0, first === undefined ? 1 : 0, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
