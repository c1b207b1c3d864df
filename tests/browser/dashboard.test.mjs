// The operator's dashboard (`/dashboard` on the admin listener) in a real
// browser: it asks for the admin token, its figures move when people join
// the demo chat and write, and a broken plugin file shows as that plugin's
// load error. Run by `cargo test --release -p plume --test browser`, which
// sets ADMIN_URL, ADMIN_TOKEN and BROKEN_PLUGIN (the room plugin's file).

import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import path from "node:path";
import { test } from "node:test";

import { ChatPage, TEST_MS, WAIT_MS, launchBrowser } from "./support/chat_page.mjs";

function fromEnv(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this through \`cargo test --release -p plume --test browser\``);
  return value;
}

const ADMIN_URL = fromEnv("ADMIN_URL");
const ADMIN_TOKEN = fromEnv("ADMIN_TOKEN");
const BROKEN_PLUGIN = fromEnv("BROKEN_PLUGIN");
const ARTIFACTS_DIR = fromEnv("ARTIFACTS_DIR");

/** The number a `[data-figure]` of the demo tenant shows. */
async function figure(page, name) {
  const text = await page.locator(`[data-tenant=demo] [data-figure=${name}]`).innerText();
  return Number(text.replace(/[^0-9]/g, ""));
}

/** Waits until `predicate` (run in the page) holds; a timeout names `what`. */
async function until(page, predicate, arg, what) {
  try {
    await page.waitForFunction(predicate, arg, { timeout: WAIT_MS });
  } catch (error) {
    const shown = await page.locator("main").innerText().catch(() => "?");
    throw new Error(`${what}: ${error.message.split("\n")[0]}\nthe dashboard shows:\n${shown}`);
  }
}

const figureOf = ([name, above]) => {
  const node = document.querySelector(`[data-tenant=demo] [data-figure=${name}]`);
  return node !== null && Number(node.textContent.replace(/[^0-9]/g, "")) > above;
};

test("the dashboard asks for its token, shows clients arrive and push, and a broken plugin file", { timeout: TEST_MS }, async (t) => {
  // Its data is refused without the token; the page itself is not.
  assert.equal((await fetch(`${ADMIN_URL}/dashboard/data`)).status, 401);
  const ok = await fetch(`${ADMIN_URL}/dashboard/data`, { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
  assert.equal(ok.status, 200);

  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  const browser = await launchBrowser(t);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  t.after(() => context.close());
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(`${ADMIN_URL}/dashboard`);

  // No figures before the token: the login form, and a wrong token is refused.
  await page.locator("#login").waitFor({ state: "visible", timeout: WAIT_MS });
  assert.equal(await page.locator("[data-tenant]").count(), 0, "no figures without the token");
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, "dashboard-login.png") });
  await page.locator("#token").fill("not-the-token");
  await page.getByRole("button", { name: "Show the dashboard" }).click();
  await until(page, () => document.getElementById("login-error").textContent.includes("refused"), null, "a wrong token refused");
  assert.equal(await page.locator("[data-tenant]").count(), 0, "no figures with a wrong token");
  await page.locator("#token").fill(ADMIN_TOKEN);
  await page.getByRole("button", { name: "Show the dashboard" }).click();
  await page.locator("[data-tenant=demo]").waitFor({ state: "visible", timeout: WAIT_MS });
  assert.ok(await page.locator("#login").isHidden(), "the login form goes once the token is accepted");

  // Someone opens the demo chat and writes: connections, channels, users
  // and messages move, and the chat's topic is listed with its presence.
  const connections = await figure(page, "connections");
  const messagesIn = await figure(page, "messages_in");
  const ada = await ChatPage.open(t, browser, "Ada");
  await until(page, figureOf, ["connections", connections], "connections to go up");
  await until(page, figureOf, ["channels", 0], "a joined channel");
  await until(page, figureOf, ["users", 0], "a user");
  await ada.type("hello dashboard");
  await ada.send();
  await until(page, figureOf, ["messages_in", messagesIn], "messages in to go up");
  await until(
    page,
    () => {
      const row = document.querySelector("[data-tenant=demo] [data-topic='chat:lobby']");
      return row !== null && row.querySelector(".subscribers").textContent === "1" && row.querySelector(".presences").textContent === "1";
    },
    null,
    "chat:lobby among the busiest topics, with its subscriber and presence",
  );
  await until(
    page,
    () => Number(document.querySelector("[data-tenant=demo] [data-plugin=chat] .calls")?.textContent) > 0,
    null,
    "the chat plugin's calls counted",
  );

  // A broken plugin file: the room plugin's row shows why it was refused.
  await writeFile(BROKEN_PLUGIN, "this is not a plugin");
  await until(
    page,
    () => document.querySelector("[data-tenant=demo] [data-plugin=room] .load-error")?.textContent.includes("not a WebAssembly file"),
    null,
    "the room plugin's load error",
  );
  await page.screenshot({ path: path.join(ARTIFACTS_DIR, "dashboard.png"), fullPage: true });
  assert.deepEqual(errors, [], "the dashboard threw");
});
