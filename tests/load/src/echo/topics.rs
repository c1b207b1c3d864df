//! Who is joined to which topic.
//!
//! Each topic's members are an immutable, shared list replaced whole on
//! join and leave (copy on write). A broadcast holds the lock only to clone
//! the list's `Arc`, then delivers without it, so broadcasts never wait on
//! each other and joins never wait on a fan-out in progress.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use tokio::sync::{Notify, mpsc};
use tokio_tungstenite::tungstenite::Message;

/// A connection joined to a topic: where its frames go, and how to tell it
/// that it fell too far behind.
#[derive(Clone)]
pub struct Member {
    pub connection: u64,
    pub queue: mpsc::Sender<Message>,
    pub overflow: Arc<Notify>,
}

#[derive(Default)]
pub struct Topics {
    members: RwLock<HashMap<Box<str>, Arc<[Member]>>>,
}

impl Topics {
    pub fn join(&self, topic: &str, member: Member) {
        let mut members = self
            .members
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let joined = match members.get(topic) {
            Some(current) => current.iter().cloned().chain([member]).collect(),
            None => Arc::from([member]),
        };
        members.insert(topic.into(), joined);
    }

    pub fn leave(&self, topic: &str, connection: u64) {
        let mut members = self
            .members
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(current) = members.get(topic) else {
            return;
        };
        let rest: Arc<[Member]> = current
            .iter()
            .filter(|m| m.connection != connection)
            .cloned()
            .collect();
        if rest.is_empty() {
            members.remove(topic);
        } else {
            members.insert(topic.into(), rest);
        }
    }

    pub fn members(&self, topic: &str) -> Option<Arc<[Member]>> {
        let members = self
            .members
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        members.get(topic).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(connection: u64) -> Member {
        let (queue, _) = mpsc::channel(1);
        Member {
            connection,
            queue,
            overflow: Arc::new(Notify::new()),
        }
    }

    #[test]
    fn members_come_and_go() {
        let topics = Topics::default();
        topics.join("room:a", member(1));
        topics.join("room:a", member(2));
        let before = topics.members("room:a").expect("joined");
        topics.leave("room:a", 1);
        let after = topics.members("room:a").expect("one left");
        assert_eq!(
            before.len(),
            2,
            "a broadcast's snapshot does not change under it"
        );
        assert_eq!(
            after.iter().map(|m| m.connection).collect::<Vec<_>>(),
            vec![2]
        );
        topics.leave("room:a", 2);
        assert!(topics.members("room:a").is_none());
    }
}
