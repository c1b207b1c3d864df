//! The demo page's npm packages: installed with `npm ci` from the
//! committed lockfile, so every machine serves the same phoenix.js. The
//! host's build script installs them (this file is its module too), and
//! the test suite installs its own JavaScript folders the same way.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::SystemTime;

/// Why the packages were not installed.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("npm is not installed (install Node.js with npm, then run `npm ci` in {dir})")]
    NpmMissing { dir: String },
    #[error("cannot run npm in {dir}: {error}")]
    Spawn { dir: String, error: std::io::Error },
    #[error("`npm ci` in {dir} failed ({status})")]
    Failed { dir: String, status: ExitStatus },
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path)
        .and_then(|meta| meta.modified())
        .ok()
}

/// Whether `npm ci` must run in `dir`: nothing installed yet, or the
/// lockfile changed since the last install (npm records an install in
/// `node_modules/.package-lock.json`).
pub fn needs_install(dir: &Path) -> bool {
    let installed = modified(&dir.join("node_modules").join(".package-lock.json"));
    let locked = modified(&dir.join("package-lock.json"));
    match (installed, locked) {
        (Some(installed), Some(locked)) => locked > installed,
        _ => true,
    }
}

/// Run `npm ci` in `dir`. npm's progress goes to stderr, so that stdout
/// keeps only what scripts read from it.
pub fn install(dir: &Path) -> Result<(), InstallError> {
    let shown = dir.display().to_string();
    let status = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => InstallError::NpmMissing { dir: shown.clone() },
            _ => InstallError::Spawn {
                dir: shown.clone(),
                error: source,
            },
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(InstallError::Failed { dir: shown, status })
    }
}
