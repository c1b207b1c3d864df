//! GameChannel, for topics `game:<id>`: tic-tac-toe between two players on
//! any two sockets.
//!
//! The game lives in the app's key-value store under `game:<id>` and changes
//! only by compare-and-swap ([`kv::update_json`]), so two channels on two
//! sockets always see one game, and of two moves racing for the same turn
//! exactly one lands.
//!
//! - join with `{"player_token": T}` (a Phoenix.Token, salt `"player"`, at
//!   most an hour old, for a user id or a `{"id", "name"}` map): the first
//!   player is X, the second O; a player keeps their seat on every rejoin; a
//!   third is refused with `game_full`, a bad token with `invalid_token`.
//!   The reply is `{"game": G}` and the others get `player_joined`.
//! - `make_move` `{"move": {"cell": 0..8}}`: broadcasts `move_made`, and
//!   `game_finished` when the move wins or fills the board; no reply on
//!   success. Refused with `invalid_move` (game not playing, cell taken or
//!   off the board) or `not_your_turn`, checked in that order.
//! - `request_game_state`: replies `{"game": G}`.
//! - `send_chat` `{"message": M}`: broadcasts `chat_message`.
//! - leaving or disconnecting broadcasts `player_left` to the others.

mod rules;

use std::time::Duration;

use plume_sdk::{Channel, HandleIn, Join, Payload, Reply, Socket, Value, channel, clock, json, kv, log, token};
use serde::{Deserialize, Serialize};

use rules::{Game, GameFull, MoveError, Status};

/// The salt player tokens are signed with.
const TOKEN_SALT: &str = "player";

/// How old a player token may be.
const TOKEN_MAX_AGE: Duration = Duration::from_secs(3600);

/// The game channel.
pub struct GameChannel;

/// Who plays on this channel: the `player` assign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Identity {
    id: i64,
    name: String,
}

/// The data of a player token: a bare user id or a user map.
#[derive(Deserialize)]
#[serde(untagged)]
enum TokenData {
    Id(i64),
    User { id: i64, name: String },
}

impl From<TokenData> for Identity {
    fn from(data: TokenData) -> Self {
        match data {
            TokenData::Id(id) => Identity {
                id,
                name: format!("user-{id}"),
            },
            TokenData::User { id, name } => Identity { id, name },
        }
    }
}

#[derive(Deserialize)]
struct JoinParams {
    player_token: String,
}

#[derive(Deserialize)]
struct MakeMove {
    /// Any object: its `cell` is judged by the game's rules, after the
    /// game's status and turn.
    #[serde(rename = "move")]
    play: serde_json::Map<String, Value>,
}

#[derive(Deserialize)]
struct SendChat {
    message: String,
}

/// The key-value key of a game.
fn game_key(id: &str) -> String {
    format!("game:{id}")
}

fn reason(reason: &str) -> Value {
    json!({ "reason": reason })
}

/// The store failed: log why, and tell the client to try again.
fn unavailable(what: &str, err: &dyn std::fmt::Display) -> Value {
    log::error(&format!("{what}: {err}"));
    reason("unavailable")
}

impl Channel for GameChannel {
    fn join(topic: &str, payload: Payload, socket: &mut Socket) -> Join {
        let id = topic.strip_prefix("game:").unwrap_or(topic);
        let Some(player) = payload
            .parse::<JoinParams>()
            .ok()
            .and_then(|params| token::verify::<TokenData>(TOKEN_SALT, &params.player_token, Some(TOKEN_MAX_AGE)).ok())
            .map(Identity::from)
        else {
            return Join::error(reason("invalid_token"));
        };

        // The closure may run again on a newer game: it only records what it
        // saw last, which is what was (or was not) written.
        let mut seen: Result<Game, GameFull> = Err(GameFull);
        let seated = kv::update_json(&game_key(id), None, |game: Option<Game>| {
            let mut game = game.unwrap_or_else(|| Game::new(id));
            let changed = game.seat(player.id, &player.name);
            seen = changed.map(|_| game.clone());
            changed.ok().filter(|&changed| changed).map(|_| game)
        });
        if let Err(err) = seated {
            return Join::error(unavailable("seating a player", &err));
        }
        let game = match seen {
            Ok(game) => game,
            Err(GameFull) => return Join::error(reason("game_full")),
        };

        let announced = json!({"player": {"id": player.id, "name": player.name}});
        if let Err(err) = channel::broadcast_from("player_joined", &announced) {
            log::warn(&format!("player_joined not broadcast: {err}"));
        }
        if let Err(err) = socket.assigns_mut().try_assign("player", &player) {
            log::error(&format!("cannot keep the player: {err}"));
        }
        socket.assign("game_id", id);
        Join::ok(json!({ "game": game }))
    }

    fn handle_in(event: &str, payload: Payload, socket: &mut Socket) -> HandleIn {
        let (Some(player), Some(id)) = (socket.get::<Identity>("player"), socket.get::<String>("game_id")) else {
            return HandleIn::stop("the channel lost its player");
        };
        match event {
            "make_move" => make_move(&id, &player, &payload),
            "request_game_state" => match kv::get_json::<Game>(&game_key(&id)) {
                Ok(Some(game)) => Reply::ok(json!({ "game": game })).into(),
                Ok(None) => Reply::error(reason("not_found")).into(),
                Err(err) => Reply::error(unavailable("reading the game", &err)).into(),
            },
            "send_chat" => send_chat(&player, &payload),
            _ => HandleIn::stop(format!("unknown event: {event}")),
        }
    }

    fn terminate(_reason: &str, socket: &Socket) {
        if let Some(player) = socket.get::<Identity>("player")
            && let Err(err) = channel::broadcast_from("player_left", &json!({"player_id": player.id}))
        {
            log::warn(&format!("player_left not broadcast: {err}"));
        }
    }
}

/// Plays a move by compare-and-swap: of two moves racing for one turn, the
/// loser's rules run again on the winner's game and refuse it.
fn make_move(id: &str, player: &Identity, payload: &Payload) -> HandleIn {
    let Ok(MakeMove { play }) = payload.parse() else {
        return Reply::error(reason("invalid payload")).into();
    };
    let cell = play.get("cell").and_then(Value::as_u64);
    let mut refused = MoveError::InvalidMove;
    let played = kv::update_json(&game_key(id), None, |game: Option<Game>| {
        refused = MoveError::InvalidMove;
        let mut game = game?;
        match game.play(player.id, cell) {
            Ok(()) => Some(game),
            Err(why) => {
                refused = why;
                None
            }
        }
    });
    let game = match played {
        Ok(Some(game)) => game,
        Ok(None) => return Reply::error(reason(refused.reason())).into(),
        Err(err) => return Reply::error(unavailable("playing a move", &err)).into(),
    };
    let made = json!({"player_id": player.id, "move": {"cell": cell}, "game": game});
    let mut sent = channel::broadcast("move_made", &made);
    if game.status == Status::Finished {
        let finished = json!({"winner": game.winner, "final_score": game.scores()});
        sent = sent.and(channel::broadcast("game_finished", &finished));
    }
    if let Err(err) = sent {
        log::warn(&format!("a move was played but not broadcast: {err}"));
    }
    HandleIn::NoReply
}

fn send_chat(player: &Identity, payload: &Payload) -> HandleIn {
    let Ok(SendChat { message }) = payload.parse() else {
        return Reply::error(reason("invalid payload")).into();
    };
    let chat = json!({
        "player": {"id": player.id, "name": player.name},
        "message": message,
        "timestamp": clock::now_ms() / 1000,
    });
    if let Err(err) = channel::broadcast("chat_message", &chat) {
        log::warn(&format!("chat_message not broadcast: {err}"));
    }
    HandleIn::NoReply
}

plume_sdk::export_channel!(GameChannel);
