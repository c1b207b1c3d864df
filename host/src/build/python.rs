//! Plugins in Python: a plugin folder with a `pyproject.toml` that has a
//! `[tool.plume]` table, built into a component by componentize-py.
//!
//! ```toml
//! [tool.plume]
//! module = "room"            # src/room.py defines `ChannelHandler`
//! world = "channel-plugin"   # the default; `socket-plugin` for a socket handler
//! ```
//!
//! componentize-py comes from PyPI at a pinned version ([`COMPONENTIZE_PY`]),
//! installed into a virtual environment under `target/` ([`VENV`]) the first
//! time a Python plugin is built, so a build never depends on what the
//! user's Python has installed. It generates the bindings from the
//! workspace's `wit/` at every build (nothing generated is committed) and
//! bundles the plugin's `src/` with the SDK in `sdk/python` (the `plume`
//! package), into `<name>.wasm` beside the Rust plugins.
//!
//! As for npm plugins ([`super::npm`]), a build is skipped while its output
//! is newer than everything it is made from (the plugin's folder, the SDK,
//! the WIT package), and concurrent builds of one plugin wait on a lock file.
//! Without `python3` (or without its `venv` module) Python plugins are
//! skipped with a warning, and the Rust plugins still serve. `PLUME_PYTHON`
//! names another interpreter to make the environment with.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};

use super::fresh::{self, Folder};

/// The componentize-py release plugins are built with. 0.25 targets WASI
/// 0.2 and the component model the host's wasmtime implements.
pub const COMPONENTIZE_PY: &str = "0.25.1";

/// The virtual environment componentize-py is installed into, under the
/// workspace.
pub const VENV: &str = "target/python-venv";

/// The Python SDK, bundled into every Python plugin.
pub const SDK: &str = "sdk/python";

/// What `[tool.plume]` of a plugin's `pyproject.toml` says.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The module in `src/` that defines the exported class.
    pub module: String,
    /// The WIT world the plugin targets.
    #[serde(default = "default_world")]
    pub world: String,
}

fn default_world() -> String {
    "channel-plugin".into()
}

#[derive(serde::Deserialize)]
struct PyProject {
    tool: Option<Tool>,
}

#[derive(serde::Deserialize)]
struct Tool {
    plume: Option<Manifest>,
}

/// The plugin's `[tool.plume]`, `None` when its `pyproject.toml` has none
/// (a Python project that is no plume plugin).
pub fn manifest(dir: &Path) -> anyhow::Result<Option<Manifest>> {
    let path = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let project: PyProject = toml::from_str(&text).with_context(|| format!("{} is not a valid pyproject.toml", path.display()))?;
    let Some(manifest) = project.tool.and_then(|tool| tool.plume) else {
        return Ok(None);
    };
    if manifest.world != "channel-plugin" && manifest.world != "socket-plugin" {
        bail!(
            "{}: [tool.plume] world is `{}`; plume plugins target `channel-plugin` or `socket-plugin`",
            path.display(),
            manifest.world
        );
    }
    Ok(Some(manifest))
}

/// The Python plugins in a folder of a workspace: every `<folder>/<name>/`
/// whose `pyproject.toml` has a `[tool.plume]` table.
pub fn plugin_names(workspace: &Path, folder: &str) -> anyhow::Result<Vec<String>> {
    super::folders_where(workspace, folder, |path| {
        Ok(path.join("pyproject.toml").is_file() && manifest(path)?.is_some())
    })
}

/// Build the Python plugins of `folder` into `out_dir`. Without Python
/// they are skipped with a warning; a failed install or build is an error
/// that carries the tool's output.
pub fn build_folder(workspace: &Path, folder: &str, out_dir: &Path) -> anyhow::Result<()> {
    for name in plugin_names(workspace, folder)? {
        build(workspace, &workspace.join(folder).join(&name), &name, out_dir)?;
    }
    Ok(())
}

/// Build the Python plugin in `dir`, called `name`, into `out_dir` (see
/// [`build_folder`]).
pub fn build_one(workspace: &Path, dir: &Path, name: &str, out_dir: &Path) -> anyhow::Result<()> {
    build(workspace, dir, name, out_dir)
}

/// Whether `out` is newer than everything under `inputs`, Python's
/// bytecode caches and the plugin's tests (in `plugin`) aside.
fn is_fresh(plugin: &Path, out: &Path, inputs: &[PathBuf]) -> bool {
    fresh::is_fresh(out, inputs, &|path, name| {
        if name == "__pycache__" || fresh::is_test_folder(plugin, path, name) {
            Folder::As(None)
        } else {
            Folder::Walk
        }
    })
}

fn build(workspace: &Path, dir: &Path, name: &str, out_dir: &Path) -> anyhow::Result<()> {
    let out = out_dir.join(format!("{name}.wasm"));
    let inputs = [dir.to_owned(), workspace.join(SDK), workspace.join("wit")];
    let fresh = || is_fresh(dir, &out, &inputs);
    if fresh() {
        return Ok(());
    }
    let Some(manifest) = manifest(dir)? else {
        bail!("{} has no [tool.plume] table", dir.join("pyproject.toml").display());
    };
    std::fs::create_dir_all(out_dir).with_context(|| format!("cannot create {}", out_dir.display()))?;
    let lock_path = workspace.join("target/plugins").join(format!("{name}.python-lock"));
    let lock = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if fresh() {
        return Ok(());
    }
    let Some(componentize) = componentize_py(workspace, name, dir)? else {
        return Ok(());
    };

    let started = Instant::now();
    eprintln!("plume: building {name} (componentize-py {COMPONENTIZE_PY}, {} in {})", manifest.module, dir.display());
    // Written aside and renamed, so a server watching `out` never loads half a file.
    let partial = out.with_extension(format!("{}.partial", std::process::id()));
    let output = Command::new(&componentize)
        .current_dir(dir)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .arg("--wit-path")
        .arg(workspace.join("wit"))
        .args(["--world", &manifest.world, "componentize", "--python-path"])
        .arg(dir.join("src"))
        .arg("--python-path")
        .arg(workspace.join(SDK))
        .arg(&manifest.module)
        .arg("--output")
        .arg(&partial)
        .output()
        .with_context(|| format!("cannot run {}", componentize.display()))?;
    if !output.status.success() {
        let _ = std::fs::remove_file(&partial);
        bail!(
            "componentize-py failed for {name} ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    std::fs::rename(&partial, &out).with_context(|| format!("cannot write {}", out.display()))?;
    let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    eprintln!(
        "plume: {name} built in {:.1?} ({:.1} MiB)",
        started.elapsed(),
        size as f64 / (1024.0 * 1024.0)
    );
    Ok(())
}

/// The pinned componentize-py, installed into [`VENV`] if it is missing or
/// another version; `None` (after a warning) when there is no Python to
/// install it with.
fn componentize_py(workspace: &Path, name: &str, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let componentize = workspace.join(VENV).join("bin/componentize-py");
    let installed = || installed_version(&componentize).as_deref() == Some(COMPONENTIZE_PY);
    if installed() {
        return Ok(Some(componentize));
    }
    let has_venv = Command::new(system_python())
        .args(["-c", "import ensurepip, venv"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_venv {
        eprintln!(
            "plume: warning: not building {name} ({}): python3 with its venv module is not on PATH; install Python 3.10 or newer (on Debian and Ubuntu: apt-get install python3-venv) to build Python plugins",
            dir.display()
        );
        return Ok(None);
    }
    install_pinned(workspace, "componentize-py", COMPONENTIZE_PY, &installed)?;
    match installed_version(&componentize) {
        Some(version) if version == COMPONENTIZE_PY => Ok(Some(componentize)),
        other => bail!(
            "pip installed componentize-py, but {} reports version {other:?}, not {COMPONENTIZE_PY}",
            componentize.display()
        ),
    }
}

/// The interpreter that makes [`VENV`]: `PLUME_PYTHON`, else `python3`.
fn system_python() -> std::ffi::OsString {
    std::env::var_os("PLUME_PYTHON").unwrap_or_else(|| "python3".into())
}

/// Install `package==version` from PyPI into [`VENV`], making the
/// environment first if there is none, unless `installed` says it is there.
/// Processes that build or test Python plugins at once share the
/// environment: one installs under its lock file, the others wait and find
/// it done (`installed` is asked again once the lock is held).
fn install_pinned(workspace: &Path, package: &str, version: &str, installed: &dyn Fn() -> bool) -> anyhow::Result<()> {
    let venv = workspace.join(VENV);
    std::fs::create_dir_all(workspace.join("target/plugins"))?;
    let lock_path = workspace.join("target/plugins/python-venv.lock");
    let lock = File::create(&lock_path).with_context(|| format!("cannot create {}", lock_path.display()))?;
    lock.lock().with_context(|| format!("cannot lock {}", lock_path.display()))?;
    if installed() {
        return Ok(());
    }
    if !venv.join("bin/pip").is_file() {
        eprintln!("plume: creating a Python virtual environment in {}", venv.display());
        run(Command::new(system_python()).arg("-m").arg("venv").arg(&venv), "python3 -m venv")?;
    }
    eprintln!("plume: installing {package} {version} from PyPI into {}", venv.display());
    run(
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check"])
            .arg(format!("{package}=={version}")),
        &format!("pip install {package}"),
    )
}

/// The `websockets` release (PyPI) the Python test client runs on.
pub const WEBSOCKETS: &str = "15.0.1";

/// The Python test client (`plume_test`), put on `PYTHONPATH` by `plume
/// test`.
pub const TEST_CLIENT: &str = "sdk/python-test";

/// The interpreter of [`VENV`], with `websockets` at [`WEBSOCKETS`] for
/// the test client: installed into the environment if it is another
/// version or missing, and the environment made first if there is none.
pub fn test_python(workspace: &Path) -> anyhow::Result<PathBuf> {
    let venv = workspace.join(VENV);
    let python = venv.join("bin/python");
    let has_websockets = || {
        Command::new(&python)
            .args(["-c", "import websockets; print(websockets.__version__)"])
            .output()
            .is_ok_and(|out| out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == WEBSOCKETS)
    };
    if has_websockets() {
        return Ok(python);
    }
    install_pinned(workspace, "websockets", WEBSOCKETS, &has_websockets)?;
    if !has_websockets() {
        bail!("pip installed websockets, but {} does not import version {WEBSOCKETS}", python.display());
    }
    Ok(python)
}

/// What `componentize-py --version` says (`componentize-py 0.25.1`).
fn installed_version(componentize: &Path) -> Option<String> {
    let out = Command::new(componentize).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success().then(|| text.trim().rsplit(' ').next().map(str::to_owned)).flatten()
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_python_room_is_a_python_plugin_and_the_others_are_not() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let names = plugin_names(&workspace, "plugins").expect("plugins/ lists");
        assert!(names.contains(&"room-py".to_owned()), "{names:?}");
        assert!(!names.contains(&"room-js".to_owned()), "{names:?}");
        assert!(!names.contains(&"room".to_owned()), "{names:?}");
    }

    #[test]
    fn a_manifest_names_its_module_and_defaults_to_the_channel_world() {
        let dir = std::env::temp_dir().join(format!("plume-pyproject-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("pyproject.toml"), "[project]\nname = \"x\"\n[tool.plume]\nmodule = \"app\"\n").expect("write");
        assert_eq!(
            manifest(&dir).expect("parses"),
            Some(Manifest { module: "app".into(), world: "channel-plugin".into() })
        );
        std::fs::write(dir.join("pyproject.toml"), "[tool.plume]\nmodule = \"app\"\nworld = \"host\"\n").expect("write");
        let err = manifest(&dir).expect_err("an unknown world is refused");
        assert!(format!("{err:#}").contains("channel-plugin"), "{err:#}");
        std::fs::write(dir.join("pyproject.toml"), "[project]\nname = \"x\"\n").expect("write");
        assert_eq!(manifest(&dir).expect("parses"), None);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
