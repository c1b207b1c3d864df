// UserSocket's connect, as phoenix.js sees it: the token param decides.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, joinOk, opened, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, WAIT_MS, within } from "./support/wait.js";

/**
 * phoenix.js's view of a connection the server refuses: the socket's
 * onError fires and then onClose, never onOpen.
 */
async function refusal(t, server, params) {
  const events = [];
  const socket = connect(t, server, { params, reconnectAfterMs: () => 60_000 });
  socket.onOpen(() => events.push("open"));
  const errored = new Promise((resolve) => socket.onError(() => resolve(events.push("error"))));
  const closed = new Promise((resolve) =>
    socket.onClose((event) => resolve(events.push(`close ${event.code}`))),
  );
  await within(Promise.all([errored, closed]), WAIT_MS, "onError and onClose");
  assert.equal(socket.isConnected(), false);
  return events;
}

test("connect with a valid token param is accepted and a join works", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const socket = connect(t, server, { params: { token: await token(42) } });
  await opened(socket);
  const room = socket.channel("room:lobby", {});
  assert.deepEqual(await joinOk(room), {});
  assert.deepEqual(await push(room, "ping", { hello: "world" }), { status: "ok", response: { hello: "world" } });
});

test("connect with a params closure is accepted", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const userToken = await token(7);
  const socket = connect(t, server, { params: () => ({ token: userToken }) });
  await opened(socket);
  assert.deepEqual(await joinOk(socket.channel("room:lobby")), {});
});

test("connect with a refused token fires onError and onClose, never onOpen", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  for (const params of [{ token: "garbage" }, { token: await token(42, "player") }, {}]) {
    // phoenix.js sees the HTTP 403 as a failed WebSocket: 1006, abnormal close.
    assert.deepEqual(await refusal(t, server, params), ["error", "close 1006"], JSON.stringify(params));
  }
  // Refusals harm nobody: a good token still connects.
  const socket = connect(t, server, { params: { token: await token(42) } });
  await opened(socket);
});
