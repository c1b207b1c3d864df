// plume-recovery: nothing missed across a reconnect, with plain phoenix.js.
//
// On a plume topic whose route keeps history, every broadcast carries its
// position ("<epoch>:<offset>") in the frame's ref slot, which phoenix.js
// hands to `Channel.onMessage(event, payload, ref)`. This helper remembers
// the last position a channel saw and, when phoenix.js rejoins (after a
// reconnect, or a channel error), asks plume to recover from it with the
// join param `_recover`. plume then replays what the channel missed, in
// order, each once, before anything newer, and pushes `plume_recovery`
// `{recovered, count, position}`. When it cannot ("recovered": false: the
// gap is older than the history, or the server restarted), rebuild your
// state, for instance from an HTTP request, in `onRecovery`.
//
//   import { Socket } from "phoenix";
//   import { recoverable } from "./plume-recovery.js";
//
//   const socket = new Socket("/socket", { params: { token } });
//   socket.connect();
//   const room = recoverable(socket, "room:lobby", {}, {
//     onRecovery: ({ recovered, count }) => { if (!recovered) reloadMessages(); },
//   });
//   room.on("new_msg", (msg) => show(msg));
//   room.join();
//
// No dependencies: it works with any phoenix.js from 1.5 on.

/** What a position looks like: 16 hex digits, a colon, an offset. */
const POSITION = /^[0-9a-f]{16}:\d+$/;

/**
 * A phoenix.js channel on `topic` that recovers what it missed when it
 * rejoins. `params` are the join params (an object, or a function returning
 * one, as phoenix.js takes them); `onRecovery` hears each
 * `plume_recovery` push. The channel's `position()` is the last position
 * it saw (null before any).
 */
export function recoverable(socket, topic, params = {}, { onRecovery } = {}) {
  let position = null;
  const base = typeof params === "function" ? params : () => params;
  const channel = socket.channel(topic, () => (position ? { ...base(), _recover: position } : base()));
  const onMessage = channel.onMessage.bind(channel);
  channel.onMessage = (event, payload, ref, joinRef) => {
    if (typeof ref === "string" && POSITION.test(ref)) {
      position = ref;
    }
    return onMessage(event, payload, ref, joinRef);
  };
  channel.on("plume_recovery", (info) => {
    if (typeof info.position === "string" && POSITION.test(info.position)) {
      position = info.position;
    }
    if (onRecovery) {
      onRecovery(info);
    }
  });
  channel.position = () => position;
  return channel;
}
