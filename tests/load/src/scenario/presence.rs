//! `presence`: N members join one ChatChannel topic (each tracked in
//! presence), at most `--concurrency` at a time. Each member keeps its own
//! presence list the way phoenix.js does: `presence_state` replaces it,
//! `presence_diff` adds `joins` and removes `leaves`. Reports the time from
//! the first connect until every member's list holds all N members, the
//! presence messages and bytes the members received, and the server's
//! memory before and after.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::de::IgnoredAny;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{ClientError, Target};
use crate::process::{self, CpuMeter, CpuReport};
use crate::report::{Count, Figure, Outcome, cpu_figures};
use crate::wire;

#[derive(Debug, Clone, clap::Args)]
pub struct PresenceArgs {
    /// Members that join the topic.
    #[arg(long, default_value_t = 2000, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=19_000))]
    pub members: usize,
    /// Handshakes and joins in flight at once.
    #[arg(long, default_value_t = 256, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=19_000))]
    pub concurrency: usize,
    /// The chat topic.
    #[arg(long, default_value = "chat:presence-bench")]
    pub topic: String,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_seconds: u64,
}

#[derive(Serialize)]
struct PresenceResult {
    members: usize,
    topic: String,
    /// Members whose list held every member before the timeout.
    agreed: usize,
    failed: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_failure: Option<String>,
    /// From the first connect until the last member's list was complete.
    seconds_to_agreement: f64,
    /// From the last join's reply until the last member's list was
    /// complete.
    seconds_after_last_join: f64,
    /// presence_state and presence_diff frames the members received.
    presence_messages: u64,
    presence_bytes: u64,
    server_rss_before_bytes: Option<u64>,
    server_rss_after_bytes: Option<u64>,
    /// The server's most resident memory since it started.
    server_rss_peak_bytes: Option<u64>,
    cpu: CpuReport,
}

/// A member's list of presence keys: the keys that are numbers (the chat's
/// user ids) as bits, any other in a set. 10,000 members each holding
/// 10,000 keys as strings took the tool 10 GB, and its allocator's time.
#[derive(Default)]
struct Present {
    ids: Vec<u64>,
    others: HashSet<String>,
    len: usize,
}

impl Present {
    /// Keys up to this number are kept as bits.
    const MAX_ID: usize = 1 << 24;

    fn bit(key: &str) -> Option<(usize, u64)> {
        let id: usize = key.parse().ok().filter(|id| *id < Self::MAX_ID && !key.starts_with('0') || key == "0")?;
        Some((id / 64, 1 << (id % 64)))
    }

    fn insert(&mut self, key: &str) {
        let added = match Self::bit(key) {
            Some((word, bit)) => {
                if word >= self.ids.len() {
                    self.ids.resize(word + 1, 0);
                }
                let added = self.ids[word] & bit == 0;
                self.ids[word] |= bit;
                added
            }
            None => self.others.insert(key.to_owned()),
        };
        self.len += usize::from(added);
    }

    fn remove(&mut self, key: &str) {
        let removed = match Self::bit(key) {
            Some((word, bit)) => {
                let removed = self.ids.get(word).is_some_and(|w| w & bit != 0);
                if removed {
                    self.ids[word] &= !bit;
                }
                removed
            }
            None => self.others.remove(key),
        };
        self.len -= usize::from(removed);
    }

    fn len(&self) -> usize {
        self.len
    }

    /// Remove every key of `other`.
    fn remove_all(&mut self, other: &Present) {
        for (word, bits) in self.ids.iter_mut().zip(&other.ids) {
            self.len -= (*word & bits).count_ones() as usize;
            *word &= !bits;
        }
        for key in &other.others {
            self.remove(key);
        }
    }
}

/// phoenix.js's heartbeat interval.
const HEARTBEAT: Duration = Duration::from_secs(30);

/// What one member saw until its list was complete.
struct Member {
    messages: u64,
    bytes: u64,
    /// When its join was answered.
    joined_at: Instant,
    complete_at: Instant,
}

/// What a frame was to a member.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A `presence_state`: the list was replaced.
    State,
    /// A `presence_diff`: its joins and leaves were applied.
    Diff,
    /// The join's reply.
    Reply,
    Other,
}

/// Reads one V2 frame `[join_ref, ref, topic, event, payload]` into a
/// member's list: for presence events only the keys are read, straight
/// into the list, and the metas are skipped unparsed. A 10,000-member run
/// moves gigabytes of them through the tool, on the cores the server uses:
/// a tool that built a map (or a JSON tree) of every frame would measure
/// itself rather than the server. Every other event is skipped.
struct FrameSeed<'p>(&'p mut Present);

impl<'de> serde::de::DeserializeSeed<'de> for FrameSeed<'_> {
    type Value = Read;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Read, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> serde::de::Visitor<'de> for FrameSeed<'_> {
    type Value = Read;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a V2 frame [join_ref, ref, topic, event, payload]")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Read, A::Error> {
        for _ in 0..3 {
            seq.next_element::<IgnoredAny>()?;
        }
        // Event names carry no escapes, so they are borrowed from the frame.
        let event: Option<&'de str> = seq.next_element()?;
        let read = match event {
            Some("presence_state") => {
                *self.0 = Present::default();
                seq.next_element_seed(KeysSeed(self.0, Apply::Insert))?;
                Read::State
            }
            Some("presence_diff") => {
                seq.next_element_seed(DiffSeed(self.0))?;
                Read::Diff
            }
            Some("phx_reply") => Read::Reply,
            _ => Read::Other,
        };
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(read)
    }
}

#[derive(Clone, Copy)]
enum Apply {
    Insert,
    Remove,
}

/// The keys of an object of presences, applied to a list as they are read.
struct KeysSeed<'p>(&'p mut Present, Apply);

impl<'de> serde::de::DeserializeSeed<'de> for KeysSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for KeysSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object of presences")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match self.1 {
                Apply::Insert => self.0.insert(&key),
                Apply::Remove => self.0.remove(&key),
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }
}

/// A `presence_diff` payload `{"joins": {...}, "leaves": {...}}`, applied
/// as phoenix.js applies it: joins first, then leaves (whichever the frame
/// lists first).
struct DiffSeed<'p>(&'p mut Present);

impl<'de> serde::de::DeserializeSeed<'de> for DiffSeed<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for DiffSeed<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a presence diff")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // Leaves read before the joins wait for them; normally none.
        let mut leaves = Present::default();
        let mut joined = false;
        while let Some(field) = map.next_key::<Cow<'de, str>>()? {
            match &*field {
                "joins" => {
                    map.next_value_seed(KeysSeed(self.0, Apply::Insert))?;
                    joined = true;
                }
                "leaves" if joined => map.next_value_seed(KeysSeed(self.0, Apply::Remove))?,
                "leaves" => map.next_value_seed(KeysSeed(&mut leaves, Apply::Insert))?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        self.0.remove_all(&leaves);
        Ok(())
    }
}

async fn member(target: Arc<Target>, gate: Arc<Semaphore>, index: usize, topic: Arc<str>, members: usize, deadline: Instant) -> Result<Member, ClientError> {
    let user = index as u64 + 1;
    let mut ws = {
        let _permit = gate.acquire().await;
        let url = target.socket_url(user)?;
        let mut ws = target.open(index, &url).await?;
        let payload = serde_json::json!({ "token": target.user_token(user)? }).to_string();
        ws.send(Message::text(wire::push(Some(wire::JOIN_REF), wire::JOIN_REF, &topic, "phx_join", &payload)))
            .await?;
        ws
    };
    // Joins that the server answered with presence_diff are counted as soon
    // as they arrive; `leaves` cannot happen here, but are applied anyway.
    let mut present = Present::default();
    let (mut messages, mut bytes) = (0u64, 0u64);
    let mut joined_at = Instant::now();
    let mut heartbeat = tokio::time::interval_at(Instant::now() + HEARTBEAT, HEARTBEAT);
    while present.len() < members {
        // A heartbeat every 30 s, as phoenix.js sends, so that a long run
        // is not closed as idle.
        let frame = tokio::select! {
            frame = tokio::time::timeout_at(deadline, ws.next()) => frame.map_err(|_| ClientError::Timeout("a complete presence list"))?,
            _ = heartbeat.tick() => {
                ws.send(Message::text(wire::heartbeat(wire::JOIN_REF + 1))).await?;
                continue;
            }
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
        };
        let mut reader = serde_json::Deserializer::from_str(&text);
        let Ok(read) = serde::de::DeserializeSeed::deserialize(FrameSeed(&mut present), &mut reader) else { continue };
        match read {
            Read::State | Read::Diff => {
                messages += 1;
                bytes += text.len() as u64;
            }
            Read::Reply => joined_at = Instant::now(),
            Read::Other => {}
        }
    }
    let complete_at = Instant::now();
    // Hold the socket until the whole run ends, so members stay present,
    // reading on as phoenix.js does: a member that stopped reading would
    // fill its socket's buffers with later joiners' pushes until the server
    // closed it as a slow reader, and its leave would undo the others'
    // lists.
    tokio::spawn(async move {
        let read_on = async {
            loop {
                tokio::select! {
                    frame = ws.next() => if !matches!(frame, Some(Ok(_))) { break },
                    _ = heartbeat.tick() => if ws.send(Message::text(wire::heartbeat(wire::JOIN_REF + 1))).await.is_err() { break },
                }
            }
        };
        let _ = tokio::time::timeout_at(deadline, read_on).await;
    });
    Ok(Member {
        messages,
        bytes,
        joined_at,
        complete_at,
    })
}

pub async fn run(args: &PresenceArgs, target: Arc<Target>) -> anyhow::Result<Outcome> {
    let rss = |pid: Option<u32>| pid.and_then(|pid| process::rss_bytes(pid).ok());
    let rss_before = rss(target.server_pid);
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let topic: Arc<str> = args.topic.as_str().into();
    let meter = CpuMeter::start(target.server_pid.as_slice())?;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(args.timeout_seconds);
    let mut run = JoinSet::new();
    for index in 0..args.members {
        run.spawn(member(target.clone(), gate.clone(), index, topic.clone(), args.members, deadline));
    }
    let (mut agreed, mut failed, mut first_failure) = (0, 0, None);
    let (mut messages, mut bytes, mut last, mut last_join) = (0, 0, start, start);
    while let Some(outcome) = run.join_next().await {
        match outcome? {
            Ok(member) => {
                agreed += 1;
                messages += member.messages;
                bytes += member.bytes;
                last = last.max(member.complete_at);
                last_join = last_join.max(member.joined_at);
            }
            Err(error) => {
                failed += 1;
                first_failure.get_or_insert_with(|| error.to_string());
            }
        }
    }
    let cpu = meter.stop()?;
    let result = PresenceResult {
        members: args.members,
        topic: args.topic.clone(),
        agreed,
        failed,
        first_failure,
        seconds_to_agreement: (last - start).as_secs_f64(),
        seconds_after_last_join: last.saturating_duration_since(last_join).as_secs_f64(),
        presence_messages: messages,
        presence_bytes: bytes,
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss(target.server_pid),
        server_rss_peak_bytes: target.server_pid.and_then(|pid| process::peak_rss_bytes(pid).ok()),
        cpu,
    };
    let mut summary = format!(
        "presence: {} of {} members agree on {} after {:.2} s ({:.2} s after the last join); {} presence messages ({} MB) received\n{}",
        result.agreed,
        result.members,
        result.topic,
        result.seconds_to_agreement,
        result.seconds_after_last_join,
        Count(result.presence_messages as f64),
        result.presence_bytes / 1_000_000,
        result.cpu
    );
    if let (Some(before), Some(after)) = (result.server_rss_before_bytes, result.server_rss_after_bytes) {
        summary.push_str(&format!("\nserver memory {} MB -> {} MB", before / 1_000_000, after / 1_000_000));
        if let Some(peak) = result.server_rss_peak_bytes {
            summary.push_str(&format!(" (peak {} MB)", peak / 1_000_000));
        }
    }
    if let Some(failure) = &result.first_failure {
        summary.push_str(&format!("\nproblems: {} members failed ({failure})", result.failed));
    }
    let mut figures = vec![
        Figure::new("seconds_to_agreement", "s", result.seconds_to_agreement),
        Figure::new("seconds_after_last_join", "s", result.seconds_after_last_join),
        Figure::new("presence_messages", "", result.presence_messages as f64),
        Figure::new("agreed", "", result.agreed as f64),
    ];
    figures.extend(cpu_figures(&result.cpu, str::to_owned));
    Outcome::new("presence", &result, figures, summary)
}

#[cfg(test)]
mod present_tests {
    use super::{FrameSeed, Present, Read};

    fn read(present: &mut Present, frame: &str) -> Read {
        let mut reader = serde_json::Deserializer::from_str(frame);
        serde::de::DeserializeSeed::deserialize(FrameSeed(present), &mut reader).expect("a frame")
    }

    #[test]
    fn frames_apply_their_keys_as_phoenix_js_does() {
        let mut present = Present::default();
        let meta = r#"{"metas":[{"phx_ref":"F1","online_at":1,"name":"a \"b\""}]}"#;
        present.insert("99");
        let state = format!(r#"["1",null,"chat:x","presence_state",{{"1":{meta},"2":{meta},"al\u0069ce":{meta}}}]"#);
        assert_eq!(read(&mut present, &state), Read::State);
        assert_eq!(present.len(), 3, "the state replaces the list");
        // Leaves listed before joins still apply after them.
        let diff = format!(r#"["1",null,"chat:x","presence_diff",{{"leaves":{{"2":{meta},"3":{meta}}},"joins":{{"3":{meta},"4":{meta}}}}}]"#);
        assert_eq!(read(&mut present, &diff), Read::Diff);
        let mut expected = Present::default();
        for key in ["1", "alice", "4"] {
            expected.insert(key);
        }
        assert_eq!(present.len(), 3);
        expected.remove_all(&present);
        assert_eq!(expected.len(), 0, "1, alice and 4 are present");
        assert_eq!(read(&mut present, r#"["1",null,"chat:x","user_joined",{"user":{"id":5}}]"#), Read::Other);
        assert_eq!(read(&mut present, r#"["1","1","chat:x","phx_reply",{"status":"ok","response":{}}]"#), Read::Reply);
        assert_eq!(present.len(), 3);
    }

    #[test]
    fn keys_count_once_whether_numbers_or_not() {
        let mut present = Present::default();
        for key in ["1", "2", "1", "alice", "alice", "007", "0", "99999999"] {
            present.insert(key);
        }
        // 1, 2, alice, 007 (kept as text: it is no canonical number), 0, 99999999.
        assert_eq!(present.len(), 6);
        present.remove("2");
        present.remove("2");
        present.remove("alice");
        present.remove("3");
        assert_eq!(present.len(), 4);
        present.insert("2");
        assert_eq!(present.len(), 5);
    }
}
