//! Whether a plugin built by an outside tool (npm, componentize-py) must be
//! built again: its output is older than something it is made from.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// How a folder below an input counts: its files, or as one time (an
/// install record: `node_modules` counts as its `.package-lock.json`), or
/// not at all (`__pycache__`, written by Python as it runs).
pub enum Folder {
    Walk,
    As(Option<SystemTime>),
}

/// Whether `out` exists and is newer than every file under `inputs`;
/// `folder` says how a folder of a given name counts ([`Folder`]).
pub fn is_fresh(out: &Path, inputs: &[PathBuf], folder: &dyn Fn(&Path, &OsStr) -> Folder) -> bool {
    let Some(built) = modified(out) else {
        return false;
    };
    inputs.iter().all(|input| newest(input, folder).is_none_or(|newest| newest <= built))
}

/// The newest modification time of a file or of the files under a folder.
fn newest(path: &Path, folder: &dyn Fn(&Path, &OsStr) -> Folder) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_dir() {
        return meta.modified().ok();
    }
    let mut newest = None;
    for entry in std::fs::read_dir(path).ok()?.flatten() {
        let path = entry.path();
        let time = match entry.file_type().is_ok_and(|t| t.is_dir()).then(|| folder(&path, &entry.file_name())) {
            Some(Folder::As(time)) => time,
            Some(Folder::Walk) | None => self::newest(&path, folder),
        };
        newest = newest.max(time);
    }
    newest
}

/// Whether `path` is a plugin's own test folder (`test/` or `tests/` at
/// the top of the plugin's folder `plugin`): its tests run against the
/// built component (`plume test`) and are not part of it, so editing a
/// test does not rebuild the plugin.
pub fn is_test_folder(plugin: &Path, path: &Path, name: &OsStr) -> bool {
    (name == "test" || name == "tests") && path.parent() == Some(plugin)
}

/// A file's modification time, `None` when it does not exist.
pub fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}
