"""RoomChannel, for topics ``room:*``, in Python: the same channel as the
Rust plugin in plugins/room and the JavaScript one in plugins/room-js,
against the same WIT world (``channel-plugin`` of wit/plume.wit), built
into a component by componentize-py with the SDK in sdk/python.

- join ``room:private`` is refused with ``{"reason": "unauthorized"}``; any
  other room (``room:lobby``, ``room:42``) is open.
- ``new_msg`` ``{"body": B}`` broadcasts ``new_msg`` ``{"body": B, "user_id":
  ID}`` to the room (ID is the socket's user) and replies ok ``{}``; a
  missing or non-string body replies error ``{"reason": "invalid message"}``.
- ``ping`` P replies ok P, the payload echoed as sent (JSON or binary).
- ``crash`` raises, to show (and test) that a crashed channel gets
  ``phx_error`` while its socket lives on.
- Any other event stops the channel as a crash, as an unmatched
  ``handle_in`` clause crashes a Phoenix channel.

Like every plume plugin it is stateless: the user comes from the assigns
the socket plugin set, and nothing is kept between calls.
"""

import plume


class Room(plume.Channel):
    def join(self, topic, payload, socket):
        if topic == "room:private":
            return plume.refused("unauthorized")
        return plume.joined()

    def handle_in(self, event, payload, socket):
        if event == "new_msg":
            return self.new_msg(payload, socket)
        if event == "ping":
            return plume.ok(payload)
        if event == "crash":
            raise RuntimeError("crash requested by the client")
        return plume.stop(f"unknown event: {event}")

    def new_msg(self, payload, socket):
        """Broadcast a message to the room, tagged with the sender's id."""
        body = payload.get("body")
        if not isinstance(body, str):
            return plume.error({"reason": "invalid message"})
        try:
            plume.broadcast("new_msg", {"body": body, "user_id": user_id(socket)})
        except plume.HostError as e:
            plume.log.warn(f"new_msg not broadcast: {e}")
            return plume.error({"reason": "not delivered"})
        return plume.ok()


def user_id(socket):
    """The id of the socket's ``user`` assign, ``None`` when there is none."""
    user_id = socket.user.get("id")
    return user_id if isinstance(user_id, int) and not isinstance(user_id, bool) else None


ChannelHandler = plume.export(Room)
