// Two people on the demo page, each in their own headless Chromium page
// over WebSocket: each sees who is online, who is typing, and what the
// other says; a page that closes leaves the other's online list.

import assert from "node:assert/strict";
import { test } from "node:test";

import { ChatPage, TEST_MS, launchBrowser } from "./support/chat_page.mjs";

test("two pages see each other's messages, presence and typing", { timeout: TEST_MS }, async (t) => {
  const browser = await launchBrowser(t);
  const ada = await ChatPage.open(t, browser, "Ada");
  const bob = await ChatPage.open(t, browser, "Bob");
  assert.equal(await ada.transport(), "websocket");
  assert.equal(await bob.transport(), "websocket");

  // Who is online: both, on both pages, each marked "you" on their own.
  await ada.seesOnline("Bob");
  await bob.seesOnline("Ada");
  await ada.sees("#online li.me", "Ada marked as herself", { text: "Ada" });
  await bob.sees("#online-count:text-is('2')", "two people online on Bob's page");

  // Typing shows on the other page only, and stops when the message goes.
  await ada.type("Hello Bob");
  await bob.seesTyping("Ada is typing…");
  await ada.seesTyping("");
  await ada.send();
  await bob.seesMessage("Ada", "Hello Bob");
  await bob.seesTyping("");
  await ada.sees("#messages li.mine", "Ada's own message marked as hers", { text: "Hello Bob" });
  await ada.until(() => document.getElementById("message").value === "", null, "Ada's message box to empty");

  await bob.type("Hi Ada, welcome to plume");
  await ada.seesTyping("Bob is typing…");
  await bob.send();
  await ada.seesMessage("Bob", "Hi Ada, welcome to plume");
  await ada.seesTyping("");

  // The screenshots: Ada is writing again, and Bob's page says so.
  await ada.type("Shall we try long-poll next?");
  await bob.seesTyping("Ada is typing…");
  await ada.screenshot("demo-page-ada.png");
  await bob.screenshot("demo-page-bob.png");

  // Bob's page closes: Ada's list drops him.
  await bob.context.close();
  await ada.sees("#online li", "Bob gone from Ada's online list", { text: "Bob", gone: true });
  await ada.sees("#online-count:text-is('1')", "one person online on Ada's page");

  assert.deepEqual(ada.errors, [], "Ada's page threw");
  assert.deepEqual(bob.errors, [], "Bob's page threw");
});
