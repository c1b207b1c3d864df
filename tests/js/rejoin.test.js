// phoenix.js recovers by itself: it rejoins a channel that crashed
// (phx_error), and reconnects and rejoins when the server restarts (the
// socket closed with 1012).

import assert from "node:assert/strict";
import { test } from "node:test";

import { QUICK_RETRY, Wire, closed, connect, joinOk, opened, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, WAIT_MS, until, within } from "./support/wait.js";

/**
 * Joins `channel` and counts its successful joins from then on, the first
 * and every rejoin: phoenix.js calls a join's `receive("ok")` hooks on each.
 */
async function joinCounted(channel) {
  const joins = { count: 0 };
  const joined = joinOk(channel);
  // `joinPush` is the push `channel.join()` returned.
  channel.joinPush.receive("ok", () => joins.count++);
  await joined;
  return joins;
}

test("a crashed channel gets phx_error and phoenix.js rejoins it by itself", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const wire = new Wire();
  const socket = connect(t, server, { params: { token: await token(42) }, transport: wire.transport, ...QUICK_RETRY });
  const room = socket.channel("room:lobby");
  const other = socket.channel("room:other");
  const joins = await joinCounted(room);
  await joinOk(other);
  const firstJoinRef = room.joinRef();
  const errored = within(new Promise((resolve) => room.onError(resolve)), WAIT_MS, "phx_error on room:lobby");

  // No reply comes; a short push timeout lets the test end promptly.
  room.push("crash", {}, 500);
  await errored;
  assert.ok(
    wire.received.includes(JSON.stringify([firstJoinRef, firstJoinRef, "room:lobby", "phx_error", {}])),
    `phx_error carries the join ref twice:\n${wire.received.join("\n")}`,
  );
  await until(() => joins.count === 2 && room.joinRef() !== firstJoinRef, "phoenix.js to rejoin room:lobby");
  assert.deepEqual(await push(room, "ping", { after: "crash" }), { status: "ok", response: { after: "crash" } });
  // The socket and its other channel lived on.
  assert.equal(socket.isConnected(), true);
  assert.deepEqual(await push(other, "ping", "still here"), { status: "ok", response: "still here" });
});

test("after a server restart phoenix.js reconnects and rejoins by itself", { timeout: TEST_MS }, async (t) => {
  const first = await startServer(t);
  const socket = connect(t, first, { params: { token: await token(42) }, ...QUICK_RETRY });
  const room = socket.channel("room:lobby");
  const joins = await joinCounted(room);
  const closing = closed(socket, "the socket to close on SIGTERM");

  const exit = await first.terminate();
  assert.equal(exit.code, 0, `plume exits cleanly on SIGTERM (${JSON.stringify(exit)})`);
  assert.equal((await closing).code, 1012, "the server closes sockets with 1012 (service restart)");

  const reconnected = opened(socket, "phoenix.js to reconnect");
  await startServer(t, { bind: first.addr });
  await reconnected;
  await until(() => joins.count === 2, "phoenix.js to rejoin room:lobby");
  assert.deepEqual(await push(room, "ping", { after: "restart" }), { status: "ok", response: { after: "restart" } });
});
