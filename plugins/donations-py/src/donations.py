"""DonationChannel, for topics ``donations:lobby`` and
``donations:campaign:<id>``: live donation totals, in Python. The same
channel as the Rust plugin in plugins/donations, tested by the same
tests (tests/donation_channel.rs).

A campaign lives in the app's key-value store under ``campaign:<id>``,
changed only by compare-and-swap (``plume.kv.update``): its goal and total
(integer cents, see cents.py; never floats), its donation count, and its
organizer, the first user to join it.

- join ``donations:lobby``: ok. join ``donations:campaign:<id>``: ok, then
  ``campaign_state`` ``{"campaign": {"id", "goal", "total"}}`` is pushed and
  the user is tracked in presence (when the server has presence).
- ``new_donation`` ``{"amount": "<decimal>", "donor_name": N}``: the amount
  must be a positive decimal with at most two places, else ``{"errors":
  {"amount": ["must be greater than 0"]}}``. Replies ``{"donation_id": ID}``
  and broadcasts ``donation_created``, which is intercepted: everyone but
  the organizer sees ``"donor_name": "Anonymous"``.
- ``update_goal`` ``{"new_goal": "<decimal>"}``: the organizer only (others
  get ``unauthorized``); replies ``{"campaign": ...}`` and broadcasts
  ``goal_updated``.
"""

import plume
from plume import kv, log

import cents

DEFAULT_GOAL = 100_000  # 1000.00
ANONYMOUS = "Anonymous"
TRACK = "track_presence"


def campaign_key(campaign_id):
    return f"campaign:{campaign_id}"


def view(campaign_id, campaign):
    """The campaign as clients see it."""
    return {"id": campaign_id, "goal": cents.render(campaign["goal"]), "total": cents.render(campaign["total"])}


def reason(text):
    return {"reason": text}


def unavailable(what, error):
    """The store failed: log why, and tell the client to try again."""
    log.error(f"{what}: {error}")
    return reason("unavailable")


def user_of(socket):
    """The socket's user (``{"id", "name"}``), ``None`` without one."""
    user = socket.user
    if isinstance(user.get("id"), int) and isinstance(user.get("name"), str):
        return user
    return None


class Donations(plume.Channel):
    intercepts = ["donation_created"]

    def join(self, topic, payload, socket):
        if topic == "donations:lobby":
            return plume.joined()
        prefix = "donations:campaign:"
        if not topic.startswith(prefix):
            return plume.refused("unmatched topic")
        campaign_id = topic[len(prefix):]
        user = user_of(socket)
        if user is None:
            return plume.refused("unauthorized")
        # The first joiner creates the campaign and organizes it; everyone
        # after reads it.
        fresh = {"goal": DEFAULT_GOAL, "total": 0, "organizer": user["id"], "donations": 0}
        try:
            opened = kv.update(campaign_key(campaign_id), lambda c: fresh if c is None else kv.DECLINE)
        except plume.HostError as e:
            return plume.refused(unavailable("opening the campaign", e))
        campaign = opened.value
        if campaign is None:
            return plume.refused("unavailable")
        try:
            # Pushes made in join reach the client after the join reply.
            plume.push("campaign_state", {"campaign": view(campaign_id, campaign)})
        except plume.HostError as e:
            log.warn(f"campaign_state not pushed: {e}")
        try:
            plume.timers.send_self(TRACK)
        except plume.HostError as e:
            log.warn(f"presence not tracked: {e}")
        return plume.joined(assigns=socket.assign(campaign_id=campaign_id, organizer=campaign["organizer"] == user["id"]))

    def handle_in(self, event, payload, socket):
        if event not in ("new_donation", "update_goal"):
            return plume.stop(f"unknown event: {event}")
        campaign_id = socket.get("campaign_id")
        if not isinstance(campaign_id, str):
            # The lobby has no campaign to give to.
            return plume.error(reason("invalid payload"))
        if event == "new_donation":
            return new_donation(campaign_id, payload)
        return update_goal(campaign_id, socket.get("organizer") is True, payload)

    def handle_info(self, message, socket):
        if message == TRACK:
            track(socket)
        return plume.noreply()

    def handle_out(self, event, payload, socket):
        if socket.get("organizer") is True:
            return plume.push_out()
        anonymous = anonymized(payload)
        return plume.drop_out() if anonymous is None else plume.push_out(anonymous)


def anonymized(payload):
    """``donation_created`` with the donor's name hidden; ``None`` (and the
    event is not pushed) when the payload has no donor to hide, so a name
    can never slip through a payload of another shape."""
    try:
        value = payload.json()
    except plume.PayloadError:
        return None
    donation = value.get("donation") if isinstance(value, dict) else None
    if not isinstance(donation, dict) or "donor_name" not in donation:
        return None
    donation["donor_name"] = ANONYMOUS
    return value


def track(socket):
    """Track the user in the topic's presence and push ``presence_state``.
    A server without presence answers ``not-enabled``: the channel works on
    without it."""
    user = user_of(socket)
    if user is None:
        return
    try:
        plume.presence.track(str(user["id"]), {"name": user["name"], "online_at": plume.clock.now_ms() // 1000})
        plume.push("presence_state", plume.presence.list())
    except plume.HostError as e:
        if e.kind != "not-enabled":
            log.warn(f"presence not tracked: {e}")


def new_donation(campaign_id, payload):
    try:
        donation = payload.json()
    except plume.PayloadError:
        return plume.error(reason("invalid payload"))
    if not isinstance(donation, dict):
        # A payload that is no object has no amount.
        donation = {}
    amount = cents.parse_positive(donation.get("amount"))
    if amount is None:
        return plume.error({"errors": {"amount": ["must be greater than 0"]}})
    donor_name = donation.get("donor_name")
    if not isinstance(donor_name, str):
        return plume.error(reason("invalid payload"))

    def give(campaign):
        # No campaign, or a total that would overflow: take nothing.
        if campaign is None or campaign["total"] + amount > cents.MAX:
            return kv.DECLINE
        return {**campaign, "total": campaign["total"] + amount, "donations": campaign["donations"] + 1}

    try:
        given = kv.update(campaign_key(campaign_id), give)
    except plume.HostError as e:
        return plume.error(unavailable("recording a donation", e))
    if not given.written:
        return plume.error(reason("invalid payload"))
    campaign = given.value
    donation_id = str(campaign["donations"])
    created = {
        "donation": {"id": donation_id, "amount": cents.render(amount), "donor_name": donor_name},
        "new_total": cents.render(campaign["total"]),
    }
    try:
        plume.broadcast("donation_created", created)
    except plume.HostError as e:
        log.warn(f"donation_created not broadcast: {e}")
    return plume.ok({"donation_id": donation_id})


def update_goal(campaign_id, organizer, payload):
    if not organizer:
        return plume.error(reason("unauthorized"))
    goal = cents.parse_positive(payload.get("new_goal"))
    if goal is None:
        return plume.error(reason("invalid payload"))
    try:
        updated = kv.update(campaign_key(campaign_id), lambda c: kv.DECLINE if c is None else {**c, "goal": goal})
    except plume.HostError as e:
        return plume.error(unavailable("updating the goal", e))
    if not updated.written:
        return plume.error(reason("invalid payload"))
    try:
        plume.broadcast("goal_updated", {"new_goal": cents.render(goal)})
    except plume.HostError as e:
        log.warn(f"goal_updated not broadcast: {e}")
    return plume.ok({"campaign": view(campaign_id, updated.value)})


ChannelHandler = plume.export(Donations)
