//! Charts as SVG documents: accuracy and the ELBO bound against thinking steps (`ltm eval
//! --chart`), and training curves (`ltm train`'s `loss.svg`, `ltm curves`).
//!
//! Pure: figures in, an SVG string out. Text is written as SVG `<text>` elements in a generic
//! `sans-serif` family that the viewer resolves; plotters is built without `ttf`, so nothing here
//! reads a font file. Points that cannot be drawn (not finite, or not positive on a log axis) are
//! left out with a note under the panel, never a panic.

use std::collections::BTreeSet;
use std::ops::Range;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;

/// Width of every chart, in pixels.
pub const WIDTH: u32 = 720;
/// Height of one panel; charts stack their panels top to bottom.
pub const PANEL_HEIGHT: u32 = 400;

/// One line of a chart against thinking steps.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Shown in the legend.
    pub name: String,
    /// (thinking steps, value).
    pub points: Vec<(usize, f64)>,
}

/// How a panel's y axis is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// 0–100 %.
    Percent,
    /// Linear, fitted to the data.
    Linear,
    /// Logarithmic, fitted to the (positive) data.
    Log,
}

/// One panel of lines against thinking steps.
#[derive(Debug, Clone, PartialEq)]
pub struct StepsPanel {
    pub title: String,
    pub y_label: String,
    pub scale: Scale,
    pub series: Vec<Series>,
}

/// Panels against thinking steps, stacked top to bottom. The x axis is categorical over every
/// thinking budget that some series measured (0 included), evenly spaced, so that 0, 1, 2, 4, …, 64
/// are all readable.
pub fn thinking_steps(panels: &[StepsPanel]) -> Result<String> {
    let nothing = [StepsPanel {
        title: "Thinking steps".into(),
        y_label: String::new(),
        scale: Scale::Linear,
        series: vec![],
    }];
    let panels = if panels.is_empty() { &nothing } else { panels };
    let steps: Vec<usize> = panels
        .iter()
        .flat_map(|p| &p.series)
        .flat_map(|s| s.points.iter().map(|&(x, _)| x))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let column = |s: usize| steps.binary_search(&s).unwrap_or(0) as f64;
    let x_fmt = |x: &f64| {
        let i = x.round();
        if (x - i).abs() < 1e-6 && i >= 0.0 {
            steps
                .get(i as usize)
                .map_or(String::new(), usize::to_string)
        } else {
            String::new()
        }
    };
    let n = steps.len().max(1);
    let axis = XAxis {
        label: "thinking steps (fast-learning steps on the prompt before writing)",
        range: -0.5..n as f64 - 0.5,
        labels: n,
        format: &x_fmt,
    };
    document(panels.len(), |areas| {
        for (panel, area) in panels.iter().zip(areas) {
            let lines = panel
                .series
                .iter()
                .map(|s| Line {
                    name: s.name.clone(),
                    points: s.points.iter().map(|&(x, y)| (column(x), y)).collect(),
                })
                .collect::<Vec<_>>();
            let legend = if panel.scale == Scale::Percent {
                SeriesLabelPosition::UpperLeft
            } else {
                SeriesLabelPosition::UpperRight
            };
            draw(
                area,
                &panel.title,
                &axis,
                &panel.y_label,
                panel.scale,
                &lines,
                legend,
            )?;
        }
        Ok(())
    })
}

/// One point of the training curve (one validation of `ltm train`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainingPoint {
    pub tokens_seen: f64,
    /// Mean training loss since the previous point (nats per token).
    pub train_loss: f64,
    /// exp(−ELBO per token) on the validation text.
    pub val_ppl_bound: f64,
}

/// One run's training curve, named in the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Curve {
    pub name: String,
    pub points: Vec<TrainingPoint>,
}

/// Training curves: train loss (top) and the validation ELBO perplexity bound on a log axis
/// (bottom), against tokens seen, one line per run.
pub fn training_curves(curves: &[Curve]) -> Result<String> {
    let most = curves
        .iter()
        .flat_map(|c| &c.points)
        .map(|p| p.tokens_seen)
        .filter(|t| t.is_finite())
        .fold(0.0, f64::max);
    let axis = XAxis {
        label: "tokens seen",
        range: 0.0..if most > 0.0 { most * 1.03 } else { 1.0 },
        labels: 8,
        format: &|x: &f64| count(*x),
    };
    let lines = |y: fn(&TrainingPoint) -> f64| {
        curves
            .iter()
            .map(|c| Line {
                name: c.name.clone(),
                points: c.points.iter().map(|p| (p.tokens_seen, y(p))).collect(),
            })
            .collect::<Vec<_>>()
    };
    document(2, |areas| {
        draw(
            &areas[0],
            "Training loss",
            &axis,
            "train loss (nats per token)",
            Scale::Linear,
            &lines(|p| p.train_loss),
            SeriesLabelPosition::UpperRight,
        )?;
        draw(
            &areas[1],
            "Validation ELBO perplexity bound",
            &axis,
            "perplexity bound (log scale)",
            Scale::Log,
            &lines(|p| p.val_ppl_bound),
            SeriesLabelPosition::UpperRight,
        )
    })
}

/// A numeric x axis shared by a chart's panels.
struct XAxis<'a> {
    label: &'a str,
    range: Range<f64>,
    /// At most this many tick labels.
    labels: usize,
    format: &'a dyn Fn(&f64) -> String,
}

struct Line {
    name: String,
    points: Vec<(f64, f64)>,
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;

/// An SVG document of `panels` panels stacked top to bottom, drawn by `fill`.
fn document(panels: usize, fill: impl FnOnce(&[Area]) -> Result<()>) -> Result<String> {
    let panels = panels.max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, PANEL_HEIGHT * panels as u32))
            .into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        fill(&root.split_evenly((panels, 1)))?;
        root.present().map_err(drawing)?;
    }
    Ok(svg)
}

fn drawing(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow!("cannot draw the chart: {e}")
}

/// Ten colours that tell lines apart (matplotlib's tab10), so that a chart of several runs
/// gives each its own.
const COLORS: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// One panel: title, axes with labels, a line with markers per series, a legend, and a note
/// under the panel about points left out.
fn draw(
    area: &Area,
    title: &str,
    x: &XAxis,
    y_label: &str,
    scale: Scale,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<()> {
    let drawable = |&(px, py): &(f64, f64)| {
        px.is_finite() && py.is_finite() && (scale != Scale::Log || py > 0.0)
    };
    let kept: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            name: l.name.clone(),
            points: l.points.iter().copied().filter(drawable).collect(),
        })
        .collect();
    let left_out: usize = lines
        .iter()
        .map(|l| l.points.iter().filter(|p| !drawable(p)).count())
        .sum();
    let values: Vec<f64> = kept.iter().flat_map(|l| &l.points).map(|p| p.1).collect();
    let mut notes = Vec::new();
    if values.is_empty() {
        notes.push("no data to draw".to_string());
    }
    if left_out > 0 {
        let why = if scale == Scale::Log {
            "not finite or not positive"
        } else {
            "not finite"
        };
        notes.push(format!(
            "{left_out} point{} left out ({why})",
            if left_out == 1 { "" } else { "s" }
        ));
    }
    let height = area.dim_in_pixel().1;
    let (plot, foot) = area.split_vertically(height.saturating_sub(20));
    if !notes.is_empty() {
        foot.draw_text(
            &notes.join("; "),
            &("sans-serif", 13).into_font().color(&RGBColor(120, 40, 40)),
            (12, 2),
        )
        .map_err(drawing)?;
    }
    let (lo, hi) = y_range(scale, &values);
    let y_fmt = |v: &f64| match scale {
        Scale::Percent => format!("{v:.0}%"),
        _ => number(*v),
    };
    match scale {
        Scale::Log => {
            let y: LogCoord<f64> = (lo..hi).log_scale().into();
            panel(&plot, title, x, y_label, y, &y_fmt, &kept, legend)
        }
        _ => {
            let y: RangedCoordf64 = (lo..hi).into();
            panel(&plot, title, x, y_label, y, &y_fmt, &kept, legend)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn panel<Y>(
    area: &Area,
    title: &str,
    x: &XAxis,
    y_label: &str,
    y: Y,
    y_fmt: &dyn Fn(&f64) -> String,
    lines: &[Line],
    legend: SeriesLabelPosition,
) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x.range.clone(), y)
        .map_err(drawing)?;
    chart
        .configure_mesh()
        .x_desc(x.label)
        .y_desc(y_label)
        .x_labels(x.labels)
        .y_labels(8)
        .x_label_formatter(x.format)
        .y_label_formatter(y_fmt)
        .axis_desc_style(("sans-serif", 15))
        .label_style(("sans-serif", 13))
        .max_light_lines(0)
        .bold_line_style(RGBColor(210, 210, 210))
        .draw()
        .map_err(drawing)?;
    for (i, line) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                line.points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(drawing)?
            .label(line.name.as_str())
            .legend(move |(lx, ly)| {
                PathElement::new(vec![(lx, ly), (lx + 20, ly)], color.stroke_width(2))
            });
        chart
            .draw_series(
                line.points
                    .iter()
                    .map(|&p| Circle::new(p, 3, color.filled())),
            )
            .map_err(drawing)?;
    }
    if !lines.is_empty() {
        chart
            .configure_series_labels()
            .position(legend)
            .label_font(("sans-serif", 13))
            .background_style(WHITE.mix(0.85))
            .border_style(RGBColor(180, 180, 180))
            .draw()
            .map_err(drawing)?;
    }
    Ok(())
}

/// The y range of a panel: padded around the values, never empty.
fn y_range(scale: Scale, values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    match scale {
        // A little room, so that lines at 0 % and 100 % stand clear of the frame.
        Scale::Percent => (-3.0, 103.0),
        _ if values.is_empty() => match scale {
            Scale::Log => (1.0, 10.0),
            _ => (0.0, 1.0),
        },
        Scale::Log => {
            let (lo, hi) = if hi / lo < 1.5 {
                (lo / 1.25, hi * 1.25)
            } else {
                (lo / 1.1, hi * 1.1)
            };
            (lo, hi)
        }
        Scale::Linear => {
            let pad = if hi - lo > 1e-12 * hi.abs().max(1.0) {
                (hi - lo) * 0.08
            } else {
                (hi.abs() * 0.05).max(0.05)
            };
            (lo - pad, hi + pad)
        }
    }
}

/// A short axis label: 3 significant figures at most.
fn number(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 || a == 0.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// A count with a k/M/G suffix: 1.2M.
fn count(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let digits = if scaled.fract().abs() < 1e-9 { 0 } else { 1 };
    format!("{scaled:.digits$}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accuracy(name: &str, points: &[(usize, f64)]) -> StepsPanel {
        StepsPanel {
            title: "Accuracy against thinking steps".into(),
            y_label: "accuracy (%)".into(),
            scale: Scale::Percent,
            series: vec![Series {
                name: name.into(),
                points: points.to_vec(),
            }],
        }
    }

    fn elbo(points: &[(usize, f64)]) -> StepsPanel {
        StepsPanel {
            title: "ELBO bound against thinking steps".into(),
            y_label: "−ELBO per token (nats)".into(),
            scale: Scale::Linear,
            series: vec![Series {
                name: "prompt".into(),
                points: points.to_vec(),
            }],
        }
    }

    /// The `points` of every 2-pixel polyline, in drawing order: per panel, its series' lines,
    /// then the legend's swatches (axes and ticks are 1 pixel wide).
    fn paths(svg: &str) -> Vec<String> {
        svg.split("<polyline")
            .skip(1)
            .filter(|p| {
                p.split("/>")
                    .next()
                    .unwrap_or("")
                    .contains("stroke-width=\"2\"")
            })
            .filter_map(|p| p.split("points=\"").nth(1))
            .map(|p| p.split('"').next().unwrap_or("").to_string())
            .collect()
    }

    /// The training chart of one run.
    fn curves(points: &[TrainingPoint]) -> Result<String> {
        training_curves(&[Curve {
            name: "run".into(),
            points: points.to_vec(),
        }])
    }

    fn well_formed(svg: &str) {
        assert!(svg.starts_with("<svg") || svg.contains("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<text").count(), svg.matches("</text>").count());
    }

    #[test]
    fn thinking_chart_has_titles_labels_legend_and_every_budget() {
        let steps = [0, 1, 2, 4, 8, 16, 32, 64];
        let acc: Vec<(usize, f64)> = steps.iter().map(|&s| (s, 10.0 + s as f64)).collect();
        let mut on = accuracy("calculator on", &acc);
        on.series.push(Series {
            name: "calculator off".into(),
            points: acc.iter().map(|&(s, a)| (s, a / 2.0)).collect(),
        });
        let nelbo: Vec<(usize, f64)> = steps.iter().map(|&s| (s, 3.0 - s as f64 / 64.0)).collect();
        let svg = thinking_steps(&[on, elbo(&nelbo)]).unwrap();
        well_formed(&svg);
        assert!(svg.contains(&format!("height=\"{}\"", 2 * PANEL_HEIGHT)));
        for text in [
            "Accuracy against thinking steps",
            "ELBO bound against thinking steps",
            "accuracy (%)",
            "−ELBO per token (nats)",
            "thinking steps",
            "calculator on",
            "calculator off",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
        for s in steps {
            assert!(
                svg.contains(&format!(">\n{s}\n</text>")),
                "no tick label {s}"
            );
        }
        assert!(!svg.contains("left out"));
        assert_eq!(paths(&svg).len(), 6, "3 lines and 3 legend swatches");
    }

    #[test]
    fn points_move_when_the_data_moves() {
        let a = thinking_steps(&[accuracy("x", &[(0, 10.0), (16, 20.0)])]).unwrap();
        let b = thinking_steps(&[accuracy("x", &[(0, 10.0), (16, 60.0)])]).unwrap();
        assert_ne!(paths(&a), paths(&b));
        assert_eq!(
            paths(&a),
            paths(&thinking_steps(&[accuracy("x", &[(0, 10.0), (16, 20.0)])]).unwrap()),
            "deterministic"
        );
        let curve = |loss: f64| {
            curves(&[
                TrainingPoint {
                    tokens_seen: 1000.0,
                    train_loss: 3.0,
                    val_ppl_bound: 20.0,
                },
                TrainingPoint {
                    tokens_seen: 2000.0,
                    train_loss: loss,
                    val_ppl_bound: 9.0,
                },
                TrainingPoint {
                    tokens_seen: 3000.0,
                    train_loss: 1.0,
                    val_ppl_bound: 5.0,
                },
            ])
            .unwrap()
        };
        // Lines: train loss, its swatch, the perplexity bound, its swatch.
        let (two, one) = (paths(&curve(2.0)), paths(&curve(1.5)));
        assert_eq!(two.len(), 4);
        assert_ne!(two[0], one[0], "the loss line moves");
        assert_eq!(two[2], one[2], "the perplexity line stays");
    }

    #[test]
    fn several_runs_draw_a_line_each_in_both_panels() {
        let run = |name: &str, loss: f64| Curve {
            name: name.into(),
            points: (1..=3)
                .map(|i| TrainingPoint {
                    tokens_seen: 1000.0 * i as f64,
                    train_loss: loss / i as f64,
                    val_ppl_bound: 50.0 / i as f64,
                })
                .collect(),
        };
        let svg = training_curves(&[run("recipe A", 3.0), run("recipe B", 2.0)]).unwrap();
        well_formed(&svg);
        assert!(svg.contains("recipe A") && svg.contains("recipe B"));
        // Per panel: two lines and their two legend swatches.
        let lines = paths(&svg);
        assert_eq!(lines.len(), 8);
        assert_ne!(lines[0], lines[1], "the runs' losses differ");
        assert_eq!(lines[4], lines[5], "their perplexity bounds do not");
    }

    #[test]
    fn edge_cases_draw_without_panicking() {
        // One point, all-equal values, nothing at all.
        for svg in [
            thinking_steps(&[accuracy("one", &[(0, 50.0)]), elbo(&[(0, 2.0)])]).unwrap(),
            thinking_steps(&[elbo(&[(0, 2.0), (4, 2.0), (16, 2.0)])]).unwrap(),
            thinking_steps(&[elbo(&[(0, 0.0), (4, 0.0)])]).unwrap(),
            thinking_steps(&[]).unwrap(),
            thinking_steps(&[accuracy("none", &[])]).unwrap(),
            curves(&[]).unwrap(),
            training_curves(&[]).unwrap(),
        ] {
            well_formed(&svg);
        }
        assert!(thinking_steps(&[]).unwrap().contains("no data"));
        assert!(training_curves(&[]).unwrap().contains("no data"));
        let one = curves(&[TrainingPoint {
            tokens_seen: 0.0,
            train_loss: 4.0,
            val_ppl_bound: 50.0,
        }])
        .unwrap();
        well_formed(&one);
        assert!(!one.contains("left out"));
        // Infinite and NaN figures are left out with a note.
        let svg = thinking_steps(&[elbo(&[(0, f64::INFINITY), (2, f64::NAN), (4, 1.5)])]).unwrap();
        well_formed(&svg);
        assert!(svg.contains("2 points left out (not finite)"), "{svg}");
        let svg = curves(&[
            TrainingPoint {
                tokens_seen: 100.0,
                train_loss: f64::NAN,
                val_ppl_bound: f64::INFINITY,
            },
            TrainingPoint {
                tokens_seen: 200.0,
                train_loss: 2.0,
                val_ppl_bound: 0.0,
            },
        ])
        .unwrap();
        well_formed(&svg);
        assert!(svg.contains("1 point left out (not finite)"), "{svg}");
        assert!(
            svg.contains("2 points left out (not finite or not positive)"),
            "{svg}"
        );
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(number(123.456), "123");
        assert_eq!(number(12.345), "12.3");
        assert_eq!(number(2.0), "2.00");
        assert_eq!(number(0.5), "0.500");
        assert_eq!(count(1_200_000.0), "1.2M");
        assert_eq!(count(500_000.0), "500k");
        assert_eq!(count(0.0), "0");
    }
}
