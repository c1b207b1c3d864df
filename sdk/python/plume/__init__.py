"""plume's Python SDK: write a plume channel as a Python class.

A channel is a subclass of :class:`Channel` whose methods take Python
values (a :class:`Payload`, a :class:`Socket`) and return what the channel
decided (:func:`ok`, :func:`error`, :func:`noreply`, :func:`stop`,
:func:`joined`, :func:`refused`). :func:`export` turns it into the
``ChannelHandler`` class componentize-py looks for in the app module::

    import plume

    class Echo(plume.Channel):
        def handle_in(self, event, payload, socket):
            return plume.ok(payload)

    ChannelHandler = plume.export(Echo)

The host's effects are plain functions: :func:`broadcast`, :func:`push`,
the key-value store in :mod:`plume.kv`, log lines in :mod:`plume.log`,
:mod:`plume.presence`, :mod:`plume.timers` and :mod:`plume.clock`.
A plugin instance keeps nothing between calls (the host pools instances
and may throw one away at any time): state lives in the assigns or in the
key-value store.

The bindings (``wit_world``) are generated from the repo's ``wit/`` at
build time by componentize-py; this package is the only code that
touches them, so a change of the WIT changes this package alone.
"""

from .payload import Payload, PayloadError
from .socket import Socket
from .results import Outcome, Join, ok, error, noreply, stop, joined, refused, push_out, drop_out
from .effects import HostError, push, broadcast, broadcast_from, broadcast_to, subscribe, unsubscribe
from .channel import Channel, export
from . import clock, kv, log, presence, timers

__all__ = [
    "Channel", "export", "Payload", "PayloadError", "Socket", "Outcome", "Join",
    "ok", "error", "noreply", "stop", "joined", "refused", "push_out", "drop_out",
    "HostError", "push", "broadcast", "broadcast_from", "broadcast_to", "subscribe", "unsubscribe",
    "clock", "kv", "log", "presence", "timers",
]
