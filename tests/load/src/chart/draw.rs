//! Drawing a [`Sweep`] as a PNG: latency percentiles (log ms) against the
//! delivery rate the subscribers measured (log deliveries/s), one colour a
//! server, p99 solid with circles and p50 dashed with triangles.
//!
//! Both axes are logarithmic because a sweep's rates usually double from
//! step to step and latency grows by orders of magnitude once a server falls
//! behind. The x of a point is what was *measured*, not the rate asked for:
//! a server that could not keep up bends its line back, which is the point
//! of the chart.

use std::ops::Range;

use plotters::prelude::*;

use super::font::FAMILY;
use super::sweep::Sweep;
use crate::report::Count;

/// The colours of the servers a comparison usually holds, so that a server
/// keeps its colour from chart to chart.
const KNOWN: [(&str, RGBColor); 2] = [
    ("echo", RGBColor(31, 119, 180)),
    ("plume", RGBColor(214, 39, 40)),
];

/// Colours for any other server, in the order they appear.
const OTHERS: [RGBColor; 5] = [
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(140, 86, 75),
    RGBColor(23, 190, 207),
];

const TITLE: &str = "Fan-out latency against delivery rate";

const GRID: RGBColor = RGBColor(215, 215, 215);
const FAINT_GRID: RGBColor = RGBColor(240, 240, 240);
const NOTE: RGBColor = RGBColor(90, 90, 90);

/// The colour of each of `servers`, in order.
pub fn colours(servers: &[&str]) -> Vec<RGBColor> {
    let mut others = OTHERS.iter().cycle();
    servers
        .iter()
        .map(|server| {
            KNOWN
                .iter()
                .find(|(name, _)| name == server)
                .map(|(_, colour)| *colour)
                .or_else(|| others.next().copied())
                .unwrap_or(BLACK)
        })
        .collect()
}

/// The sweep as a `width` x `height` PNG file's bytes. The font must have
/// been installed ([`super::font::install`]).
pub fn png(sweep: &Sweep, (width, height): (u32, u32)) -> anyhow::Result<Vec<u8>> {
    let mut rgb = vec![0; width as usize * height as usize * 3];
    draw(sweep, &mut rgb, (width, height))?;
    let mut file = Vec::new();
    let mut encoder = png::Encoder::new(&mut file, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgb)?;
    writer.finish()?;
    Ok(file)
}

/// One percentile's line of one server, in chart units.
struct Line {
    label: String,
    colour: RGBColor,
    /// p50 is drawn dashed with triangles, p99 solid with circles.
    median: bool,
    /// (deliveries/s, ms, deliveries were lost at this rate).
    points: Vec<(f64, f64, bool)>,
}

fn lines(sweep: &Sweep) -> Vec<Line> {
    let servers: Vec<&str> = sweep.series.iter().map(|s| s.server.as_str()).collect();
    let mut lines = Vec::new();
    for (series, colour) in sweep.series.iter().zip(colours(&servers)) {
        for (name, median) in [("p99", false), ("p50", true)] {
            let points: Vec<(f64, f64, bool)> = series
                .points
                .iter()
                .filter_map(|point| {
                    let x = point.deliveries_per_sec.filter(|x| *x > 0.0)?;
                    let us = if median { point.p50_us } else { point.p99_us };
                    let y = us.filter(|y| *y > 0.0)? / 1e3;
                    Some((x, y, point.lost_deliveries()))
                })
                .collect();
            if !points.is_empty() {
                lines.push(Line {
                    label: format!("{} {name}", series.server),
                    colour,
                    median,
                    points,
                });
            }
        }
    }
    lines
}

fn draw(sweep: &Sweep, rgb: &mut [u8], size: (u32, u32)) -> anyhow::Result<()> {
    let lines = lines(sweep);
    anyhow::ensure!(
        !lines.is_empty(),
        "the fan-out comparison has no p50_us or p99_us figures to chart"
    );
    let x = span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.0)));
    let y = span(lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)));

    let root = BitMapBackend::with_buffer(rgb, size).into_drawing_area();
    root.fill(&WHITE)?;
    let area = root
        .margin(8, 0, 0, 0)
        .titled(TITLE, (FAMILY, 26).into_font())?;
    let area = area.titled(&subtitle(sweep), (FAMILY, 16).into_font().color(&NOTE))?;
    let mut chart = ChartBuilder::on(&area)
        .margin_left(12)
        .margin_right(28)
        .margin_bottom(12)
        .x_label_area_size(56)
        .y_label_area_size(72)
        .build_cartesian_2d(
            x.clone()
                .log_scale()
                .with_key_points(ticks(&x))
                .with_light_points(minor_ticks(&x)),
            y.clone()
                .log_scale()
                .with_key_points(ticks(&y))
                .with_light_points(minor_ticks(&y)),
        )?;
    chart
        .configure_mesh()
        .x_desc("deliveries per second (measured, log scale)")
        .y_desc("latency from publish to receipt (ms, log scale)")
        .x_label_formatter(&|v| rate_label(*v))
        .y_label_formatter(&|v| ms_label(*v))
        .label_style((FAMILY, 15))
        .axis_desc_style((FAMILY, 17))
        .bold_line_style(GRID)
        .light_line_style(FAINT_GRID)
        .draw()?;

    for line in &lines {
        let colour = line.colour;
        let path = line.points.iter().map(|&(x, y, _)| (x, y));
        // A hollow marker (white inside): the rate lost deliveries, so its
        // latencies describe only the messages that arrived.
        let marker = |lost: bool| -> (ShapeStyle, ShapeStyle) {
            if lost {
                (WHITE.filled(), colour.stroke_width(2))
            } else {
                (colour.filled(), colour.filled())
            }
        };
        if line.median {
            chart
                .draw_series(DashedLineSeries::new(path, 9, 6, colour.stroke_width(2)))?
                .label(&line.label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 14, y))
                        + PathElement::new(vec![(-14, 0), (-7, 0)], colour.stroke_width(2))
                        + PathElement::new(vec![(7, 0), (14, 0)], colour.stroke_width(2))
                        + TriangleMarker::new((0, 0), 6, colour.filled())
                });
            chart.draw_series(line.points.iter().map(|&(x, y, lost)| {
                let (inside, edge) = marker(lost);
                let corners = triangle(7);
                let mut outline = corners.to_vec();
                outline.push(corners[0]);
                EmptyElement::at((x, y))
                    + Polygon::new(corners.to_vec(), inside)
                    + PathElement::new(outline, edge)
            }))?;
        } else {
            chart
                .draw_series(LineSeries::new(path, colour.stroke_width(3)))?
                .label(&line.label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x + 14, y))
                        + PathElement::new(vec![(-14, 0), (14, 0)], colour.stroke_width(3))
                        + Circle::new((0, 0), 5, colour.filled())
                });
            chart.draw_series(line.points.iter().map(|&(x, y, lost)| {
                let (inside, edge) = marker(lost);
                EmptyElement::at((x, y))
                    + Circle::new((0, 0), 5, inside)
                    + Circle::new((0, 0), 5, edge)
            }))?;
        }
    }
    if lines.iter().any(|l| l.points.iter().any(|p| p.2)) {
        chart
            .draw_series(std::iter::empty::<Circle<(f64, f64), i32>>())?
            .label("hollow: deliveries lost")
            .legend(|(x, y)| Circle::new((x + 14, y), 5, NOTE.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(GRID)
        .label_font((FAMILY, 15))
        .legend_area_size(34)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The corners of an upward triangle around (0, 0), `size` pixels from its
/// centre to each corner.
fn triangle(size: i32) -> [(i32, i32); 3] {
    let half_base = (f64::from(size) * 3f64.sqrt() / 2.0).round() as i32;
    [(0, -size), (half_base, size / 2), (-half_base, size / 2)]
}

/// The range to show for `values` (all above 0): theirs, widened by a
/// factor of 1.6 each way, which keeps markers off the frame and takes in
/// at least one 1-2-5 tick.
fn span(values: impl Iterator<Item = f64>) -> Range<f64> {
    let (low, high) = values.fold((f64::INFINITY, 0.0_f64), |(low, high), v| {
        (low.min(v), high.max(v))
    });
    low / 1.6..high * 1.6
}

/// The labelled ticks of a log axis over `range`: 1, 2 and 5 of each
/// decade; every whole multiple on a range too short for three of those;
/// only the powers of ten where 1, 2 and 5 would crowd the axis.
fn ticks(range: &Range<f64>) -> Vec<f64> {
    let within = |steps: &[f64]| -> Vec<f64> {
        decades(range)
            .flat_map(|decade| steps.iter().map(move |step| step * decade))
            .filter(|tick| within_range(range, *tick))
            .collect()
    };
    let ticks = within(&[1.0, 2.0, 5.0]);
    if ticks.len() > 12 {
        within(&[1.0])
    } else if ticks.len() < 3 {
        within(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    } else {
        ticks
    }
}

/// The grid lines between the ticks: every whole multiple of each decade.
fn minor_ticks(range: &Range<f64>) -> Vec<f64> {
    decades(range)
        .flat_map(|decade| (1..10).map(move |step| f64::from(step) * decade))
        .filter(|tick| within_range(range, *tick))
        .collect()
}

/// Whether `value` lies in `range`, both ends included: the axis shows its end.
fn within_range(range: &Range<f64>, value: f64) -> bool {
    range.start <= value && value <= range.end
}

/// The powers of ten from the one at or below the range's start to its end.
fn decades(range: &Range<f64>) -> impl Iterator<Item = f64> {
    let first = range.start.log10().floor() as i32;
    let last = range.end.log10().ceil() as i32;
    (first..=last).map(|exponent| 10f64.powi(exponent))
}

/// 50k, 200k, 1M, 2.5M.
fn rate_label(value: f64) -> String {
    let (scaled, suffix) = match value {
        v if v >= 1e6 => (v / 1e6, "M"),
        v if v >= 1e3 => (v / 1e3, "k"),
        v => (v, ""),
    };
    format!("{}{suffix}", trimmed(scaled))
}

/// 0.5, 2, 1,000.
fn ms_label(value: f64) -> String {
    if value >= 1000.0 {
        Count(value).to_string()
    } else {
        trimmed(value)
    }
}

/// A tick value with no trailing zeros: 0.05, 2, 2.5.
fn trimmed(value: f64) -> String {
    let text = format!("{value:.3}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// How the sweep was run, under the title.
fn subtitle(sweep: &Sweep) -> String {
    let mut parts = Vec::new();
    if let Some(subscribers) = sweep.subscribers {
        parts.push(format!(
            "{} subscribers on one topic",
            Count(subscribers as f64)
        ));
    }
    if let Some(rounds) = sweep.rounds {
        parts.push(if rounds == 1 {
            "one round".to_owned()
        } else {
            format!("median of {rounds} rounds")
        });
    }
    if let Some(cores) = sweep.cores {
        parts.push(format!("{cores} cores shared by the tool and the server"));
    }
    if let Some(unix_time) = sweep.unix_time {
        parts.push(date(unix_time));
    }
    parts.join("  ·  ")
}

/// The UTC calendar date of a Unix time, as YYYY-MM-DD.
fn date(unix_time: u64) -> String {
    // Days since 1970-01-01 to a civil date, counting in 400-year eras of
    // 146,097 days that start on a 1 March, so leap days fall at the end of
    // a year.
    let days = (unix_time / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_one_two_five_of_each_decade_within_the_range() {
        assert_eq!(ticks(&(3.0..120.0)), [5.0, 10.0, 20.0, 50.0, 100.0]);
        assert_eq!(
            ticks(&(0.01..1e6)),
            [0.01, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
        );
        assert_eq!(ticks(&(3.0..9.0)), [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(minor_ticks(&(25.0..45.0)), [30.0, 40.0]);
    }

    #[test]
    fn axis_labels_read_as_people_write_them() {
        assert_eq!(rate_label(50_000.0), "50k");
        assert_eq!(rate_label(2_500_000.0), "2.5M");
        assert_eq!(rate_label(500.0), "500");
        assert_eq!(ms_label(0.05), "0.05");
        assert_eq!(ms_label(20.0), "20");
        assert_eq!(ms_label(2000.0), "2,000");
    }

    #[test]
    fn unix_times_are_dated_in_utc() {
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(date(1_795_305_600), "2026-11-22");
    }
}
