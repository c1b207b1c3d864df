// phoenix.js's long-poll fallback in a real browser. One page reaches plume
// through a proxy that refuses WebSocket upgrades: its socket's WebSocket
// fails, phoenix.js falls back to long-poll by itself (`longPollFallbackMs`)
// and the page chats both ways with a page on WebSocket.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatPage, PLUME_URL, TEST_MS, launchBrowser } from "./support/chat_page.mjs";
import { startProxyWithoutWebSocket } from "./support/proxy.mjs";

test("a page without WebSocket falls back to long-poll and chats with a WebSocket page", { timeout: TEST_MS }, async (t) => {
  const browser = await launchBrowser(t);
  const proxy = await startProxyWithoutWebSocket(t, PLUME_URL);
  const lin = await ChatPage.open(t, browser, "Lin", { url: proxy.url });
  const wes = await ChatPage.open(t, browser, "Wes");

  // Lin's page tried WebSocket, was refused, and polls; Wes is on WebSocket.
  assert.equal(await lin.transport(), "longpoll");
  assert.equal(await wes.transport(), "websocket");
  assert.ok(
    proxy.refused.some((path) => path.startsWith("/socket/websocket?")),
    `Lin's page tried a WebSocket first; the proxy refused ${JSON.stringify(proxy.refused)}`,
  );
  assert.ok(
    lin.requests.includes("/socket/longpoll"),
    `Lin's page polls /socket/longpoll; it requested ${JSON.stringify(lin.requests)}`,
  );
  await lin.sees("#status", "Lin's status naming long-poll", { text: "long-poll" });

  await lin.seesOnline("Wes");
  await wes.seesOnline("Lin");

  // Long-poll to WebSocket: typing, then the message.
  await lin.type("Polling works");
  await wes.seesTyping("Lin is typing…");
  await lin.send();
  await wes.seesMessage("Lin", "Polling works");
  await wes.seesTyping("");

  // WebSocket to long-poll.
  await wes.type("So does WebSocket");
  await lin.seesTyping("Wes is typing…");
  await wes.send();
  await lin.seesMessage("Wes", "So does WebSocket");
  await lin.seesTyping("");

  // Both pages hold the same conversation, in the same order.
  const conversation = (chat) => chat.page.locator("#messages .content").allInnerTexts();
  assert.deepEqual(await conversation(lin), ["Polling works", "So does WebSocket"]);
  assert.deepEqual(await conversation(wes), ["Polling works", "So does WebSocket"]);

  await lin.screenshot("demo-page-long-poll.png");

  // Lin leaves the room (phx_leave over long-poll): Wes sees her go.
  await lin.page.getByRole("button", { name: "Change name" }).click();
  await wes.sees("#online li", "Lin gone from Wes's online list", { text: "Lin", gone: true });

  assert.deepEqual(lin.errors, [], "Lin's page threw");
  assert.deepEqual(wes.errors, [], "Wes's page threw");
});
