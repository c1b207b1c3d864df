// Real plume servers for the phoenix.js tests: each test starts its own, on
// a free loopback port, and they stop when the test ends.
//
// The binary and the built plugins come from the environment (the Rust
// wrapper tests/phoenix_js.rs sets them):
//   PLUME_BIN         the `plume` binary
//   PLUME_PLUGIN_DIR  the folder of the built `.wasm` plugins
//   PLUME_TEST_COMPILE_CACHE  (optional) a compile cache holding those
//                     plugins compiled: each server's own cache starts as
//                     hard links to its entries, so no server compiles them
//                     again and none uses ~/.cache/plume

import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";

import { within } from "./wait.js";

function fromEnv(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run these tests through \`cargo test --release -p plume --test phoenix_js\`, ` +
        "or set PLUME_BIN to the plume binary and PLUME_PLUGIN_DIR to target/plugins/wasm32-wasip2/plugin",
    );
  }
  return value;
}

const PLUME_BIN = fromEnv("PLUME_BIN");
const PLUME_PLUGIN_DIR = fromEnv("PLUME_PLUGIN_DIR");
const COMPILE_CACHE = process.env.PLUME_TEST_COMPILE_CACHE;

/** A compile cache of its own in `dir`, seeded from COMPILE_CACHE. */
function ownCompileCache(dir) {
  const cache = join(dir, "compile-cache");
  mkdirSync(cache);
  if (COMPILE_CACHE) {
    for (const name of readdirSync(COMPILE_CACHE).filter((name) => name.endsWith(".cwasm"))) {
      try {
        linkSync(join(COMPILE_CACHE, name), join(cache, name));
      } catch {
        copyFileSync(join(COMPILE_CACHE, name), join(cache, name));
      }
    }
  }
  return cache;
}

/**
 * The secret_key_base of every server this process starts, and of every
 * token it signs: a fresh one per test file, so no test depends on the
 * development secret.
 */
const SECRET = randomBytes(32).toString("hex");

/** How long a server may take to listen, and to exit after SIGTERM. */
const START_MS = 20_000;
const STOP_MS = 10_000;

/**
 * A Phoenix.Token for `data` (a user id or a user map) signed with `salt`,
 * by `plume token sign`.
 */
export async function token(data, salt = "user socket") {
  const { stdout } = await promisify(execFile)(
    PLUME_BIN,
    ["token", "sign", `--salt=${salt}`, `--secret=${SECRET}`, "--", JSON.stringify(data)],
    { timeout: 10_000 },
  );
  return stdout.trim();
}

/** A running `plume serve`. */
export class Server {
  constructor(child, dir) {
    this.child = child;
    /** `127.0.0.1:PORT`, once it listens. */
    this.addr = null;
    this.dir = dir;
    this.exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  }

  /** The endpoint phoenix.js takes: it appends `/websocket`. */
  get socketUrl() {
    return `ws://${this.addr}/socket`;
  }

  /** SIGTERM, as an operator stops it; resolves once the process exited. */
  async terminate() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGTERM");
    }
    return within(this.exited, STOP_MS, "plume to exit after SIGTERM");
  }

  /** Stop without ceremony (test clean-up). */
  async kill() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
    if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/**
 * Start the demo app for the test `t` (stopped when `t` ends). Options:
 * `bind` (default `127.0.0.1:0`, a free port), `config`, a plume.toml
 * text in which `{plugins}` stands for the built plugins' folder (default:
 * the demo app from the plugin folder), and `env`, more environment
 * variables (`PLUME_REDIS_URL` makes it a node of a cluster).
 */
export async function startServer(t, { bind = "127.0.0.1:0", config, env = {} } = {}) {
  // Every server runs in a scratch folder of its own, with its own cache.
  const dir = mkdtempSync(join(tmpdir(), "plume-js-"));
  let args;
  if (config === undefined) {
    args = ["serve", "--bind", bind, "--no-build", "--plugin-dir", PLUME_PLUGIN_DIR];
  } else {
    const path = join(dir, "plume.toml");
    writeFileSync(path, config.replaceAll("{plugins}", PLUME_PLUGIN_DIR));
    args = ["serve", "--bind", bind, "--config", path];
  }
  const child = spawn(PLUME_BIN, args, {
    cwd: dir,
    env: {
      ...process.env,
      SECRET_KEY_BASE: SECRET,
      PLUME_LOG: process.env.PLUME_LOG || "info",
      PLUME_CACHE_DIR: ownCompileCache(dir),
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log = [];
  createInterface({ input: child.stderr }).on("line", (line) => log.push(line));
  const listening = new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on("line", (line) => {
      const match = line.match(/listening on http:\/\/(\S+)/);
      if (match) {
        resolve(match[1]);
      }
    });
    child.once("error", reject);
    child.once("exit", (code, signal) =>
      reject(new Error(`plume exited (${code ?? signal}) before listening:\n${log.join("\n")}`)),
    );
  });
  const server = new Server(child, dir);
  t.after(() => server.kill());
  server.addr = await within(listening, START_MS, `plume to listen on ${bind}`).catch((err) => {
    throw new Error(`${err.message}; its log:\n${log.join("\n")}`);
  });
  return server;
}
