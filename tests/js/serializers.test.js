// The serializers phoenix.js can speak: vsn 2.0.0 (its default, arrays)
// and vsn 1.0.0 (objects, with the client's own encode/decode), over the
// same channels.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Wire, connect, joinOk, nextEvent, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, until } from "./support/wait.js";

/** The V1 JSON serializer, as Phoenix clients before 1.3 spoke it. */
const V1 = {
  vsn: "1.0.0",
  encode: ({ join_ref, ref, topic, event, payload }, callback) =>
    callback(JSON.stringify({ topic, event, payload, ref, join_ref })),
  decode: (raw, callback) => callback(JSON.parse(raw)),
};

/** Join room:lobby, ping, and see a new_msg broadcast from another client. */
async function exercise(t, server, options) {
  const wire = new Wire();
  const socket = connect(t, server, {
    params: { token: await token(1) },
    transport: wire.transport,
    heartbeatIntervalMs: 50,
    ...options,
  });
  const room = socket.channel("room:lobby");
  const sender = connect(t, server, { params: { token: await token(2) } }).channel("room:lobby");
  let heartbeats = 0;
  socket.onMessage(({ topic, event }) => topic === "phoenix" && event === "phx_reply" && heartbeats++);
  assert.deepEqual(await joinOk(room), {});
  await joinOk(sender);
  assert.deepEqual(await push(room, "ping", { n: 1 }), { status: "ok", response: { n: 1 } });
  assert.deepEqual(await push(room, "new_msg", {}), { status: "error", response: { reason: "invalid message" } });
  const broadcast = nextEvent(room, "new_msg");
  await push(sender, "new_msg", { body: "hi" });
  assert.deepEqual(await broadcast, { body: "hi", user_id: 2 });
  await until(() => heartbeats > 0, "a heartbeat reply");
  return { wire, joinRef: room.joinRef() };
}

test("vsn 2.0.0 (phoenix.js's default): array frames", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const { wire, joinRef } = await exercise(t, server, {});
  assert.match(wire.sent[0], /^\[/);
  for (const frame of [
    [joinRef, joinRef, "room:lobby", "phx_reply", { response: {}, status: "ok" }],
    [null, null, "room:lobby", "new_msg", { body: "hi", user_id: 2 }],
  ]) {
    const text = JSON.stringify(frame);
    assert.ok(wire.received.includes(text), `${text} in\n${wire.received.join("\n")}`);
  }
});

test("vsn 1.0.0 with phoenix.js's encode/decode options: object frames", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const { wire, joinRef } = await exercise(t, server, V1);
  assert.ok(wire.sent.every((frame) => frame.startsWith("{")));
  // Keys come sorted, as Phoenix encodes its small maps. Phoenix 1.7's V1
  // serializer sends only event, payload, ref and topic; plume adds
  // join_ref, which phoenix.js reads as it does in V2 (its own join ref, or
  // null), so both work with it.
  for (const frame of wire.received) {
    const keys = Object.keys(JSON.parse(frame)).filter((key) => key !== "join_ref");
    assert.deepEqual(keys, ["event", "payload", "ref", "topic"], frame);
  }
  const received = wire.receivedJson().map(({ join_ref, ...fields }) => fields);
  assert.deepEqual(
    received.find(({ event, ref }) => event === "phx_reply" && ref === joinRef),
    { event: "phx_reply", payload: { response: {}, status: "ok" }, ref: joinRef, topic: "room:lobby" },
  );
  assert.deepEqual(
    received.find(({ event }) => event === "new_msg"),
    { event: "new_msg", payload: { body: "hi", user_id: 2 }, ref: null, topic: "room:lobby" },
  );
  const heartbeat = received.find(({ topic }) => topic === "phoenix");
  assert.deepEqual({ ...heartbeat, ref: typeof heartbeat.ref }, {
    event: "phx_reply",
    payload: { response: {}, status: "ok" },
    ref: "string",
    topic: "phoenix",
  });
});
