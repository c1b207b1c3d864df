// ChatChannel presence (topics `chat:*`) through phoenix.js's own
// `Presence` class: presence_state and presence_diff, in either order,
// must sync into the list every client shows.

import assert from "node:assert/strict";
import { test } from "node:test";

import { Presence } from "phoenix";

import { connect, joinOk } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, until } from "./support/wait.js";

/**
 * A tab of user `id` in chat room `topic`: its socket, its channel joined
 * with the user's `{token}`, and a `Presence` recording onJoin and onLeave.
 */
async function openTab(t, server, topic, id) {
  const userToken = await token(id);
  const socket = connect(t, server, { params: { token: userToken } });
  const channel = socket.channel(topic, { token: userToken });
  const presence = new Presence(channel);
  const tab = { socket, channel, presence, joins: [], leaves: [] };
  presence.onJoin((key, current, joined) => tab.joins.push({ key, current, joined }));
  presence.onLeave((key, current, left) => tab.leaves.push({ key, current, left }));
  assert.deepEqual(await joinOk(channel), {});
  return tab;
}

/** `{key: number of metas}` of a tab's presence list. */
function online(tab) {
  return Object.fromEntries(tab.presence.list((key, { metas }) => [key, metas.length]));
}

/** The metas under `key` in a tab's presence list. */
function metasOf(tab, key) {
  return tab.presence.list((k, { metas }) => k === key && metas).find(Boolean) || [];
}

function sameOnline(tab, expected) {
  return JSON.stringify(online(tab)) === JSON.stringify(expected);
}

test("three users see each other in the presence list", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const before = Math.floor(Date.now() / 1000);
  const tabs = [];
  for (const id of [1, 2, 3]) {
    tabs.push(await openTab(t, server, "chat:three", id));
  }
  const everyone = { 1: 1, 2: 1, 3: 1 };
  for (const tab of tabs) {
    await until(() => sameOnline(tab, everyone), () => `three users online, got ${JSON.stringify(online(tab))}`);
  }
  const [meta] = metasOf(tabs[0], "2");
  assert.equal(meta.name, "user-2");
  assert.equal(typeof meta.phx_ref, "string");
  assert.ok(meta.online_at >= before && meta.online_at <= Date.now() / 1000 + 1, `online_at ${meta.online_at}`);
  // The first tab saw each user arrive once as a new key. (phoenix.js also
  // fires onJoin for a key it already has: the joiner's own presence_diff
  // repeats what presence_state said, whichever comes first.)
  assert.deepEqual(
    tabs[0].joins
      .filter(({ current }) => current === undefined)
      .map(({ key }) => key)
      .sort(),
    ["1", "2", "3"],
  );
});

test("two tabs of one user are two metas under one key", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const observer = await openTab(t, server, "chat:tabs", 7);
  const first = await openTab(t, server, "chat:tabs", 42);
  await until(() => sameOnline(observer, { 7: 1, 42: 1 }), "user 42's first tab");
  const second = await openTab(t, server, "chat:tabs", 42);
  for (const tab of [observer, first, second]) {
    await until(() => sameOnline(tab, { 7: 1, 42: 2 }), () => `two metas under 42, got ${JSON.stringify(online(tab))}`);
  }
  const refs = metasOf(observer, "42").map((meta) => meta.phx_ref);
  assert.equal(new Set(refs).size, 2, "each tab has its own phx_ref");
  // The second tab's arrival is an onJoin for a key already present.
  const secondJoin = observer.joins.filter(({ key }) => key === "42").at(-1);
  assert.equal(secondJoin.current.metas.length, 1);
  assert.equal(secondJoin.joined.metas.length, 1);
});

test("a leave fires onLeave and updates the list", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const observer = await openTab(t, server, "chat:leave", 1);
  const stayer = await openTab(t, server, "chat:leave", 2);
  await until(() => sameOnline(observer, { 1: 1, 2: 1 }), "user 2's first tab");
  const stayerRefs = metasOf(observer, "2").map((meta) => meta.phx_ref);
  const second = await openTab(t, server, "chat:leave", 2);
  const leaver = await openTab(t, server, "chat:leave", 3);
  await until(() => sameOnline(observer, { 1: 1, 2: 2, 3: 1 }), "everyone online");
  const [leftRef] = metasOf(observer, "2")
    .map((meta) => meta.phx_ref)
    .filter((ref) => !stayerRefs.includes(ref));

  // One of user 2's tabs leaves: the key stays with the other meta.
  second.channel.leave();
  await until(() => sameOnline(observer, { 1: 1, 2: 1, 3: 1 }), "user 2 down to one tab");
  const tabLeft = observer.leaves.find(({ key }) => key === "2");
  assert.deepEqual(
    tabLeft.left.metas.map((m) => m.phx_ref),
    [leftRef],
  );
  assert.equal(tabLeft.current.metas.length, 1, "user 2 still has a tab");

  // User 3 disconnects: the key goes.
  leaver.socket.disconnect();
  for (const tab of [observer, stayer]) {
    await until(() => sameOnline(tab, { 1: 1, 2: 1 }), () => `user 3 gone, got ${JSON.stringify(online(tab))}`);
  }
  const userLeft = observer.leaves.find(({ key }) => key === "3");
  assert.equal(userLeft.current.metas.length, 0);
  assert.equal(userLeft.left.metas[0].name, "user-3");
});
