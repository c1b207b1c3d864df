// V2 binary frames from phoenix.js: an ArrayBuffer payload goes out as a
// binary frame, and binary replies, pushes and broadcasts come back as
// ArrayBuffers.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, joinOk, nextEvent, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS } from "./support/wait.js";

/** The demo's room channel plus the test-only probe plugin. */
const PROBE_CONFIG = `
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[plugins.probe]
path = "{plugins}/probe.wasm"

[[routes]]
topic = "room:*"
plugin = "room"

[[routes]]
topic = "probe:*"
plugin = "probe"
`;

const bytes = (view) => [...new Uint8Array(view)];

test("an ArrayBuffer ping on room:lobby is answered with the same bytes", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const room = connect(t, server, { params: { token: await token(1) } }).channel("room:lobby");
  await joinOk(room);
  const sent = new Uint8Array([0, 1, 2, 253, 254, 255]).buffer;
  const { status, response } = await push(room, "ping", sent);
  assert.equal(status, "ok");
  assert.ok(response instanceof ArrayBuffer, `an ArrayBuffer reply, got ${response}`);
  assert.deepEqual(bytes(response), [0, 1, 2, 253, 254, 255]);
  // JSON goes on working on the same channel.
  assert.deepEqual(await push(room, "ping", { n: 1 }), { status: "ok", response: { n: 1 } });
});

test("binary broadcasts and pushes arrive as ArrayBuffers", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t, { config: PROBE_CONFIG });
  const a = connect(t, server, { params: { token: await token(1) } }).channel("probe:bin");
  const b = connect(t, server, { params: { token: await token(2) } }).channel("probe:bin");
  await joinOk(a);
  await joinOk(b);

  const plain = nextEvent(b, "blob");
  assert.equal((await push(a, "binary_broadcast", new Uint8Array([7, 8, 9]).buffer)).status, "ok");
  assert.deepEqual(bytes(await plain), [7, 8, 9]);

  // `reversed` is intercepted: each subscriber's handle-out rewrites it.
  const reversed = nextEvent(b, "reversed");
  await push(a, "binary_broadcast_reversed", new Uint8Array([1, 2, 3]).buffer);
  assert.deepEqual(bytes(await reversed), [3, 2, 1]);

  const own = nextEvent(a, "blob");
  await push(a, "binary_push", new Uint8Array([42]).buffer);
  assert.deepEqual(bytes(await own), [42]);

  const info = await push(a, "binary_info", new Uint8Array(1000).buffer);
  assert.deepEqual(info, { status: "ok", response: { binary: true, bytes: 1000 } });
});
