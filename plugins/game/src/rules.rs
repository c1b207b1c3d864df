//! Tic-tac-toe itself: the game as it is stored and sent (`G` in the spec),
//! seating, moves and the end of a game. Pure: no host calls, so every rule
//! is unit-tested natively.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A game, exactly as clients receive it and as the key-value store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Game {
    pub id: String,
    pub status: Status,
    /// X first, then O; a seat is kept for good once taken.
    pub players: Vec<Player>,
    /// The id of the player to move; `None` unless playing.
    pub current_turn: Option<i64>,
    pub board: [Option<Mark>; 9],
    /// The winner's id once finished; `None` for a draw.
    pub winner: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Waiting,
    Playing,
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Mark {
    X,
    O,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Player {
    pub id: i64,
    pub name: String,
    pub score: u32,
    pub mark: Mark,
}

/// Why a join is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GameFull;

/// Why a move is refused, in the order the rules check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveError {
    /// The game is not being played, or the cell is taken or off the board.
    InvalidMove,
    NotYourTurn,
}

impl MoveError {
    /// The reason clients get.
    pub fn reason(self) -> &'static str {
        match self {
            MoveError::InvalidMove => "invalid_move",
            MoveError::NotYourTurn => "not_your_turn",
        }
    }
}

/// The eight lines that win.
const LINES: [[usize; 3]; 8] = [
    [0, 1, 2],
    [3, 4, 5],
    [6, 7, 8],
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
    [0, 4, 8],
    [2, 4, 6],
];

impl Game {
    /// A game nobody has joined yet.
    pub fn new(id: &str) -> Game {
        Game {
            id: id.to_owned(),
            status: Status::Waiting,
            players: Vec::new(),
            current_turn: None,
            board: [None; 9],
            winner: None,
        }
    }

    pub fn is_player(&self, id: i64) -> bool {
        self.players.iter().any(|player| player.id == id)
    }

    /// Seat a player: the first is X, the second O, and the game starts
    /// with X to move. A player who already has a seat keeps it (returns
    /// `Ok(false)`: nothing changed).
    pub fn seat(&mut self, id: i64, name: &str) -> Result<bool, GameFull> {
        if self.is_player(id) {
            return Ok(false);
        }
        let mark = match self.players.len() {
            0 => Mark::X,
            1 => Mark::O,
            _ => return Err(GameFull),
        };
        self.players.push(Player {
            id,
            name: name.to_owned(),
            score: 0,
            mark,
        });
        if self.players.len() == 2 {
            self.status = Status::Playing;
            self.current_turn = Some(self.players[0].id);
        }
        Ok(true)
    }

    /// Player `id` plays `cell` (`None`: not a cell index at all). Checks,
    /// in order: the game is being played, it is `id`'s turn, the cell is
    /// on the board and free. A move that completes a line wins (scoring 1)
    /// and one that fills the board draws; either finishes the game.
    pub fn play(&mut self, id: i64, cell: Option<u64>) -> Result<(), MoveError> {
        if self.status != Status::Playing {
            return Err(MoveError::InvalidMove);
        }
        if self.current_turn != Some(id) {
            return Err(MoveError::NotYourTurn);
        }
        let cell = cell
            .and_then(|cell| usize::try_from(cell).ok())
            .filter(|&cell| cell < self.board.len() && self.board[cell].is_none())
            .ok_or(MoveError::InvalidMove)?;
        let mover = self
            .players
            .iter()
            .position(|player| player.id == id)
            .ok_or(MoveError::NotYourTurn)?;
        self.board[cell] = Some(self.players[mover].mark);
        if winner(&self.board).is_some() {
            self.players[mover].score += 1;
            self.finish(Some(id));
        } else if self.board.iter().all(Option::is_some) {
            self.finish(None);
        } else {
            self.current_turn = self
                .players
                .iter()
                .find(|player| player.id != id)
                .map(|player| player.id);
        }
        Ok(())
    }

    fn finish(&mut self, winner: Option<i64>) {
        self.status = Status::Finished;
        self.current_turn = None;
        self.winner = winner;
    }

    /// Each player's score, keyed by id as text (`final_score`).
    pub fn scores(&self) -> BTreeMap<String, u32> {
        self.players
            .iter()
            .map(|player| (player.id.to_string(), player.score))
            .collect()
    }
}

/// The mark that holds a whole line, if any.
pub fn winner(board: &[Option<Mark>; 9]) -> Option<Mark> {
    LINES.iter().find_map(|&[a, b, c]| match (board[a], board[b], board[c]) {
        (Some(x), Some(y), Some(z)) if x == y && y == z => Some(x),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn playing() -> Game {
        let mut game = Game::new("g1");
        assert_eq!(game.seat(10, "ann"), Ok(true));
        assert_eq!(game.seat(11, "bob"), Ok(true));
        game
    }

    fn board(marks: &str) -> [Option<Mark>; 9] {
        let mut board = [None; 9];
        for (cell, mark) in marks.chars().enumerate() {
            board[cell] = match mark {
                'X' => Some(Mark::X),
                'O' => Some(Mark::O),
                _ => None,
            };
        }
        board
    }

    #[test]
    fn every_line_wins_for_its_mark() {
        for line in LINES {
            for mark in [Mark::X, Mark::O] {
                let mut cells = [None; 9];
                for cell in line {
                    cells[cell] = Some(mark);
                }
                assert_eq!(winner(&cells), Some(mark), "{line:?}");
            }
        }
    }

    #[test]
    fn no_line_no_winner() {
        assert_eq!(winner(&board("---------")), None);
        assert_eq!(winner(&board("XOXXOOOXX")), None);
        assert_eq!(winner(&board("XX-OO----")), None);
        assert_eq!(winner(&board("XOX------")), None);
    }

    #[test]
    fn the_first_player_is_x_and_the_game_starts_with_the_second() {
        let mut game = Game::new("g1");
        game.seat(10, "ann").unwrap();
        assert_eq!(game.status, Status::Waiting);
        assert_eq!(game.current_turn, None);
        game.seat(11, "bob").unwrap();
        assert_eq!(game.status, Status::Playing);
        assert_eq!(game.current_turn, Some(10));
        assert_eq!(game.players[0].mark, Mark::X);
        assert_eq!(game.players[1].mark, Mark::O);
    }

    #[test]
    fn a_player_keeps_their_seat_and_a_third_is_refused() {
        let mut game = playing();
        assert_eq!(game.seat(11, "bob"), Ok(false));
        assert_eq!(game.seat(12, "user-12"), Err(GameFull));
        assert_eq!(game.players.len(), 2);
    }

    #[test]
    fn moves_are_checked_in_the_spec_order() {
        let mut waiting = Game::new("g1");
        waiting.seat(10, "ann").unwrap();
        assert_eq!(waiting.play(10, Some(0)), Err(MoveError::InvalidMove));

        let mut game = playing();
        assert_eq!(game.play(11, Some(99)), Err(MoveError::NotYourTurn));
        assert_eq!(game.play(10, Some(9)), Err(MoveError::InvalidMove));
        assert_eq!(game.play(10, None), Err(MoveError::InvalidMove));
        assert_eq!(game.play(10, Some(0)), Ok(()));
        assert_eq!(game.play(11, Some(0)), Err(MoveError::InvalidMove));
        assert_eq!(game.current_turn, Some(11));
    }

    #[test]
    fn a_refused_move_changes_nothing() {
        let mut game = playing();
        game.play(10, Some(4)).unwrap();
        let before = game.clone();
        for (player, cell) in [(10, Some(0)), (11, Some(4)), (11, Some(9)), (11, None), (12, Some(1))] {
            assert!(game.play(player, cell).is_err());
            assert_eq!(game, before);
        }
    }

    #[test]
    fn completing_a_line_wins_and_scores_one() {
        let mut game = playing();
        for (player, cell) in [(10, 0), (11, 3), (10, 1), (11, 4), (10, 2)] {
            game.play(player, Some(cell)).unwrap();
        }
        assert_eq!(game.status, Status::Finished);
        assert_eq!(game.winner, Some(10));
        assert_eq!(game.current_turn, None);
        assert_eq!(
            game.scores(),
            BTreeMap::from([("10".to_owned(), 1), ("11".to_owned(), 0)])
        );
        assert_eq!(game.play(11, Some(5)), Err(MoveError::InvalidMove));
    }

    #[test]
    fn filling_the_board_without_a_line_is_a_draw() {
        let mut game = playing();
        for (i, cell) in [0, 1, 2, 4, 3, 5, 7, 6, 8].into_iter().enumerate() {
            let player = if i % 2 == 0 { 10 } else { 11 };
            game.play(player, Some(cell)).unwrap();
        }
        assert_eq!(game.status, Status::Finished);
        assert_eq!(game.winner, None);
        assert!(game.players.iter().all(|player| player.score == 0));
    }

    #[test]
    fn a_game_serializes_as_the_spec_shows() {
        let mut game = playing();
        game.play(10, Some(0)).unwrap();
        let json = plume_sdk::json!(game).to_string();
        assert_eq!(
            json,
            r#"{"board":["X",null,null,null,null,null,null,null,null],"current_turn":11,"id":"g1","players":[{"id":10,"mark":"X","name":"ann","score":0},{"id":11,"mark":"O","name":"bob","score":0}],"status":"playing","winner":null}"#
        );
    }
}
