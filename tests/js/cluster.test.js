// Two plume nodes over one Redis, with phoenix.js clients on different
// nodes: broadcasts and Presence behave as on one server.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Presence } from "phoenix";

import { connect, joinOk } from "./support/client.js";
import { startRedis } from "./support/redis.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, until } from "./support/wait.js";

async function startNodes(t, count) {
  const redisUrl = await startRedis(t);
  const nodes = [];
  for (let i = 0; i < count; i++) {
    nodes.push(await startServer(t, { env: { PLUME_REDIS_URL: redisUrl } }));
  }
  return nodes;
}

async function openTab(t, server, topic, id) {
  const userToken = await token(id);
  const socket = connect(t, server, { params: { token: userToken } });
  const channel = socket.channel(topic, { token: userToken });
  const presence = new Presence(channel);
  const tab = { channel, presence };
  assert.deepEqual(await joinOk(channel), {});
  return tab;
}

function online(tab) {
  return Object.fromEntries(tab.presence.list((key, { metas }) => [key, metas.length]));
}

test("Presence lists agree for clients on different nodes", { timeout: TEST_MS }, async (t) => {
  const [one, two] = await startNodes(t, 2);
  const ann = await openTab(t, one, "chat:nodes", 1);
  const bob = await openTab(t, two, "chat:nodes", 2);
  const annAgain = await openTab(t, two, "chat:nodes", 1);
  const everyone = JSON.stringify({ 1: 2, 2: 1 });
  for (const tab of [ann, bob, annAgain]) {
    await until(() => JSON.stringify(online(tab)) === everyone, () => `both users online, got ${JSON.stringify(online(tab))}`);
  }
  // Bob leaves on node 2; Ann's list on node 1 follows.
  await new Promise((resolve) => bob.channel.leave().receive("ok", resolve));
  const withoutBob = JSON.stringify({ 1: 2 });
  await until(() => JSON.stringify(online(ann)) === withoutBob, () => `bob gone, got ${JSON.stringify(online(ann))}`);
});

test("a broadcast from one node reaches a client on the other", { timeout: TEST_MS }, async (t) => {
  const [one, two] = await startNodes(t, 2);
  const tokens = await Promise.all([token(10), token(11)]);
  const a = connect(t, one, { params: { token: tokens[0] } }).channel("room:nodes", {});
  const b = connect(t, two, { params: { token: tokens[1] } }).channel("room:nodes", {});
  await joinOk(a);
  await joinOk(b);
  const received = [];
  b.on("new_msg", (msg) => received.push(msg));
  await new Promise((resolve) => a.push("new_msg", { body: "across" }).receive("ok", resolve));
  await until(() => received.length === 1, "the broadcast on the other node");
  assert.deepEqual(received, [{ body: "across", user_id: 10 }]);
});
