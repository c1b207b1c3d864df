// The authToken option: phoenix.js sends the token in the
// Sec-WebSocket-Protocol header, as `base64url.bearer.phx.<token base64>`
// next to `phoenix`, instead of in the URL. plume hands it to the socket
// plugin as connect info, and UserSocket accepts it when there is no
// `token` param.

import assert from "node:assert/strict";
import { once } from "node:events";
import { test } from "node:test";

import WebSocket from "ws";

import { Wire, connect, joinOk, nextEvent, opened, push } from "./support/client.js";
import { startServer, token } from "./support/server.js";
import { TEST_MS, WAIT_MS, within } from "./support/wait.js";

/** The subprotocol phoenix.js makes of an authToken: btoa without padding. */
function bearer(authToken) {
  return `base64url.bearer.phx.${btoa(authToken).replace(/=/g, "")}`;
}

/**
 * A raw `ws` handshake to `server` offering `protocols`: resolves with the
 * open socket and the 101 response, or with the HTTP status of a refusal.
 */
function handshake(server, query, protocols) {
  const ws = new WebSocket(`ws://${server.addr}/socket/websocket?${query}`, protocols);
  const outcome = new Promise((resolve, reject) => {
    let upgrade;
    ws.once("upgrade", (response) => (upgrade = response));
    ws.once("open", () => resolve({ ws, status: 101, headers: upgrade.headers }));
    ws.once("unexpected-response", (request, response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (chunk) => (body += chunk));
      response.on("end", () => {
        request.destroy();
        resolve({ status: response.statusCode, body });
      });
    });
    ws.once("error", reject);
  });
  return within(outcome, WAIT_MS, `the handshake offering ${protocols}`);
}

/** Send a V2 frame on a raw socket and resolve with the next frame. */
async function exchange(ws, frame) {
  const next = once(ws, "message");
  ws.send(JSON.stringify(frame));
  const [data] = await within(next, WAIT_MS, `the answer to ${JSON.stringify(frame)}`);
  return JSON.parse(data.toString());
}

test("phoenix.js connects with the authToken option alone", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const wire = new Wire();
  const socket = connect(t, server, { authToken: await token(42), transport: wire.transport });
  await opened(socket);
  assert.deepEqual(wire.protocols, ["phoenix"], "the server chose the `phoenix` subprotocol");
  const room = socket.channel("room:lobby");
  await joinOk(room);
  const broadcast = nextEvent(room, "new_msg");
  assert.deepEqual(await push(room, "new_msg", { body: "hi" }), { status: "ok", response: {} });
  assert.deepEqual(await broadcast, { body: "hi", user_id: 42 }, "the socket's user is the token's");
});

test("phoenix.js with a refused authToken gets onError and onClose", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const socket = connect(t, server, { authToken: await token(42, "player"), reconnectAfterMs: () => 60_000 });
  let openedOnce = false;
  socket.onOpen(() => (openedOnce = true));
  const errored = new Promise((resolve) => socket.onError(resolve));
  const closing = new Promise((resolve) => socket.onClose(resolve));
  await within(Promise.all([errored, closing]), WAIT_MS, "onError and onClose");
  assert.equal(openedOnce, false);
});

test("a raw client offering the bearer subprotocol connects as the token's user", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const { ws, status, headers } = await handshake(server, "vsn=2.0.0", ["phoenix", bearer(await token(7))]);
  t.after(() => ws.terminate());
  assert.equal(status, 101);
  assert.equal(headers["sec-websocket-protocol"], "phoenix");
  assert.deepEqual(await exchange(ws, ["1", "1", "room:lobby", "phx_join", {}]), [
    "1",
    "1",
    "room:lobby",
    "phx_reply",
    { response: {}, status: "ok" },
  ]);
  assert.deepEqual(await exchange(ws, ["1", "2", "room:lobby", "new_msg", { body: "raw" }]), [
    null,
    null,
    "room:lobby",
    "new_msg",
    { body: "raw", user_id: 7 },
  ]);
});

test("a token param wins over the authToken", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const query = `token=${await token(1)}&vsn=2.0.0`;
  const { ws } = await handshake(server, query, ["phoenix", bearer(await token(2))]);
  t.after(() => ws.terminate());
  await exchange(ws, ["1", "1", "room:lobby", "phx_join", {}]);
  const [, , , , payload] = await exchange(ws, ["1", "2", "room:lobby", "new_msg", { body: "who" }]);
  assert.deepEqual(payload, { body: "who", user_id: 1 });
});

test("a refused authToken is HTTP 403, as a refused token param", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  for (const authToken of ["garbage", await token(42, "player")]) {
    const { status } = await handshake(server, "vsn=2.0.0", ["phoenix", bearer(authToken)]);
    assert.equal(status, 403, authToken);
  }
});

test("an authToken subprotocol that is not base64 is HTTP 400 with the reason", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const { status, body } = await handshake(server, "vsn=2.0.0", ["phoenix", "base64url.bearer.phx.%%%"]);
  assert.equal(status, 400);
  assert.match(body, /authToken/);
  // Nothing else harmed.
  const { ws } = await handshake(server, "vsn=2.0.0", ["phoenix", bearer(await token(42))]);
  ws.terminate();
});
