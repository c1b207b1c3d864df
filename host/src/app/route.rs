//! Topic routing: which plugin serves which topics.

use std::sync::Arc;

use super::plugin::ChannelPlugin;

/// A topic pattern: `room:*` matches every topic that starts with `room:`;
/// a pattern without a trailing `*` matches that one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicPattern {
    Prefix(String),
    Exact(String),
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> TopicPattern {
        match pattern.strip_suffix('*') {
            Some(prefix) => TopicPattern::Prefix(prefix.to_owned()),
            None => TopicPattern::Exact(pattern.to_owned()),
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicPattern::Prefix(prefix) => topic.starts_with(prefix.as_str()),
            TopicPattern::Exact(exact) => topic == exact,
        }
    }
}

impl std::fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TopicPattern::Prefix(prefix) => write!(f, "{prefix}*"),
            TopicPattern::Exact(exact) => f.write_str(exact),
        }
    }
}

/// A route: topics matching `pattern` are served by `plugin`, which sees
/// `config` through its `plugin-config` import, and keep a history when
/// `history` says so.
#[derive(Clone)]
pub struct Route {
    pub pattern: TopicPattern,
    pub plugin: Arc<ChannelPlugin>,
    pub config: Arc<str>,
    pub history: Option<crate::history::Policy>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_exact_patterns() {
        let room = TopicPattern::parse("room:*");
        assert!(room.matches("room:lobby"));
        assert!(room.matches("room:"));
        assert!(!room.matches("rooms:lobby"));
        let exact = TopicPattern::parse("admin:dashboard");
        assert!(exact.matches("admin:dashboard"));
        assert!(!exact.matches("admin:dashboard2"));
    }
}
