//! PNG charts drawn with plotters' bitmap backend: raw latencies, latency quantiles over time,
//! and throughput, each with the fault windows shaded; and latency CDFs for comparison pages.
//!
//! Rendering is deterministic: the same history gives the same PNG bytes (inputs are drawn in
//! a fixed order, colours are fixed per name, and nothing reads the clock or a random source).

use super::ops::{Digest, FaultWindow, Op, Outcome};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Width of every run chart, px.
pub const WIDTH: u32 = 1400;
/// Height of the raw-latency chart, px.
pub const RAW_HEIGHT: u32 = 760;
/// Height of the quantile and rate charts, px.
pub const PANEL_HEIGHT: u32 = 900;
/// Width of the legend column on the right of each chart, px.
const LEGEND_W: u32 = 250;
const FONT: &str = "sans-serif";

type Area<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// Maps plotters' drawing errors (not `Send` for every backend) into `anyhow`.
fn pe<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// A fixed colour per series name, so a series looks the same in every chart and every run.
pub fn series_color(name: &str) -> RGBColor {
    match name {
        "read" => RGBColor(31, 100, 200),
        "write" => RGBColor(230, 115, 0),
        "cas" => RGBColor(0, 150, 70),
        "add" => RGBColor(140, 60, 180),
        "read log" => RGBColor(31, 119, 180),
        "read read-index" => RGBColor(0, 170, 190),
        "read lease" => RGBColor(214, 39, 40),
        "read follower" => RGBColor(140, 86, 75),
        "read stale" => RGBColor(120, 120, 120),
        other => palette_color(stable_hash(other)),
    }
}

/// The n-th colour of a palette of well-separated colours.
pub fn palette_color(n: usize) -> RGBColor {
    const P: [RGBColor; 10] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
        RGBColor(188, 189, 34),
        RGBColor(23, 190, 207),
    ];
    P[n % P.len()]
}

/// A fixed colour per fault kind (shading uses it with transparency).
pub fn fault_color(kind: &str) -> RGBColor {
    match kind {
        "partition" => RGBColor(220, 40, 40),
        "kill" => RGBColor(120, 60, 200),
        "pause" => RGBColor(30, 120, 220),
        "clock" => RGBColor(200, 150, 0),
        "delay" => RGBColor(0, 150, 150),
        "loss" => RGBColor(120, 140, 0),
        "membership" => RGBColor(200, 60, 150),
        "power" => RGBColor(40, 40, 40),
        "slow-disk" => RGBColor(150, 90, 30),
        "failpoint" => RGBColor(230, 110, 20),
        other => palette_color(stable_hash(other) + 3),
    }
}

/// FNV-1a over the name: deterministic across runs and platforms (unlike `DefaultHasher`).
fn stable_hash(s: &str) -> usize {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    (h % 1_000_003) as usize
}

/// Operation names in display order: the usual ones first, then the rest alphabetically.
fn ordered_ops(ops: &[Op]) -> Vec<String> {
    let mut names: Vec<String> = ops.iter().map(|o| o.f.clone()).collect();
    names.sort_by_key(|n| (op_rank(n), n.clone()));
    names.dedup();
    names
}

fn op_rank(name: &str) -> usize {
    ["read", "write", "cas", "add"]
        .iter()
        .position(|x| *x == name)
        .unwrap_or(4)
}

/// Series of the per-read-mode views, in display order: reads by mode, then other operations.
fn ordered_groups(ops: &[Op]) -> Vec<String> {
    let mut names: Vec<String> = ops.iter().map(Op::group).collect();
    names.sort_by_key(|n| (!n.starts_with("read"), op_rank(n), n.clone()));
    names.dedup();
    names
}

/// A readable time-bucket width (s) giving at most `max_buckets` buckets over `duration_s`.
pub fn nice_bucket(duration_s: f64, max_buckets: f64) -> f64 {
    const STEPS: [f64; 14] = [
        0.1, 0.2, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0,
    ];
    for s in STEPS {
        if duration_s / s <= max_buckets {
            return s;
        }
    }
    (duration_s / max_buckets).ceil().max(600.0)
}

/// The chart's x range: from 0 to the end of the history, in seconds.
fn x_max(d: &Digest) -> f64 {
    d.duration_s()
}

/// Shades each fault window over the plotting area `px` (absolute pixels) of `root`, which
/// spans `0..x_max` seconds; labels windows wide enough to hold their name when `label`.
fn shade_faults(
    root: &Area,
    px: &(std::ops::Range<i32>, std::ops::Range<i32>),
    x_max: f64,
    faults: &[FaultWindow],
    kinds: &[String],
    label: bool,
) -> Result<()> {
    let (xr, yr) = px;
    let w = f64::from(xr.end - xr.start);
    let to_px = |ns: u64| xr.start + ((ns as f64 / 1e9 / x_max).clamp(0.0, 1.0) * w) as i32;
    // Where the last label drawn in each lane ends: a label that would overlap it is left
    // out (the band and its edge still show the window).
    let mut lane_end = [i32::MIN; 4];
    for f in faults {
        let c = fault_color(&f.kind);
        let (x0, x1) = (
            to_px(f.start_ns),
            to_px(f.end_ns).max(to_px(f.start_ns) + 2),
        );
        root.draw(&Rectangle::new(
            [(x0, yr.start), (x1, yr.end)],
            c.mix(0.13).filled(),
        ))
        .map_err(pe)?;
        // A solid edge at the start makes back-to-back windows distinguishable.
        root.draw(&PathElement::new(
            vec![(x0, yr.start), (x0, yr.end)],
            c.mix(0.5).stroke_width(1),
        ))
        .map_err(pe)?;
        let lane = kinds.iter().position(|k| *k == f.kind).unwrap_or(0) % 4;
        // A light backing keeps the label readable over dense points.
        let tw = 9 * f.kind.chars().count() as i32 + 6;
        if label && x1 - x0 >= 44 && x0 >= lane_end[lane] {
            lane_end[lane] = x0 + 1 + tw;
            let y = yr.start + 4 + lane as i32 * 20;
            root.draw(&Rectangle::new(
                [(x0 + 1, y - 1), (x0 + 1 + tw, y + 18)],
                WHITE.mix(0.75).filled(),
            ))
            .map_err(pe)?;
            root.draw(&Text::new(
                f.kind.clone(),
                (x0 + 4, y),
                (FONT, 16).into_font().color(&darker(c)),
            ))
            .map_err(pe)?;
        }
    }
    Ok(())
}

/// The colour of leaderless spans and leader-change lines.
const LEADER_COLOR: RGBColor = RGBColor(90, 30, 120);

/// Marks what the cluster did over the plotting area `px`: each leaderless span as a strip
/// along the bottom, each leader change as a dashed vertical line labelled with the new
/// leader (labels that would overlap the previous one are left out).
fn mark_cluster(
    root: &Area,
    px: &(std::ops::Range<i32>, std::ops::Range<i32>),
    x_max: f64,
    marks: &super::ops::ClusterMarks,
) -> Result<()> {
    let (xr, yr) = px;
    let w = f64::from(xr.end - xr.start);
    let to_px = |ns: u64| xr.start + ((ns as f64 / 1e9 / x_max).clamp(0.0, 1.0) * w) as i32;
    for &(a, b) in &marks.leaderless {
        let (x0, x1) = (to_px(a), to_px(b).max(to_px(a) + 2));
        root.draw(&Rectangle::new(
            [(x0, yr.end - 10), (x1, yr.end)],
            LEADER_COLOR.mix(0.7).filled(),
        ))
        .map_err(pe)?;
    }
    let mut label_end = i32::MIN;
    for (t, leader) in &marks.leader_changes {
        let x = to_px(*t);
        // Dashes of 6 px, bounded by the plot's height.
        let mut y = yr.start;
        while y < yr.end {
            root.draw(&PathElement::new(
                vec![(x, y), (x, (y + 6).min(yr.end))],
                LEADER_COLOR.stroke_width(1),
            ))
            .map_err(pe)?;
            y += 10;
        }
        if x >= label_end {
            let label = format!("→{leader}");
            let tw = 9 * label.chars().count() as i32 + 4;
            root.draw(&Text::new(
                label,
                (x + 3, yr.end - 30),
                (FONT, 15).into_font().color(&LEADER_COLOR),
            ))
            .map_err(pe)?;
            label_end = x + 3 + tw;
        }
    }
    Ok(())
}

fn cluster_legend(d: &Digest) -> Vec<(String, Mark)> {
    let mut v = Vec::new();
    if !d.cluster.leaderless.is_empty() {
        v.push(("leaderless".to_string(), Mark::Band(LEADER_COLOR)));
    }
    if !d.cluster.leader_changes.is_empty() {
        v.push((
            format!("leader change ({})", d.cluster.leader_changes.len()),
            Mark::Line(LEADER_COLOR),
        ));
    }
    v
}

/// Tick label: no trailing zeros ("10", "2.5", "0.25").
fn tick(v: &f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn darker(c: RGBColor) -> RGBColor {
    RGBColor(
        (f64::from(c.0) * 0.6) as u8,
        (f64::from(c.1) * 0.6) as u8,
        (f64::from(c.2) * 0.6) as u8,
    )
}

/// What a legend entry's marker looks like.
enum Mark {
    Dot(RGBColor),
    Line(RGBColor),
    Cross,
    Triangle,
    Band(RGBColor),
}

/// Draws a legend column: headings and entries, top to bottom, in `area`.
fn draw_legend(area: &Area, sections: &[(&str, Vec<(String, Mark)>)]) -> Result<()> {
    let (xr, yr) = area.get_pixel_range();
    let x = 14;
    let mut y = 50;
    let h = yr.end - yr.start;
    for (title, entries) in sections {
        if entries.is_empty() {
            continue;
        }
        area.draw(&Text::new(
            title.to_string(),
            (x, y),
            (FONT, 18).into_font().style(FontStyle::Bold).color(&BLACK),
        ))
        .map_err(pe)?;
        y += 26;
        for (name, mark) in entries {
            if y > h - 20 {
                break;
            }
            let c = (x + 10, y + 9);
            match mark {
                Mark::Dot(col) => area.draw(&Circle::new(c, 6, col.filled())),
                Mark::Line(col) => area.draw(&PathElement::new(
                    vec![(x, c.1), (x + 22, c.1)],
                    col.stroke_width(3),
                )),
                Mark::Cross => area.draw(&Cross::new(c, 6, BLACK.stroke_width(2))),
                Mark::Triangle => area.draw(&TriangleMarker::new(c, 7, BLACK.filled())),
                Mark::Band(col) => area.draw(&Rectangle::new(
                    [(x, y), (x + 22, y + 18)],
                    col.mix(0.3).filled(),
                )),
            }
            .map_err(pe)?;
            let font = (FONT, 17).into_font().color(&BLACK);
            let room = (xr.end - xr.start - x - 32 - 6).max(40) as u32;
            let text = fit_text(name, room, |t| {
                area.estimate_text_size(t, &font).map_or(0, |(w, _)| w)
            });
            area.draw(&Text::new(text, (x + 32, y), font)).map_err(pe)?;
            y += 24;
        }
        y += 14;
    }
    Ok(())
}

/// `text` as is if `width` says it fits in `room` px, else shortened in the middle with "…"
/// (the start names the run, the end its timestamp and count: both tell curves apart).
fn fit_text(text: &str, room: u32, width: impl Fn(&str) -> u32) -> String {
    if width(text) <= room {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    // Drop one more character per round, alternately from the left and right half.
    for cut in 1..chars.len() {
        let keep = chars.len() - cut;
        let head = keep.div_ceil(2);
        let tail = keep - head;
        let s: String = chars[..head]
            .iter()
            .chain(std::iter::once(&'…'))
            .chain(&chars[chars.len() - tail..])
            .collect();
        if width(&s) <= room {
            return s;
        }
    }
    "…".into()
}

fn fault_legend(d: &Digest) -> Vec<(String, Mark)> {
    d.fault_kinds()
        .into_iter()
        .map(|k| {
            let c = fault_color(&k);
            (k, Mark::Band(c))
        })
        .collect()
}

/// Splits the canvas into the plot and a legend column of `legend_w` px; draws the title.
fn frame<'a>(root: &Area<'a>, title: &str, legend_w: u32) -> Result<(Area<'a>, Area<'a>)> {
    root.fill(&WHITE).map_err(pe)?;
    let titled = root
        .titled(title, (FONT, 26).into_font().color(&BLACK))
        .map_err(pe)?;
    let (w, _) = titled.dim_in_pixel();
    Ok(titled.split_horizontally(w.saturating_sub(legend_w)))
}

/// `latency-raw.png`: every completed operation as a point at (invocation time, latency),
/// colour by operation, shape by outcome (dot ok, cross fail, triangle info), log-scale
/// latency, fault windows shaded and labelled; leaderless spans and leader changes marked
/// when the digest carries them.
pub fn latency_raw(d: &Digest, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, RAW_HEIGHT)).into_drawing_area();
    let (plot, legend) = frame(
        &root,
        "Latency of every operation (by invocation time)",
        LEGEND_W,
    )?;
    let done: Vec<&Op> = d.ops.iter().filter(|o| o.completed()).collect();
    let (lo, hi) = latency_bounds(done.iter().map(|o| o.latency_ms()));
    let xm = x_max(d);
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(0f64..xm, (lo..hi).log_scale())
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("time since test start (s)")
        .y_desc("latency (ms, log scale)")
        .label_style((FONT, 16))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    let px = chart.plotting_area().get_pixel_range();
    let kinds = d.fault_kinds();
    shade_faults(&root, &px, xm, &d.faults, &kinds, true)?;
    mark_cluster(&root, &px, xm, &d.cluster)?;
    let names = ordered_ops(&d.ops);
    let pt = |o: &Op| (o.start_ns as f64 / 1e9, o.latency_ms().clamp(lo, hi));
    // ok first so that the rarer fail/info marks are drawn on top of the dense ok cloud.
    for outcome in [Outcome::Ok, Outcome::Fail, Outcome::Info] {
        for name in &names {
            let c = series_color(name);
            let pts = done
                .iter()
                .filter(|o| o.outcome == outcome && o.f == *name)
                .map(|o| pt(o));
            match outcome {
                Outcome::Ok => chart
                    .draw_series(pts.map(|p| Circle::new(p, 2, c.mix(0.55).filled())))
                    .map(|_| ()),
                Outcome::Fail => chart
                    .draw_series(pts.map(|p| Cross::new(p, 4, c.stroke_width(2))))
                    .map(|_| ()),
                _ => chart
                    .draw_series(pts.map(|p| TriangleMarker::new(p, 5, c.filled())))
                    .map(|_| ()),
            }
            .map_err(pe)?;
        }
    }
    let ops_legend = names
        .iter()
        .map(|n| (n.clone(), Mark::Dot(series_color(n))))
        .collect();
    let count = |oc: Outcome| done.iter().filter(|o| o.outcome == oc).count();
    draw_legend(
        &legend,
        &[
            ("operation", ops_legend),
            (
                "outcome",
                vec![
                    (format!("ok ({})", count(Outcome::Ok)), Mark::Dot(BLACK)),
                    (format!("fail ({})", count(Outcome::Fail)), Mark::Cross),
                    (format!("info ({})", count(Outcome::Info)), Mark::Triangle),
                ],
            ),
            ("fault windows", fault_legend(d)),
            ("cluster", cluster_legend(d)),
        ],
    )?;
    root.present().map_err(pe)?;
    Ok(())
}

/// A log-scale range covering the latencies (ms), with headroom; a default when empty.
fn latency_bounds(lat: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0f64);
    for l in lat {
        lo = lo.min(l);
        hi = hi.max(l);
    }
    if !lo.is_finite() || hi <= 0.0 {
        return (0.1, 1000.0);
    }
    let lo = (lo.max(0.001) * 0.7).max(0.001);
    let hi = (hi * 1.4).max(lo * 10.0);
    (lo, hi)
}

/// Exact quantile of sorted values (nearest rank).
fn quantile_sorted(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let i = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[i]
}

/// `latency-quantiles.png`: four panels (p50, p95, p99, max) of the `ok` latencies per time
/// bucket (by invocation time), one line per read mode and per write operation.
pub fn latency_quantiles(d: &Digest, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, PANEL_HEIGHT)).into_drawing_area();
    let xm = x_max(d);
    let bucket = nice_bucket(xm, 80.0);
    let (plot, legend) = frame(
        &root,
        &format!("Latency quantiles of ok operations per {bucket} s bucket, by read mode"),
        LEGEND_W,
    )?;
    let groups = ordered_groups(&d.ops);
    let nb = ((xm / bucket).ceil() as usize).max(1);
    // group -> bucket -> latencies
    let mut data: BTreeMap<&str, Vec<Vec<f64>>> = BTreeMap::new();
    for g in &groups {
        data.insert(g.as_str(), vec![Vec::new(); nb]);
    }
    for o in d.ops.iter().filter(|o| o.outcome == Outcome::Ok) {
        let b = ((o.start_ns as f64 / 1e9 / bucket) as usize).min(nb - 1);
        let g = o.group();
        if let Some(v) = data.get_mut(g.as_str()) {
            v[b].push(o.latency_ms());
        }
    }
    for v in data.values_mut() {
        for b in v.iter_mut() {
            b.sort_by(f64::total_cmp);
        }
    }
    let (lo, hi) = latency_bounds(
        d.ops
            .iter()
            .filter(|o| o.outcome == Outcome::Ok)
            .map(Op::latency_ms),
    );
    let kinds = d.fault_kinds();
    let panels = plot.split_evenly((2, 2));
    for (panel, (qname, q)) in
        panels
            .iter()
            .zip([("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)])
    {
        let mut chart = ChartBuilder::on(panel)
            .margin(10)
            .caption(qname, (FONT, 20).into_font().style(FontStyle::Bold))
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xm, (lo..hi).log_scale())
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("latency (ms)")
            .label_style((FONT, 15))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .axis_desc_style((FONT, 16))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        let px = chart.plotting_area().get_pixel_range();
        shade_faults(&root, &px, xm, &d.faults, &kinds, false)?;
        for g in &groups {
            let c = series_color(g);
            let pts: Vec<Option<(f64, f64)>> = data[g.as_str()]
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    (!v.is_empty()).then(|| ((i as f64 + 0.5) * bucket, quantile_sorted(v, q)))
                })
                .collect();
            // Break the line over empty buckets (no completed op there: no value, not zero).
            for run in pts.split(Option::is_none) {
                let seg: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
                if seg.len() > 1 {
                    chart
                        .draw_series(LineSeries::new(seg.clone(), c.stroke_width(2)))
                        .map_err(pe)?;
                }
                chart
                    .draw_series(seg.into_iter().map(|p| Circle::new(p, 2, c.filled())))
                    .map_err(pe)?;
            }
        }
    }
    let series = groups
        .iter()
        .map(|g| (g.clone(), Mark::Line(series_color(g))))
        .collect();
    draw_legend(
        &legend,
        &[("series", series), ("fault windows", fault_legend(d))],
    )?;
    root.present().map_err(pe)?;
    Ok(())
}

/// `rate.png`: completed operations per second (by completion time), one panel per outcome
/// (ok, fail, info), one line per operation.
pub fn rate(d: &Digest, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, PANEL_HEIGHT)).into_drawing_area();
    let xm = x_max(d);
    let bucket = nice_bucket(xm, 300.0).max(if xm >= 20.0 { 1.0 } else { 0.0 });
    let (plot, legend) = frame(
        &root,
        &format!("Completed operations per second ({bucket} s buckets)"),
        LEGEND_W,
    )?;
    let names = ordered_ops(&d.ops);
    let nb = ((xm / bucket).ceil() as usize).max(1);
    let outcomes = [Outcome::Ok, Outcome::Fail, Outcome::Info];
    // (outcome, op) -> per-bucket counts
    let mut counts: BTreeMap<(Outcome, &str), Vec<u64>> = BTreeMap::new();
    for o in d.ops.iter().filter(|o| o.completed()) {
        let b = ((o.end_ns as f64 / 1e9 / bucket) as usize).min(nb - 1);
        counts
            .entry((o.outcome, o.f.as_str()))
            .or_insert_with(|| vec![0; nb])[b] += 1;
    }
    let kinds = d.fault_kinds();
    let panels = plot.split_evenly((3, 1));
    for (panel, outcome) in panels.iter().zip(outcomes) {
        let ymax = counts
            .iter()
            .filter(|((oc, _), _)| *oc == outcome)
            .flat_map(|(_, v)| v.iter())
            .map(|&c| c as f64 / bucket)
            .fold(0f64, f64::max);
        let ymax = (ymax * 1.15).max(1.0);
        let mut chart = ChartBuilder::on(panel)
            .margin(8)
            .caption(
                format!("{} per second", outcome.as_str()),
                (FONT, 19).into_font().style(FontStyle::Bold),
            )
            .x_label_area_size(44)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..xm, 0f64..ymax)
            .map_err(pe)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("ops/s")
            .label_style((FONT, 15))
            .x_label_formatter(&tick)
            .y_label_formatter(&tick)
            .axis_desc_style((FONT, 16))
            .y_labels(5)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(pe)?;
        let px = chart.plotting_area().get_pixel_range();
        shade_faults(&root, &px, xm, &d.faults, &kinds, outcome == Outcome::Ok)?;
        for name in &names {
            let Some(v) = counts.get(&(outcome, name.as_str())) else {
                continue;
            };
            let pts = v
                .iter()
                .enumerate()
                .map(|(i, &c)| ((i as f64 + 0.5) * bucket, c as f64 / bucket));
            chart
                .draw_series(LineSeries::new(pts, series_color(name).stroke_width(2)))
                .map_err(pe)?;
        }
    }
    let series = names
        .iter()
        .map(|n| (n.clone(), Mark::Line(series_color(n))))
        .collect();
    draw_legend(
        &legend,
        &[("operation", series), ("fault windows", fault_legend(d))],
    )?;
    root.present().map_err(pe)?;
    Ok(())
}

/// One curve of a CDF chart: a label and its latencies (ms), any order.
pub struct CdfSeries {
    /// Shown in the legend.
    pub label: String,
    /// Latencies in ms.
    pub latencies_ms: Vec<f64>,
}

/// A latency CDF chart: x = latency (ms, log scale), y = fraction of operations at or below.
/// Curves are downsampled to at most 2,000 points each (exact at every sampled rank).
pub fn latency_cdf(title: &str, series: &[CdfSeries], path: &Path) -> Result<()> {
    latency_cdf_of(title, "fraction of ok operations ≤ latency", series, path)
}

/// [`latency_cdf`] with another y axis description (what the curves count).
fn latency_cdf_of(title: &str, y_desc: &str, series: &[CdfSeries], path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, (WIDTH, RAW_HEIGHT)).into_drawing_area();
    // Curve labels name runs and read modes: a wider legend keeps them whole.
    let (plot, legend) = frame(&root, title, 460)?;
    let (lo, hi) = latency_bounds(series.iter().flat_map(|s| s.latencies_ms.iter().copied()));
    let mut chart = ChartBuilder::on(&plot)
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d((lo..hi).log_scale(), 0f64..1.0)
        .map_err(pe)?;
    chart
        .configure_mesh()
        .x_desc("latency (ms, log scale)")
        .y_desc(y_desc)
        .label_style((FONT, 16))
        .x_label_formatter(&tick)
        .y_label_formatter(&tick)
        .axis_desc_style((FONT, 18))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(pe)?;
    let mut entries = Vec::new();
    for (i, s) in series.iter().enumerate() {
        let c = palette_color(i);
        let mut v = s.latencies_ms.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            continue;
        }
        let step = n.div_ceil(2000).max(1);
        let mut pts: Vec<(f64, f64)> = (0..n)
            .step_by(step)
            .map(|k| (v[k].clamp(lo, hi), (k + 1) as f64 / n as f64))
            .collect();
        pts.push((v[n - 1].clamp(lo, hi), 1.0));
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(3)))
            .map_err(pe)?;
        entries.push((format!("{} (n={n})", s.label), Mark::Line(c)));
    }
    draw_legend(&legend, &[("series", entries)])?;
    root.present().map_err(pe)?;
    Ok(())
}

/// The set workload's `set-latency.png`: the CDF of each element's stable latency (how long
/// after its add was acknowledged it was in every later read; and from the add's invocation,
/// see `SetReport::stable_latency_since_add`) and, if any, of the lost
/// elements' lost latency (how long it was readable before it vanished for good); the title
/// gives the counts and the stable latency's quantiles. A latency of 0 (never missed) is drawn
/// at the left edge of the log scale.
pub fn set_latency(r: &workloads::checker::SetReport, path: &Path) -> Result<()> {
    let ms = |v: &[u64]| v.iter().map(|&ns| ns as f64 / 1e6).collect::<Vec<f64>>();
    let q = |q: &Option<workloads::checker::LatencyQuantiles>| match q {
        Some(q) => format!(
            "p50 {} p99 {} max {} ms",
            tick(&q.p50),
            tick(&q.p99),
            tick(&q.max)
        ),
        None => "none".into(),
    };
    let mut series = vec![
        CdfSeries {
            label: format!("stable from ack: {}", q(&r.stable_latency)),
            latencies_ms: ms(&r.latencies.stable_ns),
        },
        CdfSeries {
            label: format!("stable from invoke: {}", q(&r.stable_latency_since_add)),
            latencies_ms: ms(&r.latencies.stable_since_add_ns),
        },
    ];
    if !r.latencies.lost_ns.is_empty() {
        series.push(CdfSeries {
            label: format!("lost: {}", q(&r.lost_latency)),
            latencies_ms: ms(&r.latencies.lost_ns),
        });
    }
    let title = format!(
        "Set: {} stable ({} stale), {} lost, {} never read; 0 ms drawn at the left edge",
        r.stable_count, r.stale_count, r.lost.count, r.never_read.count,
    );
    latency_cdf_of(&title, "fraction of elements ≤ latency", &series, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_readable_and_bounded() {
        assert_eq!(nice_bucket(60.0, 80.0), 1.0);
        assert_eq!(nice_bucket(5.0, 80.0), 0.1);
        assert_eq!(nice_bucket(3600.0, 80.0), 60.0);
        assert!(nice_bucket(1e7, 80.0) * 80.0 >= 1e7);
    }

    #[test]
    fn quantiles_use_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile_sorted(&v, 0.5), 50.0);
        assert_eq!(quantile_sorted(&v, 0.99), 99.0);
        assert_eq!(quantile_sorted(&v, 1.0), 100.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
        assert_eq!(tick(&10.0), "10");
        assert_eq!(tick(&2.5), "2.5");
        assert_eq!(tick(&0.25), "0.25");
    }

    #[test]
    fn long_legend_entries_are_shortened_in_the_middle() {
        let w = |t: &str| t.chars().count() as u32 * 10;
        assert_eq!(fit_text("short", 100, w), "short");
        let s = fit_text("set-kill-read-index 20261202T022041 (n=12)", 200, w);
        assert!(w(&s) <= 200, "{s}");
        assert!(
            s.starts_with("set-kill") && s.ends_with("(n=12)") && s.contains('…'),
            "{s}"
        );
        assert_eq!(fit_text("abc", 0, w), "…");
    }

    #[test]
    fn colours_are_stable() {
        assert_eq!(series_color("read lease"), series_color("read lease"));
        assert_eq!(fault_color("weird"), fault_color("weird"));
        assert_eq!(stable_hash("abc"), stable_hash("abc"));
    }
}
