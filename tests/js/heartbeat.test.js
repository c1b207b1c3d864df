// Heartbeats: phoenix.js sends `heartbeat` on topic `phoenix` every
// heartbeatIntervalMs and expects a reply before the next one, or it
// drops the connection. plume answers like Phoenix, and a socket that
// heartbeats outlives the server's idle timeout while a silent one does not.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Wire, closed, connect, joinOk, opened, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, WAIT_MS, sleep, until, within } from "./support/wait.js";

/** The demo's room channel behind a server that closes silent sockets fast. */
const IDLE_CONFIG = `
[limits]
idle_timeout_ms = 800

[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[[routes]]
topic = "room:*"
plugin = "room"
`;

test("heartbeats are answered with an ok phx_reply carrying their ref", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const wire = new Wire();
  const socket = connect(t, server, {
    params: { token: await token(42) },
    transport: wire.transport,
    heartbeatIntervalMs: 50,
  });
  const replies = [];
  socket.onMessage((msg) => msg.topic === "phoenix" && replies.push(msg));
  await until(() => replies.length >= 3, "three heartbeat replies");
  for (const msg of replies) {
    assert.deepEqual({ ...msg, ref: typeof msg.ref }, {
      join_ref: null,
      ref: "string",
      topic: "phoenix",
      event: "phx_reply",
      payload: { response: {}, status: "ok" },
    });
  }
  const heartbeats = wire.sent.filter((frame) => JSON.parse(frame)[3] === "heartbeat");
  const [, ref] = JSON.parse(heartbeats[0]);
  assert.equal(heartbeats[0], JSON.stringify([null, ref, "phoenix", "heartbeat", {}]));
  assert.ok(
    wire.received.includes(JSON.stringify([null, ref, "phoenix", "phx_reply", { response: {}, status: "ok" }])),
    `the reply, byte for byte as Phoenix sends it:\n${wire.received.join("\n")}`,
  );
  // Answered heartbeats keep phoenix.js connected: it never timed one out.
  assert.equal(socket.isConnected(), true);
});

test("socket.ping measures a round trip through a heartbeat", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const socket = connect(t, server, { params: { token: await token(42) } });
  await opened(socket);
  const rtt = await within(new Promise((resolve) => socket.ping(resolve)), WAIT_MS, "the ping's reply");
  assert.ok(rtt >= 0 && rtt < WAIT_MS, `rtt ${rtt} ms`);
});

test("a socket that heartbeats outlives the idle timeout; a silent one is closed", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t, { config: IDLE_CONFIG });
  const userToken = await token(42);
  const beating = connect(t, server, { params: { token: userToken }, heartbeatIntervalMs: 100 });
  const silent = connect(t, server, {
    params: { token: userToken },
    heartbeatIntervalMs: 60_000,
    reconnectAfterMs: () => 60_000,
  });
  await Promise.all([opened(beating), opened(silent)]);
  const silentClosed = closed(silent, "the idle socket to be closed", 5_000);
  const room = beating.channel("room:lobby");
  await joinOk(room);
  // 1002, as Bandit (Phoenix's default adapter) closes an idle WebSocket.
  assert.equal((await silentClosed).code, 1002);
  await sleep(1_200);
  assert.equal(beating.isConnected(), true);
  assert.deepEqual(await push(room, "ping", {}), { status: "ok", response: {} });
});
