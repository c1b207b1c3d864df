//! The durable engine: every namespace in one redb file on disk, so games,
//! totals and bans outlive a restart.
//!
//! Each write is one redb transaction committed with immediate durability
//! before the write is acknowledged: an acknowledged write survives a clean
//! shutdown, and a crash too. The version counter lives in the same file and
//! is bumped in the same transaction as the write it stamps, so versions keep
//! growing across restarts and compare-and-swap stays immune to ABA.
//!
//! Expiry uses wall-clock time (Unix milliseconds), the only clock that
//! means something to the next process. Expired keys are invisible at once;
//! [`RedbEngine::sweep`] removes them through an index of each namespace's
//! keys ordered by expiry, so a sweep with nothing to do reads a row per
//! namespace and writes nothing.
//!
//! Each namespace's key and byte counts are kept in the file by the writes
//! themselves, so a quota check reads one row (and the namespace's keys that
//! expired since the last sweep), however many keys the namespace holds.

use std::path::Path;
use std::time::Duration;

use ::redb::{Database, ReadableDatabase, ReadableTable, Table, TableDefinition, TableHandle, WriteTransaction};

use super::{Entry, KvEngine, KvError, Usage};

/// `(namespace, key)` → `(version, expires at in Unix ms or 0 for never, value)`.
const ENTRIES: TableDefinition<(&str, &str), (u64, u64, &str)> = TableDefinition::new("entries");

/// `(namespace, expires at, key)` for every key with a ttl, a namespace's
/// keys in the order they expire: what a sweep walks, and what a quota check
/// reads for the keys expired since the last sweep (its own namespace's
/// only, however many other namespaces hold).
const EXPIRIES: TableDefinition<(&str, u64, &str), ()> = TableDefinition::new("expiries_by_namespace");

/// The expiry index as plumes before the per-namespace one kept it,
/// `(expires at, namespace, key)`: moved into [`EXPIRIES`] when such a file
/// is opened.
const EXPIRIES_BEFORE: TableDefinition<(u64, &str, &str), ()> = TableDefinition::new("expiries");

/// Engine-wide counters; `version` is the last version handed out.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const VERSION: &str = "version";
/// Set once [`USAGE`] counts every entry of the file (a file written by a
/// plume before the counts were kept is counted once when opened).
const USAGE_COUNTED: &str = "usage_counted";

/// `namespace` → `(keys, bytes of keys and values)` of every entry stored,
/// expired or not, kept by every write: what a quota check reads, instead
/// of scanning the namespace.
const USAGE: TableDefinition<&str, (u64, u64)> = TableDefinition::new("usage");

/// Most expired keys one sweep removes, so a sweep never holds the writer
/// for long; the next sweep takes the rest.
const SWEEP_BATCH: usize = 10_000;

/// Every redb failure reaches plugins as `unavailable`, with redb's text.
macro_rules! unavailable_from {
    ($($error:ty),+) => {
        $(impl From<$error> for KvError {
            fn from(error: $error) -> Self {
                KvError::Unavailable(error.to_string())
            }
        })+
    };
}

unavailable_from!(
    ::redb::Error,
    ::redb::DatabaseError,
    ::redb::TransactionError,
    ::redb::TableError,
    ::redb::StorageError,
    ::redb::CommitError
);

/// The key-value store in one redb file.
pub struct RedbEngine {
    db: Database,
}

/// A stored entry as read inside a transaction.
struct Stored {
    version: u64,
    expires_at: u64,
    value: String,
}

impl Stored {
    fn live(&self, now: u64) -> bool {
        self.expires_at == 0 || self.expires_at > now
    }

    fn entry(self) -> Entry {
        Entry {
            value: self.value,
            version: self.version,
        }
    }
}

impl RedbEngine {
    /// Open the store at `path`, creating the file if it does not exist.
    /// Fails when the file is not a redb file or another process has it open.
    pub fn open(path: &Path) -> Result<RedbEngine, KvError> {
        let db = Database::create(path).map_err(|e| {
            KvError::Unavailable(format!(
                "cannot open the key-value file {}: {e} (is another plume using it? does its folder exist?)",
                path.display()
            ))
        })?;
        let txn = db.begin_write()?;
        index_by_namespace(&txn)?;
        count_once(&txn)?;
        txn.commit()?;
        Ok(RedbEngine { db })
    }

    /// Run `f` in a write transaction; it is committed (durably) when `f`
    /// says it wrote, and aborted otherwise, so a refused compare-and-swap
    /// costs no disk write.
    fn write<R>(&self, f: impl FnOnce(&mut Writer<'_>) -> Result<(R, bool), KvError>) -> Result<R, KvError> {
        let txn = self.db.begin_write()?;
        let (result, wrote) = {
            let mut writer = Writer::open(&txn)?;
            f(&mut writer)?
        };
        if wrote {
            txn.commit()?;
        } else {
            txn.abort()?;
        }
        Ok(result)
    }
}

/// Move a file's expiry index from the layout of earlier plumes, if it has
/// one, into [`EXPIRIES`] (which this creates).
fn index_by_namespace(txn: &WriteTransaction) -> Result<(), KvError> {
    let mut expiries = txn.open_table(EXPIRIES)?;
    if !txn.list_tables()?.any(|table| table.name() == EXPIRIES_BEFORE.name()) {
        return Ok(());
    }
    {
        let before = txn.open_table(EXPIRIES_BEFORE)?;
        for row in before.iter()? {
            let (index, _) = row?;
            let (expires_at, ns, key) = index.value();
            expiries.insert((ns, expires_at, key), ())?;
        }
    }
    txn.delete_table(EXPIRIES_BEFORE)?;
    Ok(())
}

/// Fill [`USAGE`] from the entries, unless it was already: once per file.
fn count_once(txn: &WriteTransaction) -> Result<(), KvError> {
    let mut meta = txn.open_table(META)?;
    let mut usage = txn.open_table(USAGE)?;
    let entries = txn.open_table(ENTRIES)?;
    if meta.get(USAGE_COUNTED)?.is_some() {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let mut counts: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
    for row in entries.iter()? {
        let (key, stored) = row?;
        let (ns, key) = key.value();
        let (_, _, value) = stored.value();
        let count = counts.entry(ns.to_owned()).or_default();
        count.0 += 1;
        count.1 += size(key, value);
    }
    for (ns, count) in &counts {
        usage.insert(ns.as_str(), *count)?;
    }
    meta.insert(USAGE_COUNTED, 1)?;
    if !counts.is_empty() {
        tracing::info!(
            namespaces = counts.len(),
            keys = counts.values().map(|count| count.0).sum::<u64>(),
            took = ?started.elapsed(),
            "counted the key-value file's keys for the quotas (once: the file was written by an earlier plume)"
        );
    }
    Ok(())
}

/// What a stored key counts against its namespace's byte quota.
fn size(key: &str, value: &str) -> u64 {
    (key.len() + value.len()) as u64
}

/// The tables of one write transaction.
struct Writer<'t> {
    entries: Table<'t, (&'static str, &'static str), (u64, u64, &'static str)>,
    expiries: Table<'t, (&'static str, u64, &'static str), ()>,
    meta: Table<'t, &'static str, u64>,
    usage: Table<'t, &'static str, (u64, u64)>,
    now: u64,
}

impl<'t> Writer<'t> {
    fn open(txn: &'t WriteTransaction) -> Result<Writer<'t>, KvError> {
        Ok(Writer {
            entries: txn.open_table(ENTRIES)?,
            expiries: txn.open_table(EXPIRIES)?,
            meta: txn.open_table(META)?,
            usage: txn.open_table(USAGE)?,
            now: crate::clock::unix_ms(),
        })
    }

    /// The entry under the key, expired or not.
    fn stored(&self, ns: &str, key: &str) -> Result<Option<Stored>, KvError> {
        Ok(self.entries.get((ns, key))?.map(|guard| {
            let (version, expires_at, value) = guard.value();
            Stored {
                version,
                expires_at,
                value: value.to_owned(),
            }
        }))
    }

    /// The live entry under the key.
    fn current(&self, ns: &str, key: &str) -> Result<Option<Stored>, KvError> {
        Ok(self.stored(ns, key)?.filter(|stored| stored.live(self.now)))
    }

    fn next_version(&mut self) -> Result<u64, KvError> {
        let last = self.meta.get(VERSION)?.map_or(0, |guard| guard.value());
        let version = last + 1;
        self.meta.insert(VERSION, version)?;
        Ok(version)
    }

    /// Write the key with a fresh version, replacing whatever was there
    /// (and its place in the expiry index).
    fn put(&mut self, ns: &str, key: &str, value: &str, ttl: Option<Duration>) -> Result<u64, KvError> {
        let old = self.stored(ns, key)?;
        if let Some(old) = &old
            && old.expires_at != 0
        {
            self.expiries.remove((ns, old.expires_at, key))?;
        }
        let version = self.next_version()?;
        let expires_at = ttl.map_or(0, |ttl| {
            self.now
                .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX))
                .max(1)
        });
        self.entries.insert((ns, key), (version, expires_at, value))?;
        if expires_at != 0 {
            self.expiries.insert((ns, expires_at, key), ())?;
        }
        match old {
            Some(old) => self.count(ns, 0, size(key, &old.value), size(key, value))?,
            None => self.count(ns, 1, 0, size(key, value))?,
        }
        Ok(version)
    }

    /// Remove the key, expired or not; returns what was stored.
    fn remove(&mut self, ns: &str, key: &str) -> Result<Option<Stored>, KvError> {
        let Some(stored) = self.stored(ns, key)? else {
            return Ok(None);
        };
        self.forget(ns, key, &stored)?;
        Ok(Some(stored))
    }

    /// Remove `stored`, just read under the key, with its place in the
    /// expiry index and its counts.
    fn forget(&mut self, ns: &str, key: &str, stored: &Stored) -> Result<(), KvError> {
        if stored.expires_at != 0 {
            self.expiries.remove((ns, stored.expires_at, key))?;
        }
        self.entries.remove((ns, key))?;
        self.count(ns, -1, size(key, &stored.value), 0)
    }

    /// Move the namespace's counts by `keys` (one in, none, or one out)
    /// and its bytes from `before` to `after`; its row goes with its last
    /// key.
    fn count(&mut self, ns: &str, keys: i64, before: u64, after: u64) -> Result<(), KvError> {
        let (count, bytes) = self.usage.get(ns)?.map_or((0, 0), |guard| guard.value());
        let count = count.saturating_add_signed(keys);
        if count == 0 {
            self.usage.remove(ns)?;
        } else {
            self.usage.insert(ns, (count, (bytes + after).saturating_sub(before)))?;
        }
        Ok(())
    }
}

impl KvEngine for RedbEngine {
    fn get(&self, ns: &str, key: &str) -> Result<Option<Entry>, KvError> {
        let now = crate::clock::unix_ms();
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let found = entries.get((ns, key))?.and_then(|guard| {
            let (version, expires_at, value) = guard.value();
            let stored = Stored {
                version,
                expires_at,
                value: value.to_owned(),
            };
            stored.live(now).then(|| stored.entry())
        });
        Ok(found)
    }

    fn set(&self, ns: &str, key: &str, value: String, ttl: Option<Duration>) -> Result<u64, KvError> {
        self.write(|w| Ok((w.put(ns, key, &value, ttl)?, true)))
    }

    fn delete(&self, ns: &str, key: &str) -> Result<bool, KvError> {
        self.write(|w| {
            let removed = w.remove(ns, key)?;
            let live = removed.as_ref().is_some_and(|stored| stored.live(w.now));
            Ok((live, removed.is_some()))
        })
    }

    fn compare_and_swap(
        &self,
        ns: &str,
        key: &str,
        expected: Option<u64>,
        value: String,
        ttl: Option<Duration>,
    ) -> Result<Option<u64>, KvError> {
        self.write(|w| {
            let version = w.current(ns, key)?.map(|stored| stored.version);
            if version != expected {
                return Ok((None, false));
            }
            Ok((Some(w.put(ns, key, &value, ttl)?), true))
        })
    }

    fn increment(&self, ns: &str, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64, KvError> {
        self.write(|w| {
            let stored = w.current(ns, key)?;
            let sum = super::incremented(stored.as_ref().map(|stored| stored.value.as_str()), delta)?;
            w.put(ns, key, &sum.to_string(), ttl)?;
            Ok((sum, true))
        })
    }

    fn list_by_prefix(&self, ns: &str, prefix: &str, limit: usize) -> Result<Vec<(String, Entry)>, KvError> {
        let now = crate::clock::unix_ms();
        let txn = self.db.begin_read()?;
        let entries = txn.open_table(ENTRIES)?;
        let mut found = Vec::new();
        for row in entries.range((ns, prefix)..)? {
            if found.len() >= limit {
                break;
            }
            let (key, stored) = row?;
            let (key_ns, key) = key.value();
            if key_ns != ns || !key.starts_with(prefix) {
                break;
            }
            let (version, expires_at, value) = stored.value();
            let stored = Stored {
                version,
                expires_at,
                value: value.to_owned(),
            };
            if stored.live(now) {
                found.push((key.to_owned(), stored.entry()));
            }
        }
        Ok(found)
    }

    fn usage(&self, ns: &str) -> Result<Usage, KvError> {
        let now = crate::clock::unix_ms();
        let txn = self.db.begin_read()?;
        let (mut keys, mut bytes) = txn.open_table(USAGE)?.get(ns)?.map_or((0, 0), |guard| guard.value());
        // The counts hold every stored key; those that expired and no sweep
        // has removed yet are taken out here. The sweep keeps them few.
        let expiries = txn.open_table(EXPIRIES)?;
        let entries = txn.open_table(ENTRIES)?;
        for row in expiries.range((ns, 0, "")..(ns, now.saturating_add(1), ""))? {
            let (index, _) = row?;
            let (_, expires_at, key) = index.value();
            if let Some(guard) = entries.get((ns, key))? {
                let (_, stored_expires_at, value) = guard.value();
                if stored_expires_at == expires_at {
                    keys = keys.saturating_sub(1);
                    bytes = bytes.saturating_sub(size(key, value));
                }
            }
        }
        Ok(Usage { keys, bytes })
    }

    fn sweep(&self) -> usize {
        match self.sweep_expired() {
            Ok(removed) => removed,
            Err(error) => {
                tracing::warn!(%error, "sweeping expired keys failed; the next sweep retries");
                0
            }
        }
    }
}

impl RedbEngine {
    /// Remove keys whose expiry has passed, at most [`SWEEP_BATCH`] a call.
    fn sweep_expired(&self) -> Result<usize, KvError> {
        let now = crate::clock::unix_ms();
        let due = {
            let txn = self.db.begin_read()?;
            let expiries = txn.open_table(EXPIRIES)?;
            // Every namespace that holds a key has a row of counts.
            let usage = txn.open_table(USAGE)?;
            let mut due = Vec::new();
            'namespaces: for row in usage.iter()? {
                let (ns, _) = row?;
                let ns = ns.value();
                for row in expiries.range((ns, 0, "")..(ns, now.saturating_add(1), ""))? {
                    let (index, _) = row?;
                    let (_, expires_at, key) = index.value();
                    due.push((expires_at, ns.to_owned(), key.to_owned()));
                    if due.len() >= SWEEP_BATCH {
                        break 'namespaces;
                    }
                }
            }
            due
        };
        if due.is_empty() {
            return Ok(0);
        }
        self.write(|w| {
            let mut removed = 0;
            for (expires_at, ns, key) in &due {
                w.expiries.remove((ns.as_str(), *expires_at, key.as_str()))?;
                // The key may have been written again since the read above.
                if let Some(stored) = w.stored(ns, key)?
                    && !stored.live(w.now)
                {
                    w.forget(ns, key, &stored)?;
                    removed += 1;
                }
            }
            Ok((removed, true))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::conformance;
    use std::path::PathBuf;

    /// A fresh database file, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str) -> TempFile {
            let path = std::env::temp_dir().join(format!("plume-kv-{name}-{}.redb", std::process::id()));
            let _ = std::fs::remove_file(&path);
            TempFile(path)
        }

        fn open(&self) -> RedbEngine {
            RedbEngine::open(&self.0).expect("the file opens")
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn compare_and_swap_accepts_only_the_current_version() {
        let file = TempFile::new("compare_and_");
        conformance::compare_and_swap_accepts_only_the_current_version(&file.open());
    }

    #[test]
    fn a_recreated_key_never_reuses_a_version() {
        let file = TempFile::new("a_recreated_");
        conformance::a_recreated_key_never_reuses_a_version(&file.open());
    }

    #[test]
    fn values_and_versions_survive_reopening() {
        let file = TempFile::new("reopen");
        let (v1, v2) = {
            let kv = file.open();
            let v1 = kv.set("a", "game:1", "board".into(), None).unwrap();
            let v2 = kv.set("a", "banned:9", "{}".into(), Some(Duration::from_secs(3600))).unwrap();
            (v1, v2)
        };
        let kv = file.open();
        assert_eq!(
            kv.get("a", "game:1"),
            Ok(Some(Entry {
                value: "board".into(),
                version: v1
            }))
        );
        assert_eq!(kv.get("a", "banned:9").unwrap().map(|e| e.version), Some(v2));
        let v3 = kv.set("a", "other", "x".into(), None).unwrap();
        assert!(v3 > v2, "the version counter goes on from where it was");
    }

    #[test]
    fn namespaces_are_separate() {
        let file = TempFile::new("namespaces_a");
        conformance::namespaces_are_separate(&file.open());
    }

    #[test]
    fn ttl_hides_and_sweep_removes() {
        let file = TempFile::new("ttl_hides_an");
        conformance::ttl_hides_and_sweep_removes(&file.open());
    }

    #[test]
    fn increment_counts_from_zero_and_rejects_text() {
        let file = TempFile::new("increment_co");
        conformance::increment_counts_from_zero_and_rejects_text(&file.open());
    }

    #[test]
    fn list_by_prefix_is_ordered_limited_and_stays_in_its_namespace() {
        let file = TempFile::new("list_by_pref");
        conformance::list_by_prefix_is_ordered_limited_and_stays_in_its_namespace(&file.open());
    }

    #[test]
    fn increment_reads_an_integer_as_rust_parses_it() {
        let file = TempFile::new("increment_re");
        conformance::increment_reads_an_integer_as_rust_parses_it(&file.open());
    }

    #[test]
    fn a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once() {
        let file = TempFile::new("a_write_sets");
        conformance::a_write_sets_or_clears_the_ttl_and_a_zero_ttl_expires_at_once(&file.open());
    }

    #[test]
    fn list_by_prefix_takes_the_prefix_literally_in_byte_order() {
        let file = TempFile::new("list_literal");
        conformance::list_by_prefix_takes_the_prefix_literally_in_byte_order(&file.open());
    }

    #[test]
    fn usage_counts_the_live_keys_and_their_bytes() {
        let file = TempFile::new("usage_counts");
        conformance::usage_counts_the_live_keys_and_their_bytes(&file.open());
    }

    #[test]
    fn a_file_from_before_the_counts_is_counted_once_when_opened() {
        let file = TempFile::new("uncounted");
        {
            // What an earlier plume left: entries (one expired, in the
            // expiry index of its layout), a version, and no counts.
            let db = Database::create(&file.0).expect("the file is created");
            let txn = db.begin_write().unwrap();
            {
                let mut entries = txn.open_table(ENTRIES).unwrap();
                entries.insert(("a", "k1"), (1, 0, "abc")).unwrap();
                entries.insert(("a", "k2"), (2, 0, "defgh")).unwrap();
                entries.insert(("a", "old"), (3, 1, "x")).unwrap();
                entries.insert(("b", "k"), (4, 0, "y")).unwrap();
                txn.open_table(EXPIRIES_BEFORE).unwrap().insert((1, "a", "old"), ()).unwrap();
                txn.open_table(META).unwrap().insert(VERSION, 4).unwrap();
            }
            txn.commit().unwrap();
        }
        let kv = file.open();
        assert_eq!(kv.usage("a"), Ok(Usage { keys: 2, bytes: 12 }), "the expired key does not count");
        assert_eq!(kv.usage("b"), Ok(Usage { keys: 1, bytes: 2 }));
        kv.set("a", "k3", "z".into(), None).unwrap();
        assert!(kv.delete("a", "k1").unwrap());
        assert_eq!(kv.sweep(), 1);
        assert_eq!(kv.usage("a"), Ok(Usage { keys: 2, bytes: 10 }), "writes move the counted totals");
        drop(kv);
        // Counted once: a later open reads the counts as they are, without
        // counting the entries again (a stand-in row shows it).
        {
            let db = Database::create(&file.0).expect("the file opens");
            let txn = db.begin_write().unwrap();
            let old_index = txn.list_tables().unwrap().any(|table| table.name() == EXPIRIES_BEFORE.name());
            assert!(!old_index, "the earlier expiry index was moved, and removed");
            txn.open_table(USAGE).unwrap().insert("a", (7, 70)).unwrap();
            txn.commit().unwrap();
        }
        assert_eq!(file.open().usage("a"), Ok(Usage { keys: 7, bytes: 70 }));
    }

    #[test]
    fn usage_matches_a_recount_after_any_mix_of_writes() {
        let file = TempFile::new("usage_recount");
        conformance::usage_matches_a_recount_after_any_mix_of_writes(&file.open(), conformance::Time::Stepped);
    }

    #[test]
    fn quotas_refuse_writes_past_the_limits_of_each_namespace() {
        let file = TempFile::new("quotas_refus");
        conformance::quotas_refuse_writes_past_the_limits_of_each_namespace(std::sync::Arc::new(file.open()));
    }

    #[test]
    fn a_second_open_of_the_same_file_is_refused_with_a_hint() {
        let file = TempFile::new("locked");
        let _kv = file.open();
        match RedbEngine::open(&file.0) {
            Err(KvError::Unavailable(why)) => assert!(why.contains("another plume"), "{why}"),
            Ok(_) => panic!("a second engine opened a file in use"),
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}
