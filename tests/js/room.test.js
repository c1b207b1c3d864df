// RoomChannel (topics `room:*`) through phoenix.js: join, push and reply,
// broadcasts, and a refused join.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, join, joinOk, nextEvent, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS } from "./support/wait.js";

async function userSocket(t, server, id) {
  return connect(t, server, { params: { token: await token(id) } });
}

test("join room:lobby, push ping and receive the payload as the reply", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const room = (await userSocket(t, server, 42)).channel("room:lobby");
  assert.deepEqual(await joinOk(room), {});
  assert.deepEqual(await push(room, "ping", { hello: "world", n: 1 }), {
    status: "ok",
    response: { hello: "world", n: 1 },
  });
  // Reply payloads need not be objects.
  assert.deepEqual(await push(room, "ping", [1, 2, 3]), { status: "ok", response: [1, 2, 3] });
});

test("new_msg is broadcast to both clients with the sender's user id", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const a = (await userSocket(t, server, 1)).channel("room:lobby");
  const b = (await userSocket(t, server, 2)).channel("room:lobby");
  await joinOk(a);
  await joinOk(b);
  const atA = nextEvent(a, "new_msg");
  const atB = nextEvent(b, "new_msg");
  assert.deepEqual(await push(a, "new_msg", { body: "hello" }), { status: "ok", response: {} });
  assert.deepEqual(await atA, { body: "hello", user_id: 1 });
  assert.deepEqual(await atB, { body: "hello", user_id: 1 });
});

test("new_msg without a string body replies an error", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const room = (await userSocket(t, server, 1)).channel("room:lobby");
  await joinOk(room);
  assert.deepEqual(await push(room, "new_msg", { body: 5 }), {
    status: "error",
    response: { reason: "invalid message" },
  });
});

test("join room:private is refused with reason unauthorized", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const socket = await userSocket(t, server, 42);
  const privateRoom = socket.channel("room:private");
  assert.deepEqual(await join(privateRoom), { status: "error", response: { reason: "unauthorized" } });
  // The socket is unharmed: another room joins.
  assert.deepEqual(await joinOk(socket.channel("room:other")), {});
});
