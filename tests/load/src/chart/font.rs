//! The chart's one font, read from the system at run time.
//!
//! plotters is built without its font-kit backend (which would need
//! fontconfig and FreeType at build time), so it draws text with ab_glyph
//! from a TrueType file that we find and register ourselves.

use std::path::{Path, PathBuf};

/// The family name the chart's text asks for; plotters' own defaults ask
/// for it too, so nothing is drawn in a font that was never registered.
pub const FAMILY: &str = "sans-serif";

/// Where Debian (fonts-dejavu-core, fonts-liberation, fonts-freefont-ttf)
/// and the other common distributions put a plain sans-serif TrueType font.
const CANDIDATES: [&str; 7] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
];

/// Finds the font (`given`, or the first system font that exists), and
/// registers it with plotters as [`FAMILY`]. Returns the file used.
pub fn install(given: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => find(&CANDIDATES)?,
    };
    let bytes = std::fs::read(&path)
        .map_err(|error| anyhow::anyhow!("cannot read the font {}: {error}", path.display()))?;
    // plotters keeps registered fonts for the life of the process and asks
    // for a 'static slice: one font a run, so leaking it is the plain way.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font(FAMILY, plotters::style::FontStyle::Normal, bytes).map_err(
        |_| {
            anyhow::anyhow!(
                "{} is not a TrueType or OpenType font: give a .ttf or .otf with --font",
                path.display()
            )
        },
    )?;
    Ok(path)
}

/// The first of `candidates` that exists.
fn find(candidates: &[&str]) -> anyhow::Result<PathBuf> {
    candidates
        .iter()
        .map(PathBuf::from)
        .find(|path| path.is_file())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "no font for the chart's text: install DejaVu Sans (`apt-get install fonts-dejavu-core` on Debian or Ubuntu), or give a .ttf file with --font (looked for {})",
                candidates.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_font_the_error_names_the_package_to_install() {
        let error = find(&["/nonexistent/DejaVuSans.ttf"])
            .expect_err("no such file")
            .to_string();
        assert!(
            error.contains("apt-get install fonts-dejavu-core"),
            "{error}"
        );
        assert!(error.contains("--font"), "{error}");
    }

    #[test]
    fn a_file_that_is_not_a_font_is_refused_by_name() {
        let path =
            std::env::temp_dir().join(format!("plume-chart-not-a-font-{}.ttf", std::process::id()));
        std::fs::write(&path, b"not a font").expect("temp file");
        let error = install(Some(&path)).expect_err("not a font").to_string();
        let _ = std::fs::remove_file(&path);
        assert!(
            error.contains("is not a TrueType or OpenType font"),
            "{error}"
        );
    }
}
