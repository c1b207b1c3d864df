// Bounded waiting: every wait in these tests has a deadline, so a server
// that stays silent fails a test instead of hanging the suite.

/** How long a test waits for one expected event. */
export const WAIT_MS = 5_000;

/** A test's overall budget (node:test `timeout`). */
export const TEST_MS = 30_000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** `promise`, or a rejection naming `what` after `ms`. */
export function within(promise, ms, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`waited ${ms} ms for ${what}`)), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Resolves once `predicate()` holds (checked every 10 ms), with its value.
 * `what` names the wait in the timeout error; a function is called then, to
 * describe the state that never came right.
 */
export async function until(predicate, what, ms = WAIT_MS) {
  const end = Date.now() + ms;
  for (;;) {
    const value = predicate();
    if (value) {
      return value;
    }
    if (Date.now() > end) {
      throw new Error(`waited ${ms} ms for ${typeof what === "function" ? what() : what}`);
    }
    await sleep(10);
  }
}
