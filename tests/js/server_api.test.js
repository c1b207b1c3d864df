// The app's backend publishing through the server API, received by
// phoenix.js: Phoenix's `notify_milestone_reached/2` (an
// `Endpoint.broadcast` to `donations:lobby`) done over HTTP.

import assert from "node:assert/strict";
import { test } from "node:test";

import { connect, joinOk, nextEvent } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS } from "./support/wait.js";

const KEY = "backend-key-0123456789abcdef";

const CONFIG = `
[app]
socket_plugin = "user_socket"
api_keys = ["${KEY}"]

[plugins.user_socket]
path = "{plugins}/user_socket.wasm"

[plugins.donations]
path = "{plugins}/donations.wasm"

[[routes]]
topic = "donations:*"
plugin = "donations"
`;

test("milestone_reached published by the backend reaches a phoenix.js client on donations:lobby", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t, { config: CONFIG });
  const socket = connect(t, server, { params: { token: await token(7) } });
  const lobby = socket.channel("donations:lobby");
  await joinOk(lobby);
  const milestone = nextEvent(lobby, "milestone_reached");

  const response = await fetch(`http://${server.addr}/api/broadcast`, {
    method: "POST",
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    body: JSON.stringify({
      topic: "donations:lobby",
      event: "milestone_reached",
      payload: { campaign_id: 3, milestone: "50%", total: "500.00" },
    }),
  });
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { accepted: 1 });
  assert.deepEqual(await milestone, { campaign_id: 3, milestone: "50%", total: "500.00" });
});

test("the server API refuses a request without the key", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t, { config: CONFIG });
  const response = await fetch(`http://${server.addr}/api/broadcast`, {
    method: "POST",
    body: JSON.stringify({ topic: "donations:lobby", event: "milestone_reached", payload: {} }),
  });
  assert.equal(response.status, 401);
  assert.match((await response.json()).error, /Authorization: Bearer/);
});
