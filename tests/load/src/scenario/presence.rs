//! `presence`: N members join one ChatChannel topic (each tracked in
//! presence), at most `--concurrency` at a time. Each member keeps its own
//! presence list the way phoenix.js does: `presence_state` replaces it,
//! `presence_diff` adds `joins` and removes `leaves`. Reports the time from
//! the first connect until every member's list holds all N members, the
//! presence messages and bytes the members received, and the server's
//! memory before and after.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::Value;
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
    /// presence_state and presence_diff frames the members received.
    presence_messages: u64,
    presence_bytes: u64,
    server_rss_before_bytes: Option<u64>,
    server_rss_after_bytes: Option<u64>,
    cpu: CpuReport,
}

/// What one member saw until its list was complete.
struct Member {
    messages: u64,
    bytes: u64,
    complete_at: Instant,
}

/// The keys of a `{"<key>": {"metas": [...]}}` object.
fn keys(value: &Value) -> impl Iterator<Item = &String> {
    value.as_object().into_iter().flat_map(|map| map.keys())
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
    let mut present: HashSet<String> = HashSet::new();
    let (mut messages, mut bytes) = (0u64, 0u64);
    while present.len() < members {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| ClientError::Timeout("a complete presence list"))?;
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_))) | None => return Err(ClientError::Closed),
            Some(Ok(_)) => continue,
            Some(Err(error)) => return Err(error.into()),
        };
        let Ok(value) = serde_json::from_str::<Value>(&text) else { continue };
        match value[3].as_str() {
            Some("presence_state") => {
                messages += 1;
                bytes += text.len() as u64;
                present = keys(&value[4]).cloned().collect();
            }
            Some("presence_diff") => {
                messages += 1;
                bytes += text.len() as u64;
                present.extend(keys(&value[4]["joins"]).cloned());
                for key in keys(&value[4]["leaves"]) {
                    present.remove(key);
                }
            }
            _ => {}
        }
    }
    let complete_at = Instant::now();
    // Hold the socket until the whole run ends, so members stay present.
    tokio::spawn(async move {
        let _ws = ws;
        tokio::time::sleep_until(deadline).await;
    });
    Ok(Member { messages, bytes, complete_at })
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
    let (mut messages, mut bytes, mut last) = (0, 0, start);
    while let Some(outcome) = run.join_next().await {
        match outcome? {
            Ok(member) => {
                agreed += 1;
                messages += member.messages;
                bytes += member.bytes;
                last = last.max(member.complete_at);
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
        presence_messages: messages,
        presence_bytes: bytes,
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss(target.server_pid),
        cpu,
    };
    let mut summary = format!(
        "presence: {} of {} members agree on {} after {:.2} s; {} presence messages ({} MB) received\n{}",
        result.agreed,
        result.members,
        result.topic,
        result.seconds_to_agreement,
        Count(result.presence_messages as f64),
        result.presence_bytes / 1_000_000,
        result.cpu
    );
    if let (Some(before), Some(after)) = (result.server_rss_before_bytes, result.server_rss_after_bytes) {
        summary.push_str(&format!("\nserver memory {} MB -> {} MB", before / 1_000_000, after / 1_000_000));
    }
    if let Some(failure) = &result.first_failure {
        summary.push_str(&format!("\nproblems: {} members failed ({failure})", result.failed));
    }
    let mut figures = vec![
        Figure::new("seconds_to_agreement", "s", result.seconds_to_agreement),
        Figure::new("presence_messages", "", result.presence_messages as f64),
        Figure::new("agreed", "", result.agreed as f64),
    ];
    figures.extend(cpu_figures(&result.cpu, str::to_owned));
    Outcome::new("presence", &result, figures, summary)
}
