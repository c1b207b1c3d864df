// The README's phoenix.js client (its ```js block that starts with
// `// client.mjs`), taken from README.md as written and run under Node
// against a real server, so that what a newcomer copies keeps working.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { startServer, token } from "./support/server.js";
import { TEST_MS } from "./support/wait.js";

/** The address the README's client connects to, replaced by the test server's. */
const README_URL = '"ws://127.0.0.1:4000/socket"';

/**
 * Without `fetch` (and with no XMLHttpRequest in Node), phoenix.js cannot
 * fall back to long-poll: the client works only over the WebSocket its
 * `transport` option gives it.
 */
const NO_LONGPOLL = "data:text/javascript,delete globalThis.fetch;delete globalThis.XMLHttpRequest;";

function readmeClient() {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const blocks = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((match) => match[1]);
  const client = blocks.find((block) => block.startsWith("// client.mjs\n"));
  assert.ok(client, "README.md has a ```js block starting with `// client.mjs`");
  assert.ok(client.includes(README_URL), `the README's client connects to ${README_URL}`);
  return client;
}

test("the README's client.mjs joins, chats over WebSocket and exits", { timeout: TEST_MS }, async (t) => {
  const server = await startServer(t);
  const source = readmeClient().replace(README_URL, JSON.stringify(server.socketUrl));
  // Beside this file, so that its imports resolve in tests/js/node_modules.
  const file = fileURLToPath(new URL(`./.readme-client-${process.pid}.mjs`, import.meta.url));
  writeFileSync(file, source);
  t.after(() => rmSync(file, { force: true }));

  const run = promisify(execFile)("node", ["--import", NO_LONGPOLL, file], {
    env: { ...process.env, TOKEN: await token(42) },
    timeout: 15_000,
  });
  const { stdout, stderr } = await run.catch((error) => {
    throw new Error(`the README's client failed (${error.code ?? error.signal}):\n${error.stdout}${error.stderr}`);
  });
  assert.equal(stdout, "user 42 says: hello\n", `stderr: ${stderr}`);
});
