//! `chart`: draws what a fan-out sweep measured as a PNG, for
//! BENCHMARKS.md. It reads the lines `plume-load compare ... fanout --sweep
//! R1,R2,...` printed ([`sweep`]), and plots each server's p50 and p99
//! latency against the delivery rate it sustained ([`draw`]), with text in a
//! font found on the system at run time ([`font`]), so that the tool builds
//! with no system libraries.

pub mod draw;
pub mod font;
pub mod sweep;

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;

use sweep::Sweep;

#[derive(Debug, clap::Args)]
pub struct ChartArgs {
    /// What `plume-load compare ... fanout --sweep R1,R2,...` printed on
    /// stdout (its closing {"compare":"fanout",...} line is read; other
    /// lines are skipped), or - for stdin.
    #[arg(long, default_value = "-")]
    input: PathBuf,
    /// The PNG to write, e.g. tests/load/fanout.png.
    #[arg(long)]
    output: PathBuf,
    /// A TrueType font for the text [default: DejaVu Sans or Liberation Sans under /usr/share/fonts].
    #[arg(long)]
    font: Option<PathBuf>,
    /// Width in pixels.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(400..=8000))]
    width: u32,
    /// Height in pixels.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(300..=8000))]
    height: u32,
}

pub fn run(args: &ChartArgs) -> anyhow::Result<()> {
    let text = if args.input.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the comparison from stdin")?;
        text
    } else {
        std::fs::read_to_string(&args.input)
            .with_context(|| format!("cannot read {}", args.input.display()))?
    };
    let sweep = Sweep::parse(&text)?;
    let font = font::install(args.font.as_deref())?;
    let png = draw::png(&sweep, (args.width, args.height))?;
    std::fs::write(&args.output, png)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    let servers: Vec<&str> = sweep.series.iter().map(|s| s.server.as_str()).collect();
    eprintln!(
        "chart: wrote {} ({}x{}, servers {}, text in {})",
        args.output.display(),
        args.width,
        args.height,
        servers.join(", "),
        font.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `compare --servers echo,plume,native --rounds 1 fanout
    /// --subscribers 2000 --sweep 25,100,400` prints last, trimmed to the
    /// rows the chart reads and a few it skips.
    const COMPARISON: &str = concat!(
        r#"{"compare":"fanout","command":"plume-load compare --rounds 1 fanout --subscribers 2000 --sweep 25,100,400 --seconds 5","unix_time":1795305600,"cores":2,"rounds":1,"figures":["#,
        r#"{"name":"deliveries_per_sec@25","unit":"/s","echo":49990.0,"plume":49985.0,"native":49988.0,"plume_over_echo":0.9999},"#,
        r#"{"name":"received_pct@25","unit":"%","echo":100.0,"plume":100.0,"native":100.0,"plume_over_echo":1.0},"#,
        r#"{"name":"p50_us@25","unit":"µs","echo":2100.0,"plume":2600.0,"native":2300.0,"plume_over_echo":1.238},"#,
        r#"{"name":"p99_us@25","unit":"µs","echo":6900.0,"plume":9100.0,"native":7800.0,"plume_over_echo":1.319},"#,
        r#"{"name":"max_us@25","unit":"µs","echo":12000.0,"plume":15000.0,"native":13000.0,"plume_over_echo":1.25},"#,
        r#"{"name":"server_cores@25","unit":"cores","echo":0.21,"plume":0.27,"native":0.24,"plume_over_echo":1.286},"#,
        r#"{"name":"deliveries_per_sec@100","unit":"/s","echo":199897.0,"plume":199532.0,"native":199700.0,"plume_over_echo":0.998},"#,
        r#"{"name":"received_pct@100","unit":"%","echo":100.0,"plume":100.0,"native":100.0,"plume_over_echo":1.0},"#,
        r#"{"name":"p50_us@100","unit":"µs","echo":8400.0,"plume":10200.0,"native":9300.0,"plume_over_echo":1.214},"#,
        r#"{"name":"p99_us@100","unit":"µs","echo":20900.0,"plume":30700.0,"native":25100.0,"plume_over_echo":1.469},"#,
        r#"{"name":"deliveries_per_sec@400","unit":"/s","echo":731000.0,"plume":402000.0,"native":455000.0,"plume_over_echo":0.55},"#,
        r#"{"name":"received_pct@400","unit":"%","echo":100.0,"plume":97.4,"native":99.1,"plume_over_echo":0.974},"#,
        r#"{"name":"p50_us@400","unit":"µs","echo":41000.0,"plume":880000.0,"native":610000.0,"plume_over_echo":21.46},"#,
        r#"{"name":"p99_us@400","unit":"µs","echo":97000.0,"plume":2900000.0,"native":2100000.0,"plume_over_echo":29.9},"#,
        r#"{"name":"sustainable_deliveries_per_sec","unit":"/s","echo":731000.0,"plume":199532.0,"native":199700.0,"plume_over_echo":0.273}"#,
        "]}"
    );

    /// A PNG's signature, then its IHDR chunk: length 13, type, width, height.
    fn png_size(png: &[u8]) -> (u32, u32) {
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
        assert_eq!(&png[8..16], b"\0\0\0\x0dIHDR", "IHDR first");
        let word = |at: usize| u32::from_be_bytes([png[at], png[at + 1], png[at + 2], png[at + 3]]);
        (word(16), word(20))
    }

    #[test]
    fn a_sweep_charts_as_a_png_with_every_server_in_its_own_colour() {
        let sweep = Sweep::parse(&format!(
            "{{\"scenario\":\"fanout\",\"server\":\"echo\",\"url\":\"ws://127.0.0.1:1/socket/websocket\"}}\n{COMPARISON}\n"
        ))
        .expect("the sample comparison parses");
        // The same search as `plume-load chart`, so a machine without fonts
        // fails here with the same advice.
        font::install(None).unwrap_or_else(|error| panic!("{error:#}"));
        let png = draw::png(&sweep, (1000, 600)).expect("draws");

        assert_eq!(png_size(&png), (1000, 600));
        let mut reader = png::Decoder::new(std::io::Cursor::new(png))
            .read_info()
            .expect("a readable PNG");
        let mut rgb = vec![0; reader.output_buffer_size().expect("a sane size")];
        let frame = reader.next_frame(&mut rgb).expect("decodes");
        assert_eq!((frame.width, frame.height), (1000, 600));
        assert_eq!(frame.color_type, png::ColorType::Rgb);
        let pixels: Vec<[u8; 3]> = rgb[..frame.buffer_size()]
            .chunks_exact(3)
            .map(|p| [p[0], p[1], p[2]])
            .collect();
        let servers = ["echo", "native", "plume"];
        for (server, colour) in servers.iter().zip(draw::colours(&servers)) {
            let count = pixels
                .iter()
                .filter(|p| **p == [colour.0, colour.1, colour.2])
                .count();
            assert!(count > 200, "{server}'s colour covers {count} pixels");
        }
        let distinct: std::collections::HashSet<[u8; 3]> = draw::colours(&servers)
            .iter()
            .map(|c| [c.0, c.1, c.2])
            .collect();
        assert_eq!(distinct.len(), 3, "one colour a server");
    }
}
