//! Puts phoenix.js in the binary, for the demo page: `plume` serves the page
//! and its script from itself, wherever it is installed.
//!
//! phoenix.js is not in the repository: it is the `phoenix` npm package,
//! installed in `web/node_modules` by `npm ci` from the committed lockfile,
//! here, when it is missing or older than the lockfile. Its ES module is
//! copied to `OUT_DIR/phoenix.mjs`, which the demo page embeds. Without npm
//! (or offline) the build goes on: the file is left empty, the reason goes
//! to `PLUME_PHOENIX_JS_MISSING`, and the page says what is missing.

#[path = "src/demo_page/packages.rs"]
mod packages;

use std::path::{Path, PathBuf};

/// Where phoenix.js's ES module is inside the page's folder.
const MODULE: &str = "node_modules/phoenix/priv/static/phoenix.mjs";

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("phoenix.mjs");
    let web = manifest.join("web");
    // Rerun when the lockfile changes or an install happens (npm records
    // each in node_modules/.package-lock.json; while that file is missing,
    // cargo reruns this script on every build, so a later build with npm
    // installs what an earlier one could not).
    for watched in ["web/package-lock.json", "web/node_modules/.package-lock.json", &format!("web/{MODULE}")] {
        println!("cargo:rerun-if-changed={watched}");
    }
    let missing = match embed(&web, &out) {
        Ok(()) => String::new(),
        Err(reason) => {
            println!("cargo:warning=the demo page will have no phoenix.js: {reason}");
            std::fs::write(&out, b"").expect("write OUT_DIR/phoenix.mjs");
            reason
        }
    };
    println!("cargo:rustc-env=PLUME_PHOENIX_JS_MISSING={missing}");
}

/// Install the page's packages if needed, and copy phoenix.js's module to
/// `out`; or why it cannot be had.
fn embed(web: &Path, out: &Path) -> Result<(), String> {
    if packages::needs_install(web) {
        packages::install(web).map_err(|error| error.to_string())?;
    }
    let module = web.join(MODULE);
    std::fs::copy(&module, out)
        .map(|_| ())
        .map_err(|error| format!("cannot read {}: {error}", module.display()))
}
