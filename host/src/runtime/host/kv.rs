//! `kv`: the app's key-value namespace.

use std::time::Duration;

use super::HostState;
use crate::kv::KvError as StoreError;
use crate::runtime::bindings::imports::kv::{Entry, Host, KvError};

fn ttl(ms: Option<u64>) -> Option<Duration> {
    ms.map(Duration::from_millis)
}

fn entry(e: crate::kv::Entry) -> Entry {
    Entry {
        value: e.value,
        version: e.version,
    }
}

impl From<StoreError> for KvError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidKey(why) => KvError::InvalidKey(why),
            StoreError::NotANumber => KvError::NotANumber,
            StoreError::Quota(why) => KvError::Quota(why),
            StoreError::Unavailable(why) => KvError::Unavailable(why),
        }
    }
}

impl HostState {
    /// The app's namespace, when it was granted the `kv` capability.
    fn kv(&mut self) -> Result<&crate::kv::Kv, KvError> {
        let app = &self.call().app;
        app.capabilities
            .check(crate::app::Capability::Kv)
            .map_err(KvError::NotGranted)?;
        Ok(&app.kv)
    }

    fn check_value(&mut self, value: &str) -> Result<(), KvError> {
        let max = self.call().app.limits.max_kv_value_bytes;
        if value.len() > max {
            return Err(KvError::Quota(format!(
                "a value is at most {max} bytes, this one has {}",
                value.len()
            )));
        }
        Ok(())
    }
}

impl Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Entry>, KvError> {
        Ok(self.kv()?.get(&key)?.map(entry))
    }

    fn set(&mut self, key: String, value: String, ttl_ms: Option<u64>) -> Result<u64, KvError> {
        self.check_value(&value)?;
        Ok(self.kv()?.set(&key, value, ttl(ttl_ms))?)
    }

    fn delete(&mut self, key: String) -> Result<bool, KvError> {
        Ok(self.kv()?.delete(&key)?)
    }

    fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<u64>,
        value: String,
        ttl_ms: Option<u64>,
    ) -> Result<Option<u64>, KvError> {
        self.check_value(&value)?;
        Ok(self
            .kv()?
            .compare_and_swap(&key, expected, value, ttl(ttl_ms))?)
    }

    fn increment(&mut self, key: String, delta: i64, ttl_ms: Option<u64>) -> Result<i64, KvError> {
        Ok(self.kv()?.increment(&key, delta, ttl(ttl_ms))?)
    }

    fn list_by_prefix(&mut self, prefix: String, limit: u32) -> Result<Vec<(String, Entry)>, KvError> {
        let list = self.kv()?.list_by_prefix(&prefix, limit as usize)?;
        Ok(list.into_iter().map(|(k, e)| (k, entry(e))).collect())
    }
}
