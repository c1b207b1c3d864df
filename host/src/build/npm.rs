//! Plugins in JavaScript (or anything npm builds): a plugin folder with a
//! `package.json` whose `build` script writes a component.
//!
//! For such a folder `plume build` runs `npm ci` when its packages are
//! missing or older than its lockfile, then `npm run build` with
//! `PLUME_PLUGIN_OUT` set to `<name>.wasm` in the folder the Rust plugins
//! land in (`<name>` is the folder's name), so every plugin is loaded from
//! one place whatever its language.
//!
//! A build is skipped while that file is newer than everything it is made
//! from (the folder without `node_modules`, the installed packages, the WIT
//! package): every test binary asks for a build, and only the first pays.
//! Builds of one plugin by several processes at once (test binaries,
//! `plume dev`, other checkouts' tests sharing `target/`) wait on a lock
//! file, and the later ones find the plugin fresh.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Instant;

use anyhow::{Context, bail};

use super::fresh::{self, Folder, modified};

/// The environment variable that tells a build script where to write.
pub const OUT_VAR: &str = "PLUME_PLUGIN_OUT";

/// The npm plugins in a folder of a workspace: every `<folder>/<name>/`
/// whose `package.json` has a `build` script.
pub fn plugin_names(workspace: &Path, folder: &str) -> anyhow::Result<Vec<String>> {
    super::folders_where(workspace, folder, |path| has_script(path, "build"))
}

/// Whether the folder `dir` has a `package.json` with the npm script
/// `script` (`build` makes it an npm plugin; `test` is what `plume test`
/// runs).
pub fn has_script(dir: &Path, script: &str) -> anyhow::Result<bool> {
    let manifest = dir.join("package.json");
    if !manifest.is_file() {
        return Ok(false);
    }
    let text = std::fs::read_to_string(&manifest).with_context(|| format!("cannot read {}", manifest.display()))?;
    let package: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", manifest.display()))?;
    Ok(package["scripts"][script].is_string())
}

/// Build the npm plugins of `folder` into `out_dir`. Without npm they are
/// skipped with a warning (the Rust plugins still serve); a failed install
/// or build is an error that carries npm's output.
pub fn build_folder(workspace: &Path, folder: &str, out_dir: &Path) -> anyhow::Result<()> {
    for name in plugin_names(workspace, folder)? {
        build(workspace, &workspace.join(folder).join(&name), &name, out_dir)?;
    }
    Ok(())
}

/// Build the npm plugin in `dir`, called `name`, into `out_dir` (see
/// [`build_folder`]).
pub fn build_one(workspace: &Path, dir: &Path, name: &str, out_dir: &Path) -> anyhow::Result<()> {
    build(workspace, dir, name, out_dir)
}

fn build(workspace: &Path, dir: &Path, name: &str, out_dir: &Path) -> anyhow::Result<()> {
    let out = out_dir.join(format!("{name}.wasm"));
    let inputs = [dir.to_owned(), workspace.join("wit")];
    let fresh = || is_fresh(dir, &out, &inputs);
    if fresh() {
        return Ok(());
    }
    if !npm_available() {
        eprintln!(
            "plume: warning: not building {name} ({}): npm is not on PATH; install Node.js 20 or newer with npm to build JavaScript plugins",
            dir.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let lock_path = workspace.join("target/plugins").join(format!("{name}.npm-lock"));
    let lock = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    // Another process may have built it while this one waited.
    if fresh() {
        return Ok(());
    }

    let started = Instant::now();
    if needs_install(dir)? {
        eprintln!("plume: installing the npm packages of {name} (npm ci in {})", dir.display());
        let mut npm = Command::new("npm");
        npm.args(["ci", "--no-audit", "--no-fund"]);
        run(npm, dir, &format!("npm ci for {name}"))?;
    }
    eprintln!("plume: building {name} (npm run build in {})", dir.display());
    let mut npm = Command::new("npm");
    npm.args(["run", "build"]).env(OUT_VAR, &out);
    run(npm, dir, &format!("npm run build for {name}"))?;
    if !fresh() {
        bail!(
            "npm run build for {name} succeeded but did not write {}: its build script must write the component to ${OUT_VAR}",
            out.display()
        );
    }
    eprintln!("plume: {name} built in {:.1?}", started.elapsed());
    Ok(())
}

fn npm_available() -> bool {
    Command::new("npm").arg("--version").output().is_ok_and(|out| out.status.success())
}

/// Whether `npm ci` must run: no packages installed, or the lockfile changed
/// since they were (npm records an install in `node_modules/.package-lock.json`).
fn needs_install(dir: &Path) -> anyhow::Result<bool> {
    let Some(locked) = modified(&dir.join("package-lock.json")) else {
        bail!(
            "{} has no package-lock.json: run `npm install` there and commit the lockfile, so that every build uses the same packages",
            dir.display()
        );
    };
    Ok(modified(&dir.join("node_modules/.package-lock.json")).is_none_or(|installed| installed < locked))
}

/// Run an npm command in `dir`; on failure, the error carries its output.
fn run(mut command: Command, dir: &Path, what: &str) -> anyhow::Result<()> {
    let output = command
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!("{what} failed ({}):\n{}", output.status, printable(&output));
    }
    Ok(())
}

/// Most lines of a failed command's output an error carries: the cause is
/// at the start (npm's own errors) or at the end (the build script's).
const SHOWN_LINES: usize = 40;

/// What a command wrote, without npm's noise about the user's own config,
/// its middle cut when long.
fn printable(output: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let lines: Vec<&str> = text
        .lines()
        .filter(|line| !line.starts_with("npm warn Unknown user config"))
        .collect();
    if lines.len() <= SHOWN_LINES {
        return lines.join("\n");
    }
    let half = SHOWN_LINES / 2;
    format!(
        "{}\n[... {} lines ...]\n{}",
        lines[..half].join("\n"),
        lines.len() - SHOWN_LINES,
        lines[lines.len() - half..].join("\n")
    )
}

/// Whether `out` is newer than everything under `inputs`, the installed
/// packages counting by their install record and the plugin's tests (in
/// `plugin`) not at all.
fn is_fresh(plugin: &Path, out: &Path, inputs: &[PathBuf]) -> bool {
    fresh::is_fresh(out, inputs, &|path, name| {
        if name == "node_modules" {
            Folder::As(modified(&path.join(".package-lock.json")))
        } else if fresh::is_test_folder(plugin, path, name) {
            Folder::As(None)
        } else {
            Folder::Walk
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_js_room_is_an_npm_plugin_and_the_rust_crates_are_not() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names = plugin_names(&workspace, "plugins").expect("plugins/ lists");
        assert!(names.contains(&"room-js".to_owned()), "{names:?}");
        assert!(!names.contains(&"room".to_owned()), "{names:?}");
    }
}
