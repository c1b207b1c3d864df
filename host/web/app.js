// The demo chat page: the room `chat:lobby` through phoenix.js, as any
// Phoenix app's page would talk to its ChatChannel.
//
// 1. Load phoenix.js, which plume serves from this folder's node_modules;
//    without it, say how to install it.
// 2. Get an identity: a name, and a user token for it minted by
//    `POST /demo/identity` (a real app would mint it at login). It is kept
//    in sessionStorage, so each tab is its own user and a reload keeps it.
// 3. Connect with the token (WebSocket, falling back to long-poll), join the
//    room with it too (the chat channel checks it again), show the history,
//    then follow new and deleted messages, who is online (phoenix.js
//    Presence) and who is typing.

const ROOM = "chat:lobby";
const IDENTITY_KEY = "plume-demo:identity";

/** A WebSocket that has not opened by then gives way to long-poll. */
const LONG_POLL_FALLBACK_MS = 2500;
/** How long a tab that leaves waits for the server to close its channel. */
const LEAVE_PATIENCE_MS = 2000;
/** Typing stops this long after the last keystroke. */
const TYPING_IDLE_MS = 2500;
/** While someone keeps typing, they say so again this often... */
const TYPING_REFRESH_MS = 3000;
/** ...and whoever we have not heard from for this long stopped. */
const TYPING_STALE_MS = 6000;

const $ = (id) => document.getElementById(id);

function setStatus(state, label, transport = "") {
  const status = $("status");
  status.dataset.state = state;
  status.dataset.transport = transport;
  status.textContent = label;
}

function showProblem(text) {
  $("problem").textContent = text;
  $("problem").hidden = false;
}

/** phoenix.js's ES module, or null once the page said why it is missing. */
async function loadPhoenix() {
  try {
    return await import("/demo/phoenix.mjs");
  } catch {
    let reason = "phoenix.js could not be loaded.";
    try {
      const response = await fetch("/demo/phoenix.mjs");
      if (!response.ok) {
        reason = (await response.text()).trim();
      }
    } catch {
      reason = "The server cannot be reached. Is plume running?";
    }
    showProblem(reason);
    setStatus("offline", "phoenix.js missing");
    return null;
  }
}

function storedIdentity() {
  try {
    const identity = JSON.parse(sessionStorage.getItem(IDENTITY_KEY));
    return identity?.token && identity?.user ? identity : null;
  } catch {
    return null;
  }
}

/** Shows the sign-in form; resolves with a fresh identity for the name given. */
function signIn(notice = "") {
  $("chat").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = notice;
  setStatus("idle", "signed out");
  $("name").focus();
  return new Promise((resolve) => {
    $("sign-in").onsubmit = async (event) => {
      event.preventDefault();
      $("sign-in-error").textContent = "";
      try {
        const response = await fetch("/demo/identity", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ name: $("name").value }),
        });
        const answer = await response.json();
        if (!response.ok) {
          $("sign-in-error").textContent = answer.error ?? `The server said ${response.status}.`;
          return;
        }
        sessionStorage.setItem(IDENTITY_KEY, JSON.stringify(answer));
        $("sign-in").onsubmit = null;
        resolve(answer);
      } catch {
        $("sign-in-error").textContent = "The server cannot be reached. Is plume running?";
      }
    };
  });
}

/** A user's colour, the same on every page. */
function hue(userId) {
  return (Number(userId) * 47) % 360;
}

function avatar(userId, name) {
  const span = document.createElement("span");
  span.className = "avatar";
  span.style.setProperty("--hue", hue(userId));
  span.textContent = (name.trim()[0] ?? "?").toUpperCase();
  span.setAttribute("aria-hidden", "true");
  return span;
}

/** One chat session: a socket and its channel, until `stop()`. */
function openChat({ Socket, Presence, LongPoll }, identity, { onRefused }) {
  const me = identity.user;
  const socket = new Socket(identity.socket_path, {
    params: { token: identity.token },
    longPollFallbackMs: LONG_POLL_FALLBACK_MS,
  });
  const channel = socket.channel(ROOM, { token: identity.token });
  const presence = new Presence(channel);
  const names = new Map(); // user id -> name, of who is online
  const typers = new Map(); // user id -> timer that drops them

  $("messages").replaceChildren();
  $("online").replaceChildren();
  $("typing").textContent = "";
  $("send-error").textContent = "";
  $("sign-in").hidden = true;
  $("chat").hidden = false;
  $("message").focus();

  const transport = () => (socket.transport === LongPoll ? ["long-poll", "longpoll"] : ["WebSocket", "websocket"]);

  // ---- connection state

  setStatus("connecting", "connecting…");
  const stateRefs = [];
  stateRefs.push(socket.onError((reason) => {
    // Long-poll reports a refused connect as 403: this tab's token is no
    // longer good (say, the server's secret changed). Anything else is the
    // network, and phoenix.js keeps retrying.
    if (reason === 403) {
      onRefused();
    } else {
      setStatus("offline", "reconnecting…");
    }
  }));
  stateRefs.push(socket.onClose(() => setStatus("offline", "reconnecting…")));
  channel.onError(() => setStatus("offline", "rejoining…"));

  // ---- messages

  const list = $("messages");

  function messageItem({ id, content, user, inserted_at: insertedAt }) {
    const item = document.createElement("li");
    item.className = user.id === me.id ? "message mine" : "message";
    item.dataset.id = id;
    const bubble = document.createElement("div");
    bubble.className = "bubble";
    const heading = document.createElement("div");
    heading.className = "meta";
    const author = document.createElement("strong");
    author.className = "author";
    author.textContent = user.name;
    const time = document.createElement("time");
    time.dateTime = insertedAt;
    time.textContent = new Date(insertedAt).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    heading.append(author, time);
    if (user.id === me.id) {
      const remove = document.createElement("button");
      remove.type = "button";
      remove.className = "delete";
      remove.title = "Delete this message";
      remove.setAttribute("aria-label", "Delete this message");
      remove.textContent = "×";
      remove.onclick = () =>
        channel
          .push("delete_message", { message_id: id })
          .receive("error", ({ reason }) => ($("send-error").textContent = `Not deleted: ${reason}.`));
      heading.append(remove);
    }
    const text = document.createElement("p");
    text.className = "content";
    text.textContent = content;
    bubble.append(heading, text);
    item.append(avatar(user.id, user.name), bubble);
    return item;
  }

  /** Runs `change`, keeping the list scrolled to the end if it was there. */
  function keepingScroll(change) {
    const atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
    change();
    if (atEnd) {
      list.scrollTop = list.scrollHeight;
    }
  }

  function addMessage(message) {
    if (list.querySelector(`[data-id="${CSS.escape(message.id)}"]`)) {
      return;
    }
    keepingScroll(() => list.append(messageItem(message)));
  }

  channel.on("new_message", (message) => {
    forgetTyper(String(message.user.id));
    addMessage(message);
  });
  channel.on("message_deleted", ({ message_id: id }) => {
    list.querySelector(`[data-id="${CSS.escape(id)}"]`)?.remove();
  });

  // ---- who is online

  presence.onSync(() => {
    names.clear();
    const people = presence.list((key, { metas }) => ({ key, name: metas[0].name, tabs: metas.length }));
    people.sort((a, b) => a.name.localeCompare(b.name) || a.key.localeCompare(b.key));
    const items = people.map(({ key, name, tabs }) => {
      names.set(key, name);
      const item = document.createElement("li");
      item.dataset.userId = key;
      const label = document.createElement("span");
      label.className = "name";
      label.textContent = name;
      item.append(avatar(key, name), label);
      if (key === String(me.id)) {
        item.classList.add("me");
        const you = document.createElement("span");
        you.className = "tag";
        you.textContent = "you";
        item.append(you);
      }
      if (tabs > 1) {
        const count = document.createElement("span");
        count.className = "tag";
        count.textContent = `${tabs} tabs`;
        item.append(count);
      }
      return item;
    });
    $("online").replaceChildren(...items);
    $("online-count").textContent = String(people.length);
    for (const key of typers.keys()) {
      if (!names.has(key)) {
        forgetTyper(key);
      }
    }
    renderTyping();
  });

  // ---- who is typing

  function renderTyping() {
    const who = [...typers.keys()].map((key) => names.get(key) ?? "someone");
    $("typing").textContent =
      who.length === 0
        ? ""
        : who.length === 1
          ? `${who[0]} is typing…`
          : who.length === 2
            ? `${who[0]} and ${who[1]} are typing…`
            : `${who.length} people are typing…`;
  }

  function forgetTyper(key) {
    clearTimeout(typers.get(key));
    if (typers.delete(key)) {
      renderTyping();
    }
  }

  channel.on("user_typing", ({ user_id: userId, typing }) => {
    const key = String(userId);
    if (key === String(me.id)) {
      return; // this user's other tab
    }
    clearTimeout(typers.get(key));
    if (typing) {
      typers.set(key, setTimeout(() => forgetTyper(key), TYPING_STALE_MS));
      renderTyping();
    } else {
      forgetTyper(key);
    }
  });

  let typingSince = 0; // when we last said we are typing; 0: we are not
  let idle;
  function stopTyping() {
    clearTimeout(idle);
    if (typingSince) {
      typingSince = 0;
      channel.push("typing", { typing: false });
    }
  }
  $("message").oninput = () => {
    if ($("message").value.trim() === "") {
      stopTyping();
      return;
    }
    if (Date.now() - typingSince > TYPING_REFRESH_MS) {
      typingSince = Date.now();
      channel.push("typing", { typing: true });
    }
    clearTimeout(idle);
    idle = setTimeout(stopTyping, TYPING_IDLE_MS);
  };

  // ---- sending

  $("composer").onsubmit = (event) => {
    event.preventDefault();
    const message = $("message").value;
    if (message.trim() === "") {
      return;
    }
    stopTyping();
    $("send-error").textContent = "";
    channel
      .push("new_message", { message })
      .receive("ok", () => {
        if ($("message").value === message) {
          $("message").value = "";
        }
      })
      .receive("error", ({ errors }) => {
        $("send-error").textContent = `Not sent: ${errors?.content?.join(", ") ?? "the server refused it"}.`;
      })
      .receive("timeout", () => {
        $("send-error").textContent = "Not sent: the server did not answer. Try again.";
      });
  };

  // ---- join; phoenix.js rejoins by itself after a reconnect, and each
  // (re)join reloads the history, so nothing said meanwhile is missed.

  channel
    .join()
    .receive("ok", () => {
      setStatus("online", ...transport());
      channel.push("history", {}).receive("ok", ({ messages }) => {
        keepingScroll(() => list.replaceChildren(...messages.map(messageItem)));
      });
    })
    .receive("error", ({ reason }) => {
      if (reason === "invalid_token") {
        onRefused();
      } else {
        setStatus("offline", `cannot join: ${reason}`);
      }
    });
  socket.connect();

  return {
    stop() {
      socket.off(stateRefs); // the page no longer shows this connection
      stopTyping();
      for (const key of [...typers.keys()]) {
        forgetTyper(key);
      }
      // Leave first, so that the others see this tab go at once (over
      // long-poll, a dropped session is noticed only when it times out),
      // and close the socket once the server closed the channel. (The push
      // phoenix.js returns from leave() resolves at once, before a
      // long-poll batch is even sent.)
      const closing = socket.onMessage(({ topic, event }) => {
        if (topic === ROOM && event === "phx_close") {
          disconnect();
        }
      });
      const patience = setTimeout(disconnect, LEAVE_PATIENCE_MS);
      function disconnect() {
        clearTimeout(patience);
        socket.off([closing]);
        socket.disconnect();
      }
      channel.leave();
    },
  };
}

async function main() {
  const phoenix = await loadPhoenix();
  if (!phoenix) {
    return;
  }
  let identity = storedIdentity() ?? (await signIn());
  for (;;) {
    const ended = await new Promise((resolve) => {
      const chat = openChat(phoenix, identity, {
        onRefused: () => {
          chat.stop();
          resolve("This tab's sign-in is no longer valid (did the server's secret change?). Pick a name again.");
        },
      });
      $("sign-out").onclick = () => {
        chat.stop();
        resolve("");
      };
    });
    sessionStorage.removeItem(IDENTITY_KEY);
    identity = await signIn(ended);
  }
}

main();
