//! Finding and building the plugins a harness loads.
//!
//! A test names plugins by package name. The harness builds them as
//! `plume build` does (`wasm32-wasip2`, the `plugin` profile, the
//! workspace's `target/plugins`), at most once per test process, so the
//! component under test is the one a server would run. Cargo's own lock
//! makes concurrent builds (parallel tests, other test binaries) wait
//! for one another; the plugin target directory is not the one the outer
//! `cargo test` holds, so building from inside a test never deadlocks.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The source tree of the crate under test: the nearest plume workspace
/// above `CARGO_MANIFEST_DIR` (cargo sets it when it runs tests), else
/// above the current directory.
pub(crate) fn workspace() -> Result<PathBuf, String> {
    let start = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .or_else(|| std::env::current_dir().ok())
        .ok_or("cannot tell where the test runs: neither CARGO_MANIFEST_DIR nor a current directory")?;
    plume::build::find_workspace(&start).ok_or_else(|| {
        format!(
            "{} is not inside a plume source tree (a folder with Cargo.toml, plugins/ and wit/): plume-test builds plugins from there",
            start.display()
        )
    })
}

/// The component file cargo writes for package `name`.
fn wasm_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{}.wasm", name.replace('-', "_")))
}

/// The packages built by this process so far.
static BUILT: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

/// Build the packages not built yet by this process, in one cargo run, and
/// return each package's component file, in the order asked.
pub(crate) fn build(names: &[String]) -> Result<Vec<PathBuf>, String> {
    let workspace = workspace()?;
    let dir = plume::build::plugin_dir(&workspace);
    // Held during the build: a parallel test asking for the same plugin
    // waits for this build instead of starting its own.
    let mut built = BUILT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let missing: Vec<String> = names
        .iter()
        .filter(|name| !built.contains(*name))
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if !missing.is_empty() {
        plume::build::build_packages(&workspace, &missing).map_err(|e| {
            format!(
                "cannot build {} for wasm32-wasip2 in {}: {e:#} (each must be a plugin package of the workspace)",
                missing.join(", "),
                workspace.display()
            )
        })?;
        built.extend(missing);
    }
    Ok(names.iter().map(|name| wasm_file(&dir, name)).collect())
}
