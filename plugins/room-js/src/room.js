// RoomChannel, for topics `room:*`, in JavaScript: the same channel as the
// Rust plugin in plugins/room, against the same WIT world (`channel-plugin`
// of wit/plume.wit), built into a component by componentize-js.
//
// - join `room:private` is refused with `{"reason": "unauthorized"}`; any
//   other room (`room:lobby`, `room:42`) is open.
// - `new_msg` `{"body": B}` broadcasts `new_msg` `{"body": B, "user_id": ID}`
//   to the room (ID is the socket's user) and replies ok `{}`; a missing or
//   non-string body replies error `{"reason": "invalid message"}`.
// - `ping` P replies ok P, the payload echoed as sent.
// - `crash` throws, to show (and test) that a crashed channel gets
//   `phx_error` while its socket lives on.
// - Any other event stops the channel as a crash, as an unmatched
//   `handle_in` clause crashes a Phoenix channel.
//
// Like every plume plugin it is stateless: the user comes from the assigns
// the socket plugin set, and nothing is kept between calls.

import { broadcast } from 'plume:plugin/channel@0.3.0';
import { log } from 'plume:plugin/log@0.3.0';
import { echo, parse, toPayload } from './payload.js';

function join(topic, _payload, _socket) {
  if (topic === 'room:private') {
    return { tag: 'err', val: JSON.stringify({ reason: 'unauthorized' }) };
  }
  return { tag: 'ok', val: { reply: JSON.stringify({}), assigns: undefined } };
}

function handleIn(event, payload, socket) {
  switch (event) {
    case 'new_msg':
      return newMsg(payload, socket);
    case 'ping':
      return reply('ok', echo(payload));
    case 'crash':
      // An uncaught exception traps the instance: the host ends this
      // channel with `phx_error`. Log first, as the Rust SDK's panic hook
      // does, since the plugin has no stderr.
      log('error', 'plugin crashed: crash requested by the client');
      throw new Error('crash requested by the client');
    default:
      return { action: { tag: 'stop', val: { reason: `unknown event: ${event}` } } };
  }
}

/** Broadcasts a message to the room, tagged with the sender's user id. */
function newMsg(payload, socket) {
  const body = bodyOf(payload);
  if (body === undefined) {
    return reply('error', toPayload({ reason: 'invalid message' }));
  }
  try {
    broadcast('new_msg', toPayload({ body, user_id: userId(socket) }));
    return reply('ok', toPayload({}));
  } catch (error) {
    log('warn', `new_msg not broadcast: ${describe(error)}`);
    return reply('error', toPayload({ reason: 'not delivered' }));
  }
}

/** The `body` of a `new_msg` payload, when it is a string. */
function bodyOf(payload) {
  try {
    const body = parse(payload)?.body;
    return typeof body === 'string' ? body : undefined;
  } catch {
    return undefined;
  }
}

/** The id of the socket's `user` assign (set by the socket plugin), or
 * null when there is none. */
function userId(socket) {
  const id = JSON.parse(socket.assigns)?.user?.id;
  return Number.isSafeInteger(id) ? id : null;
}

function reply(status, payload) {
  return { action: { tag: 'reply', val: { status, payload } } };
}

/** A host error (a `channel-error` variant) or an exception, as text. */
function describe(error) {
  const reason = error?.payload ?? error;
  return reason?.tag ? `${reason.tag}${reason.val ? `: ${reason.val}` : ''}` : String(reason);
}

// The callbacks the room does not need behave as the Rust SDK's defaults.
export const channelHandler = {
  join,
  handleIn,
  handleOut: () => ({ action: { tag: 'push' } }),
  handleInfo: () => ({ action: { tag: 'noreply' } }),
  terminate: () => {},
  intercepts: () => [],
  upgrade: () => undefined,
};
