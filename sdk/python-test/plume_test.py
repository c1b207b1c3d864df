"""Test a plume channel from Python: a Phoenix client over a real socket.

``plume test NAME`` builds the plugin ``NAME``, serves it alone on a free
loopback port, puts this module on ``PYTHONPATH`` and runs the plugin's
``tests/`` with ``unittest``, ``PLUME_URL`` naming the socket's endpoint
(``ws://127.0.0.1:PORT/socket``)::

    import unittest
    from plume_test import Client

    class TestEcho(unittest.TestCase):
        def test_ping(self):
            with Client() as ann:
                lobby = ann.join("echo:lobby")
                self.assertEqual(lobby.push("ping", {"n": 1}), ("ok", {"n": 1}))

A :class:`Client` is one socket speaking the Phoenix protocol's JSON
serializer (version 2, what phoenix.js speaks); :meth:`Client.join` gives a
:class:`Channel`, whose :meth:`Channel.push` waits for the reply and whose
:meth:`Channel.next` waits for the next push or broadcast of an event.
Every wait is bounded (``timeout``, 5 seconds by default) and fails with a
:class:`TimeoutError` that says what did not arrive.

The socket comes from ``websockets`` (PyPI), which ``plume test`` installs
at a pinned version into the virtual environment it runs the tests with.
"""

import json
import os
import time
from collections import namedtuple
from urllib.parse import urlencode

from websockets.sync.client import connect

__all__ = ["Client", "Channel", "Reply", "JoinRefused"]

Reply = namedtuple("Reply", ["status", "response"])
Reply.__doc__ = "A reply to a push: its status (``ok``, ``error``) and response."


class JoinRefused(Exception):
    """The channel refused the join; ``response`` is its reply's response."""

    def __init__(self, topic, response):
        super().__init__(f"{topic}: join refused: {json.dumps(response)}")
        self.topic = topic
        self.response = response


class Client:
    """One socket to plume. ``url`` defaults to ``$PLUME_URL``; ``params``
    are the connect parameters the socket plugin sees (e.g. a token)."""

    def __init__(self, url=None, params=None, timeout=5.0):
        url = url or os.environ.get("PLUME_URL")
        if not url:
            raise RuntimeError("PLUME_URL is unset: run the tests with `plume test NAME`, which serves the plugin first")
        query = urlencode({**(params or {}), "vsn": "2.0.0"})
        self.timeout = timeout
        self._ws = connect(f"{url.rstrip('/')}/websocket?{query}", open_timeout=timeout)
        self._ref = 0
        self._inbox = []

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()

    def close(self):
        """Close the socket (the server then leaves its channels)."""
        self._ws.close()

    def join(self, topic, payload=None):
        """Join ``topic``: its :class:`Channel`, whose ``reply`` is the join
        reply's response. Raises :class:`JoinRefused` on an error reply."""
        join_ref = self._send(None, topic, "phx_join", payload or {})
        reply = self._reply(join_ref, topic, "phx_join")
        if reply.status != "ok":
            raise JoinRefused(topic, reply.response)
        return Channel(self, topic, join_ref, reply.response)

    def _send(self, join_ref, topic, event, payload):
        self._ref += 1
        ref = str(self._ref)
        self._ws.send(json.dumps([join_ref or ref, ref, topic, event, payload]))
        return ref

    def _reply(self, ref, topic, what):
        frame = self._wait(lambda f: f[1] == ref and f[3] == "phx_reply", f"{topic}: no reply to {what}")
        return Reply(frame[4].get("status"), frame[4].get("response"))

    def _wait(self, matches, missing, timeout=None):
        """The first frame (received or buffered) that ``matches``; other
        frames stay buffered for later waits."""
        for i, frame in enumerate(self._inbox):
            if matches(frame):
                return self._inbox.pop(i)
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{missing} within {self.timeout if timeout is None else timeout} s")
            try:
                text = self._ws.recv(timeout=left)
            except TimeoutError:
                continue
            frame = json.loads(text)
            if matches(frame):
                return frame
            self._inbox.append(frame)


class Channel:
    """A joined topic on a :class:`Client`."""

    def __init__(self, client, topic, join_ref, reply):
        self.client = client
        self.topic = topic
        self.join_ref = join_ref
        self.reply = reply

    def push(self, event, payload=None):
        """Push ``event`` and wait for its :class:`Reply`."""
        ref = self.client._send(self.join_ref, self.topic, event, payload if payload is not None else {})
        return self.client._reply(ref, self.topic, event)

    def next(self, event, timeout=None):
        """The payload of the next ``event`` pushed or broadcast to this
        channel (not a reply)."""
        return self.client._wait(
            lambda f: f[2] == self.topic and f[3] == event and f[1] is None,
            f"{self.topic}: no {event}",
            timeout,
        )[4]

    def leave(self):
        """Leave the topic; returns the leave's :class:`Reply`."""
        ref = self.client._send(self.join_ref, self.topic, "phx_leave", {})
        return self.client._reply(ref, self.topic, "phx_leave")
