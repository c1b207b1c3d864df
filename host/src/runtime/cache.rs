//! The compile cache: compiled components on disk, by content hash and
//! engine configuration.
//!
//! Compiling a component takes hundreds of milliseconds; loading a compiled
//! one takes a few. A restart, a second server on the same machine, or a
//! hot swap back to an earlier version therefore does not recompile. The key
//! hashes the component's bytes with wasmtime's compatibility hash (its
//! version and every setting that affects code), so a changed engine never
//! loads code compiled for another.
//!
//! Trust: loading compiled code skips validation, so the cache directory
//! must be writable only by the server's user, like its plugin files.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Feeds a `Hash` value into SHA-256.
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

/// Where compiled components are kept.
#[derive(Debug, Clone)]
pub struct CompileCache {
    dir: PathBuf,
}

/// How a component was obtained, for the start-up report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Compiled,
    Cached,
    /// Compiled by the baseline compiler (Winch) for a hot swap: quick to
    /// make, slower to run; the optimized code replaces it once compiled
    /// (see `reload`).
    Baseline,
    /// Not a component: the plugin's crate compiled into the host.
    Native,
}

impl CompileCache {
    pub fn new(dir: PathBuf) -> Self {
        CompileCache { dir }
    }

    /// The default place: `$PLUME_CACHE_DIR`, else `$XDG_CACHE_HOME/plume`,
    /// else `~/.cache/plume`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("PLUME_CACHE_DIR") {
            return Some(dir.into());
        }
        if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
            return Some(Path::new(&dir).join("plume"));
        }
        std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache/plume"))
    }

    fn path_for(&self, engine: &Engine, bytes: &[u8]) -> PathBuf {
        let mut hasher = ShaHasher(Sha256::new());
        bytes.hash(&mut hasher);
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hasher.0.finalize();
        let name: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        self.dir.join(format!("{name}.cwasm"))
    }

    /// The compiled component for `bytes`: from the cache when it holds a
    /// usable entry, else compiled now and stored for next time. A cache
    /// that cannot be read or written only costs a compile.
    pub fn get_or_compile(&self, engine: &Engine, bytes: &[u8]) -> wasmtime::Result<(Component, Origin)> {
        if let Some(component) = self.get(engine, bytes) {
            return Ok((component, Origin::Cached));
        }
        let component = Component::new(engine, bytes)?;
        self.put(engine, bytes, &component);
        Ok((component, Origin::Compiled))
    }

    /// Keep `engine`'s `component`, compiled from `bytes`, for next time.
    /// A cache that cannot be written only costs a compile later.
    pub fn put(&self, engine: &Engine, bytes: &[u8], component: &Component) {
        let path = self.path_for(engine, bytes);
        if let Err(error) = self.store(&path, component) {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write the compile cache; plugins will be compiled at every start");
        }
    }

    /// The compiled component for `bytes` if the cache holds a usable entry
    /// for `engine`; an unusable entry is removed.
    pub fn get(&self, engine: &Engine, bytes: &[u8]) -> Option<Component> {
        let path = self.path_for(engine, bytes);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `Component::serialize` for an
        // engine with the same compatibility hash (it is in the name);
        // the directory belongs to the server (see the module docs).
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "dropping an unusable compile-cache entry");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn store(&self, path: &Path, component: &Component) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        let serialized = component.serialize().map_err(|e| anyhow::anyhow!("{e:#}"))?;
        // Write aside and rename, so a reader never sees half a file.
        let temporary = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temporary, serialized)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }
}
