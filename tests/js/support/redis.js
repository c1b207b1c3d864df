// A real redis-server for the cluster tests: on a free loopback port, in a
// temporary directory, saving nothing; stopped when the test ends.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createConnection, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { sleep, WAIT_MS } from "./wait.js";

async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function answersPing(port) {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: "127.0.0.1" }, () => socket.write("PING\r\n"));
    socket.once("data", (data) => {
      socket.destroy();
      resolve(data.toString().startsWith("+PONG"));
    });
    socket.once("error", () => resolve(false));
  });
}

/** Start a Redis for test `t`; resolves to its `redis://` URL. */
export async function startRedis(t) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "plume-js-redis-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" },
  );
  child.once("error", (err) => {
    throw new Error(`redis-server did not start (Debian: apt-get install redis-server): ${err.message}`);
  });
  t.after(() => {
    child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });
  const end = Date.now() + WAIT_MS;
  while (!(await answersPing(port))) {
    if (Date.now() > end) {
      throw new Error(`waited ${WAIT_MS} ms for redis-server to answer on port ${port}`);
    }
    await sleep(20);
  }
  return `redis://127.0.0.1:${port}`;
}
