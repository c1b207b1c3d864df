// Nothing missed across a reconnect: a phoenix.js client behind a proxy
// that cuts its connection while 50 messages are broadcast comes back,
// rejoins through the plume-recovery helper (clients/js), and gets all 50,
// once, in order, then live traffic.

import assert from "node:assert/strict";
import { createConnection, createServer } from "node:net";
import { test } from "node:test";

import { recoverable } from "../../clients/js/plume-recovery.js";
import { QUICK_RETRY, connect, joinOk, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, until } from "./support/wait.js";

const CONFIG = `
[app]
socket_plugin = "user_socket"

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.room]
path = "{plugins}/room.wasm"

[[routes]]
topic = "room:short"
plugin = "room"
history = { size = 5, ttl_s = 600 }

[[routes]]
topic = "room:*"
plugin = "room"
history = { size = 100, ttl_s = 600 }
`;

/**
 * A TCP proxy in front of `target` (`host:port`) that can cut every
 * connection through it and refuse new ones until restored: a tunnel.
 */
async function startProxy(t, target) {
  const [host, port] = target.split(":");
  const open = new Set();
  let down = false;
  const server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = createConnection({ host, port: Number(port) });
    open.add(client).add(upstream);
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      open.delete(client);
      open.delete(upstream);
    };
    client.on("error", drop).on("close", drop);
    upstream.on("error", drop).on("close", drop);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => {
    for (const socket of open) socket.destroy();
    server.close();
  });
  return {
    url: `ws://127.0.0.1:${server.address().port}/socket`,
    cut() {
      down = true;
      for (const socket of open) socket.destroy();
      open.clear();
    },
    restore() {
      down = false;
    },
  };
}

/** A recoverable channel on `topic` through `url`, recording what it gets. */
async function subscriber(t, url, topic, id) {
  const socket = connect(t, { socketUrl: url }, { params: { token: await token(id) }, ...QUICK_RETRY });
  const seen = { bodies: [], recoveries: [] };
  const channel = recoverable(socket, topic, {}, { onRecovery: (info) => seen.recoveries.push(info) });
  channel.on("new_msg", ({ body }) => seen.bodies.push(body));
  await joinOk(channel);
  return { socket, channel, seen };
}

async function publisher(t, server, topic) {
  const socket = connect(t, server, { params: { token: await token(99) } });
  const channel = socket.channel(topic, {});
  await joinOk(channel);
  return async (body) => {
    const { status } = await push(channel, "new_msg", { body });
    assert.equal(status, "ok");
  };
}

test("a client cut off while 50 messages are broadcast gets all 50 once, in order, then live traffic", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t, { config: CONFIG });
  const proxy = await startProxy(t, server.addr);
  const phone = await subscriber(t, proxy.url, "room:tunnel", 1);
  const send = await publisher(t, server, "room:tunnel");

  await send("before");
  await until(() => phone.seen.bodies.length === 1, "the first message");
  assert.match(phone.channel.position(), /^[0-9a-f]{16}:1$/);

  proxy.cut();
  const missed = Array.from({ length: 50 }, (_, i) => `missed ${i}`);
  for (const body of missed) {
    await send(body);
  }
  proxy.restore();
  await until(() => phone.seen.recoveries.length === 1, () => `a recovery after the reconnect, got ${phone.seen.bodies.length} messages`);
  assert.deepEqual(phone.seen.recoveries[0], { recovered: true, count: 50, position: phone.channel.position() });
  assert.match(phone.channel.position(), /:51$/);

  await send("live");
  await until(() => phone.seen.bodies.includes("live"), "live traffic after the recovery");
  assert.deepEqual(phone.seen.bodies, ["before", ...missed, "live"]);
});

test("a gap longer than the history is reported, not replayed in part", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t, { config: CONFIG });
  const proxy = await startProxy(t, server.addr);
  const phone = await subscriber(t, proxy.url, "room:short", 1);
  const send = await publisher(t, server, "room:short");
  await send("before");
  await until(() => phone.seen.bodies.length === 1, "the first message");
  proxy.cut();
  for (let i = 0; i < 8; i++) {
    await send(`missed ${i}`);
  }
  proxy.restore();
  await until(() => phone.seen.recoveries.length === 1, "a recovery after the reconnect");
  assert.equal(phone.seen.recoveries[0].recovered, false);
  assert.equal(phone.seen.recoveries[0].count, 0);
  assert.deepEqual(phone.seen.bodies, ["before"], "nothing replayed");
  assert.match(phone.channel.position(), /:9$/, "it goes on from the newest position");
  await send("live");
  await until(() => phone.seen.bodies.includes("live"), "live traffic");
});
