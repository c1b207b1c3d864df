//! `plume build`: build the plugins of a source tree for `wasm32-wasip2`.
//!
//! Plugins build into their own target directory (`target/plugins`) so a
//! plugin build never waits on, or invalidates, the host's build.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

mod fresh;
pub mod npm;
pub mod python;

/// The WebAssembly target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile plugins are built with (see the workspace Cargo.toml).
pub const PROFILE: &str = "plugin";

/// The source tree `start` is in: the nearest ancestor with a `Cargo.toml`
/// and a `plugins/` directory.
pub fn find_workspace(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .find(|dir| dir.join("Cargo.toml").is_file() && dir.join("plugins").is_dir() && dir.join("wit").is_dir())
        .map(Path::to_owned)
}

/// Where a workspace's built plugins land.
pub fn plugin_dir(workspace: &Path) -> PathBuf {
    workspace.join("target/plugins").join(TARGET).join(PROFILE)
}

/// The plugin crates in a folder of a workspace: every
/// `<folder>/<name>/Cargo.toml`.
pub fn plugin_names(workspace: &Path, folder: &str) -> anyhow::Result<Vec<String>> {
    folders_where(workspace, folder, |path| Ok(path.join("Cargo.toml").is_file()))
}

/// The names, sorted, of the entries of `<workspace>/<folder>` that
/// `is_plugin` accepts: how each kind of plugin (cargo, npm, Python) is
/// listed, by its own manifest.
fn folders_where(
    workspace: &Path,
    folder: &str,
    is_plugin: impl Fn(&Path) -> anyhow::Result<bool>,
) -> anyhow::Result<Vec<String>> {
    let dir = workspace.join(folder);
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry?.path();
        if is_plugin(&path)? {
            names.extend(path.file_name().map(|name| name.to_string_lossy().into_owned()));
        }
    }
    names.sort();
    Ok(names)
}

fn target_installed() -> bool {
    Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).lines().any(|l| l.trim() == TARGET))
        .unwrap_or(false)
}

/// Build every plugin under `plugins/`: the crates with the plugin profile,
/// installing the target first if it is missing (cargo's progress goes to
/// the terminal), the npm plugins with `npm run build` and the Python
/// plugins with componentize-py.
pub fn build_plugins(workspace: &Path) -> anyhow::Result<PathBuf> {
    build_plugin_folders(workspace, &["plugins"])
}

/// Build the plugin crates of several folders (the test suite adds
/// `tests/plugins`) in one cargo run, then their npm plugins ([`npm`]) and
/// their Python plugins ([`python`]).
pub fn build_plugin_folders(workspace: &Path, folders: &[&str]) -> anyhow::Result<PathBuf> {
    let mut names = Vec::new();
    for folder in folders {
        names.extend(plugin_names(workspace, folder)?);
    }
    let dir = build_packages(workspace, &names)?;
    for folder in folders {
        npm::build_folder(workspace, folder, &dir)?;
        python::build_folder(workspace, folder, &dir)?;
    }
    Ok(dir)
}

/// Install the `wasm32-wasip2` target with rustup if it is missing.
pub fn ensure_target() -> anyhow::Result<()> {
    if target_installed() {
        return Ok(());
    }
    eprintln!("plume: the {TARGET} target is missing: installing it (rustup target add {TARGET})");
    let status = Command::new("rustup")
        .args(["target", "add", TARGET])
        .status()
        .context("cannot run rustup; install the target by hand: rustup target add wasm32-wasip2")?;
    if !status.success() {
        bail!("rustup target add {TARGET} failed; install the target by hand and try again");
    }
    eprintln!("plume: {TARGET} installed");
    Ok(())
}

/// Build the named plugin packages of a workspace for `wasm32-wasip2` with
/// the plugin profile, in one cargo run, installing the target first if it
/// is missing. Cargo's progress goes to the terminal. Returns the folder
/// the `.wasm` files are in ([`plugin_dir`]).
pub fn build_packages(workspace: &Path, names: &[String]) -> anyhow::Result<PathBuf> {
    ensure_target()?;
    eprintln!("plume: building plugins for {TARGET}: {}", names.join(", "));
    let started = std::time::Instant::now();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(workspace)
        .args(["build", "--profile", PROFILE, "--target", TARGET, "--target-dir"])
        .arg(workspace.join("target/plugins"));
    for name in names {
        command.args(["-p", name]);
    }
    let status = command.status().context("cannot run cargo")?;
    if !status.success() {
        bail!("building the plugins failed (see cargo's output above)");
    }
    eprintln!("plume: plugins built in {:.1?}", started.elapsed());
    Ok(plugin_dir(workspace))
}
