// How message payloads cross the WIT boundary, in one place.
//
// A payload is the `payload` variant of wit/plume.wit: `json` (JSON text)
// or `binary` (bytes, from a V2 binary frame). componentize-js hands a
// variant to JavaScript as `{ tag, val }`. The channel code deals only in
// `parse`, `toPayload` and `echo`, so a change of the WIT's payload type
// changes this file alone.

/** The JSON value of a payload from the host. Throws when the payload is
 * binary or not JSON: either way it is not the JSON the caller expects. */
export function parse(payload) {
  if (payload.tag !== 'json') {
    throw new TypeError(`expected a JSON payload, got ${payload.tag}`);
  }
  return JSON.parse(payload.val);
}

/** A JSON payload for the host, from a JavaScript value. */
export function toPayload(value) {
  return { tag: 'json', val: JSON.stringify(value) };
}

/** A payload from the host, handed back untouched (JSON or binary). */
export function echo(payload) {
  return payload;
}
