// The demo chat page in headless Chromium, driven by playwright-core.
//
// The Rust wrapper (tests/browser.rs) starts the plume server and sets:
//   PLUME_URL      the server, e.g. http://127.0.0.1:41234
//   CHROMIUM       the browser to drive (/usr/bin/chromium)
//   ARTIFACTS_DIR  where screenshots go (target/test-artifacts)

import { mkdirSync } from "node:fs";
import { join } from "node:path";

import { chromium } from "playwright-core";

/** How long a page may take to show one expected change. */
export const WAIT_MS = 15_000;

/** A test's overall budget (node:test `timeout`). */
export const TEST_MS = 120_000;

function fromEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run these tests through \`cargo test --release -p plume --test browser\``);
  }
  return value;
}

export const PLUME_URL = fromEnv("PLUME_URL");
const CHROMIUM = fromEnv("CHROMIUM");
const ARTIFACTS_DIR = fromEnv("ARTIFACTS_DIR");

/** Headless Chromium for the test `t`, closed when it ends. */
export async function launchBrowser(t) {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox"] });
  t.after(() => browser.close());
  return browser;
}

/**
 * One person at the demo page: a page in its own browser context (its own
 * sessionStorage, so its own identity), with what it requested and what
 * went wrong in it recorded.
 */
export class ChatPage {
  constructor(name, context, page) {
    this.name = name;
    this.context = context;
    this.page = page;
    /** Uncaught errors of the page's scripts. */
    this.errors = [];
    /** Paths of the page's requests to plume. */
    this.requests = [];
    page.on("pageerror", (error) => this.errors.push(error.message));
    page.on("request", (request) => this.requests.push(new URL(request.url()).pathname));
  }

  /**
   * Opens the page at `url` (default: plume itself) as `name` in
   * `browser`, and signs in.
   */
  static async open(t, browser, name, { url = PLUME_URL } = {}) {
    const context = await browser.newContext({ viewport: { width: 900, height: 560 } });
    t.after(() => context.close());
    const chat = new ChatPage(name, context, await context.newPage());
    await chat.page.goto(url);
    await chat.page.getByLabel("Your name").fill(name);
    await chat.page.getByRole("button", { name: "Join chat" }).click();
    await chat.sees("#status[data-state=online]", `${name}'s page to join chat:lobby`);
    return chat;
  }

  /** The transport the page's socket joined over: "websocket" or "longpoll". */
  transport() {
    return this.page.locator("#status").getAttribute("data-transport");
  }

  /**
   * Waits until `selector` (optionally holding `text`) is on the page;
   * a timeout names `what` and shows the page's chat as it was.
   */
  async sees(selector, what, { text, gone = false } = {}) {
    const locator = this.page.locator(selector, text === undefined ? {} : { hasText: text });
    try {
      await locator.first().waitFor({ state: gone ? "detached" : "visible", timeout: WAIT_MS });
    } catch (error) {
      throw new Error(`${what}: ${error.message.split("\n")[0]}\n${await this.describe()}`);
    }
  }

  /** The chat as this page shows it, for failure messages. */
  async describe() {
    const texts = (selector) =>
      this.page
        .locator(selector)
        .allInnerTexts()
        .catch(() => []);
    return [
      `${this.name}'s page:`,
      `  status: ${await this.page.locator("#status").innerText().catch(() => "?")}`,
      `  online: ${JSON.stringify(await texts("#online li"))}`,
      `  messages: ${JSON.stringify(await texts("#messages li"))}`,
      `  typing: ${JSON.stringify(await texts("#typing"))}`,
      `  problem: ${JSON.stringify(await texts("#problem:not([hidden])"))}`,
      `  errors: ${JSON.stringify(this.errors)}`,
    ].join("\n");
  }

  /** Types `text` into the message box, key by key, as a person would. */
  async type(text) {
    await this.page.locator("#message").pressSequentially(text);
  }

  /** Sends what is in the message box, with Enter. */
  async send() {
    await this.page.locator("#message").press("Enter");
  }

  /** Waits until `other` is in this page's online list. */
  async seesOnline(other) {
    await this.sees("#online li", `${this.name} to see ${other} online`, { text: other });
  }

  /**
   * Waits until `predicate(arg)`, run in the page, holds; a timeout names
   * `what` and shows the page's chat as it was.
   */
  async until(predicate, arg, what) {
    try {
      await this.page.waitForFunction(predicate, arg, { timeout: WAIT_MS });
    } catch (error) {
      throw new Error(`${what}: ${error.message.split("\n")[0]}\n${await this.describe()}`);
    }
  }

  /** Waits until the typing line reads `line` ("" for nobody). */
  async seesTyping(line) {
    await this.until(
      (line) => document.getElementById("typing").textContent === line,
      line,
      `${this.name} to see typing ${JSON.stringify(line)}`,
    );
  }

  /** Waits until the message list holds `text`, said by `author`. */
  async seesMessage(author, text) {
    await this.sees(`#messages li:has(.author:text-is("${author}"))`, `${this.name} to see ${author} say ${text}`, {
      text,
    });
  }

  /** Saves a screenshot under ARTIFACTS_DIR; returns its path. */
  async screenshot(file) {
    mkdirSync(ARTIFACTS_DIR, { recursive: true });
    const path = join(ARTIFACTS_DIR, file);
    await this.page.screenshot({ path });
    console.log(`screenshot: ${path}`);
    return path;
  }
}
