// phoenix.js under Node: its `Socket` with the `ws` package as transport,
// and promise-returning wrappers around its callback API, each bounded in
// time.

import { Socket } from "phoenix";
import WebSocket from "ws";

import { WAIT_MS, within } from "./wait.js";

/**
 * Socket options that make phoenix.js retry at once, so reconnect and
 * rejoin tests take milliseconds instead of phoenix.js's default seconds.
 */
export const QUICK_RETRY = {
  reconnectAfterMs: () => 50,
  rejoinAfterMs: () => 50,
};

/**
 * A phoenix.js socket to `server`, connected, and disconnected when the
 * test `t` ends. `opts` are phoenix.js `Socket` options; `transport`
 * defaults to `ws`.
 */
export function connect(t, server, opts = {}) {
  const socket = new Socket(server.socketUrl, { transport: WebSocket, timeout: WAIT_MS, ...opts });
  t.after(() => socket.disconnect());
  socket.connect();
  return socket;
}

/** Resolves when `socket` next opens. */
export function opened(socket, what = "the socket to open") {
  return within(new Promise((resolve) => socket.onOpen(resolve)), WAIT_MS, what);
}

/** Resolves with the next close event of `socket` (a `ws` CloseEvent). */
export function closed(socket, what = "the socket to close", ms = WAIT_MS) {
  return within(new Promise((resolve) => socket.onClose(resolve)), ms, what);
}

/**
 * Joins `channel`; resolves with the first reply as `{status, response}`
 * (status `ok` or `error`), rejects on phoenix.js's push timeout.
 */
export function join(channel) {
  return reply(channel.join(), `the reply to joining ${channel.topic}`);
}

/** Joins `channel` and asserts success; resolves with the reply payload. */
export async function joinOk(channel) {
  const { status, response } = await join(channel);
  if (status !== "ok") {
    throw new Error(`joining ${channel.topic} failed: ${status} ${JSON.stringify(response)}`);
  }
  return response;
}

/** Pushes `event`; resolves with the reply as `{status, response}`. */
export function push(channel, event, payload) {
  return reply(channel.push(event, payload), `the reply to ${event} on ${channel.topic}`);
}

function reply(phoenixPush, what) {
  const answered = new Promise((resolve, reject) => {
    phoenixPush
      .receive("ok", (response) => resolve({ status: "ok", response }))
      .receive("error", (response) => resolve({ status: "error", response }))
      .receive("timeout", () => reject(new Error(`phoenix.js timed out waiting for ${what}`)));
  });
  return within(answered, WAIT_MS * 2, what);
}

/**
 * Resolves with the payload of the next `event` on `channel`. Call it
 * before the action that causes the event.
 */
export function nextEvent(channel, event, ms = WAIT_MS) {
  let ref;
  const received = new Promise((resolve) => {
    ref = channel.on(event, (payload) => resolve(payload));
  });
  return within(received, ms, `${event} on ${channel.topic}`).finally(() => channel.off(event, ref));
}

/**
 * Records the raw frames of every connection made through `transport`, a
 * `ws` WebSocket that phoenix.js uses unchanged: `received` and `sent` hold
 * the text frames as they crossed the wire, and `protocols` the
 * subprotocols the server chose.
 */
export class Wire {
  constructor() {
    this.received = [];
    this.sent = [];
    this.protocols = [];
    const wire = this;
    this.transport = class RecordingWebSocket extends WebSocket {
      constructor(url, protocols) {
        super(url, protocols);
        this.addEventListener("open", () => wire.protocols.push(this.protocol));
        this.addEventListener("message", (event) => wire.received.push(event.data));
      }

      send(data) {
        wire.sent.push(data);
        super.send(data);
      }
    };
  }

  /** The received frames, parsed. */
  receivedJson() {
    return this.received.map((frame) => JSON.parse(frame));
  }
}
