//! `timeline.html`, Jepsen-style: time runs down the page, one column per client thread (or
//! per process), one box per operation from invocation to completion, coloured by outcome,
//! fault windows as horizontal bands, leader changes and leaderless spans across the columns,
//! anomaly operations outlined in red.
//!
//! Scale: by default the whole run fits in about nine screens ([`MAX_HEIGHT`]); every box is
//! at least [`MIN_BOX`] px. Each box carries its time and duration as CSS variables and is
//! placed by `calc()` against one scale variable, so zooming (buttons) is one property change
//! and the page stays compact; a filter by key and by read mode hides the other boxes. The
//! script is small and optional: without it the page is the default scale, unfiltered.

use super::charts::fault_color;
use super::html::{fmt_ms, fmt_s, page};
use super::ops::{Digest, Op, Outcome};
use super::run::Run;
use maud::{html, PreEscaped};
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;

/// Width of one column, px.
const COL_W: u32 = 92;
/// Width of the time ruler on the left, px.
const RULER_W: u32 = 70;
/// Smallest box, px (so that every operation stays visible and clickable).
const MIN_BOX: f64 = 4.0;
/// Bounds on the default page height, px: at least a screen, at most about nine screens of
/// 900 px (zoom in for more detail).
const MIN_HEIGHT: f64 = 900.0;
pub const MAX_HEIGHT: f64 = 8_000.0;

/// How operations are assigned to columns.
#[derive(Debug, PartialEq)]
pub struct Columns {
    /// Column of each op (same order as `Digest::ops`).
    pub of_op: Vec<usize>,
    /// Header label and tooltip of each column.
    pub labels: Vec<(String, String)>,
}

/// One column per client thread (`process mod concurrency`, since a client that got an `info`
/// continues as `process + concurrency`) when `concurrency` is known and no two operations of a
/// thread overlap; otherwise one column per process.
pub fn columns(d: &Digest, concurrency: Option<u64>) -> Columns {
    if let Some(c) = concurrency.filter(|c| *c > 0) {
        if let Some(cols) = thread_columns(d, c) {
            return cols;
        }
    }
    let mut procs: Vec<u64> = d.ops.iter().map(|o| o.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let pos: BTreeMap<u64, usize> = procs.iter().enumerate().map(|(i, p)| (*p, i)).collect();
    Columns {
        of_op: d.ops.iter().map(|o| pos[&o.process]).collect(),
        labels: procs
            .iter()
            .map(|p| (format!("p{p}"), format!("process {p}")))
            .collect(),
    }
}

fn thread_columns(d: &Digest, c: u64) -> Option<Columns> {
    let mut threads: BTreeMap<u64, Vec<&Op>> = BTreeMap::new();
    for o in &d.ops {
        threads.entry(o.process % c).or_default().push(o);
    }
    for ops in threads.values() {
        // Ops are in invocation order; the previous one must have completed (by line order)
        // before the next was invoked.
        for w in ops.windows(2) {
            match w[0].complete_index {
                Some(ci) if ci < w[1].invoke_index => {}
                _ => return None,
            }
        }
    }
    let pos: BTreeMap<u64, usize> = threads.keys().enumerate().map(|(i, t)| (*t, i)).collect();
    let labels = threads
        .iter()
        .map(|(t, ops)| {
            let mut ps: Vec<u64> = ops.iter().map(|o| o.process).collect();
            ps.dedup();
            let list: Vec<String> = ps.iter().map(u64::to_string).collect();
            (
                format!("t{t}"),
                format!("thread {t}: processes {}", list.join(", ")),
            )
        })
        .collect();
    Some(Columns {
        of_op: d.ops.iter().map(|o| pos[&(o.process % c)]).collect(),
        labels,
    })
}

/// Default vertical scale, px per second: the median operation gets about 10 px, within the
/// page bounds (so a long run is compressed to [`MAX_HEIGHT`]).
pub fn px_per_s(d: &Digest) -> f64 {
    let mut lat: Vec<f64> = d
        .ops
        .iter()
        .filter(|o| o.completed())
        .map(|o| o.latency_ms() / 1000.0)
        .collect();
    lat.sort_by(f64::total_cmp);
    let median = lat.get(lat.len() / 2).copied().unwrap_or(0.01).max(1e-5);
    let dur = d.duration_s();
    (10.0 / median).clamp(MIN_HEIGHT / dur, MAX_HEIGHT / dur)
}

/// A readable ruler step (s) so that ticks are at least 80 px apart.
fn ruler_step(px_per_s: f64) -> f64 {
    const STEPS: [f64; 16] = [
        0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
        300.0,
    ];
    STEPS
        .into_iter()
        .find(|s| s * px_per_s >= 80.0)
        .unwrap_or(600.0)
}

/// The text of an operation's tooltip.
fn tooltip(o: &Op) -> String {
    let mut t = format!("#{}", o.invoke_index);
    if let Some(c) = o.complete_index {
        let _ = write!(t, "→#{c}");
    }
    let _ = write!(t, " p{} {}", o.process, o.f);
    if let Some(k) = &o.key {
        let _ = write!(t, " {k}");
    }
    if let Some(m) = &o.read_mode {
        let _ = write!(t, " [{m}]");
    }
    if let Some(n) = &o.node {
        let _ = write!(t, " @{n}");
    }
    if !o.invoke_value.is_null() {
        let _ = write!(t, " {}", o.invoke_value);
    }
    let _ = write!(
        t,
        "\n{} {} · {} ms · t={} s",
        o.outcome.as_str(),
        o.value,
        fmt_ms(o.latency_ms()),
        fmt_s(o.start_ns)
    );
    if let Some(e) = &o.error {
        let _ = write!(t, "\nerror: {e}");
    }
    t
}

/// Short label shown inside boxes tall enough to hold it.
fn label(o: &Op) -> String {
    let v = if o.outcome == Outcome::Ok && !o.value.is_null() {
        &o.value
    } else {
        &o.invoke_value
    };
    let mut s = o.f.clone();
    if let Some(k) = &o.key {
        s.push(' ');
        s.push_str(k);
    }
    if !v.is_null() {
        s.push(' ');
        s.push_str(&v.to_string());
    }
    s
}

const TIMELINE_CSS: &str = r#"
main{max-width:none}
.tl{position:relative;background:#fff;border:1px solid #dde1e7}
.hd{position:sticky;top:44px;z-index:20;height:30px;background:#eef1f5;border-bottom:1px solid #c9ced6}
.hd div{position:absolute;top:5px;width:92px;text-align:center;font:12px "DejaVu Sans Mono",monospace}
.o{position:absolute;width:86px;border:1px solid rgba(0,0,0,.35);border-radius:2px;overflow:hidden;font:10px/12px "DejaVu Sans Mono",monospace;white-space:nowrap;padding:0 2px;z-index:2;top:calc(30px + var(--s)*var(--t)*1px);height:max(4px,calc(var(--s)*var(--d)*1px));scroll-margin-top:140px}
.o.x{display:none}
.tools{position:sticky;top:0;z-index:30;background:#f6f7f9;padding:6px 0;display:flex;gap:10px;align-items:center;flex-wrap:wrap}
.tools button,.tools select{font:13px "DejaVu Sans",sans-serif;padding:2px 8px}
.o:hover{z-index:10;outline:2px solid #333}
.k{background:#7fcf8a}.f{background:#f29b94}.i{background:#f4cf5d}.p{background:#d0d3d8}
.a{outline:3px solid #d00;z-index:8}
.o:target{outline:4px solid #000;z-index:9}
.band{position:absolute;left:0;right:0;z-index:1;border-top:2px solid;top:calc(30px + var(--s)*var(--t)*1px);height:max(2px,calc(var(--s)*var(--d)*1px));scroll-margin-top:140px}
.ldr{position:absolute;left:0;right:0;z-index:3;border-top:2px dashed #6a1b9a;top:calc(30px + var(--s)*var(--t)*1px)}
.ldr span{position:absolute;right:4px;top:-15px;font:11px "DejaVu Sans",sans-serif;color:#6a1b9a;background:#fffc}
.nol{position:absolute;left:0;width:66px;z-index:1;background:repeating-linear-gradient(45deg,#b39ddb55 0 4px,transparent 4px 8px);top:calc(30px + var(--s)*var(--t)*1px);height:max(2px,calc(var(--s)*var(--d)*1px))}
.band span{position:absolute;left:74px;font:12px "DejaVu Sans",sans-serif;font-weight:700;white-space:nowrap}
.band:target{outline:3px solid #000}
.tick{position:absolute;left:0;width:66px;text-align:right;font:11px "DejaVu Sans Mono",monospace;color:#5b6473;border-top:1px solid #c9ced6;top:calc(30px + var(--s)*var(--t)*1px)}
.key span{display:inline-block;width:14px;height:14px;border:1px solid #0005;vertical-align:middle;margin:0 4px 0 12px}
"#;

/// The page's script: zoom (the `--s` scale variable, keeping the time at the middle of the
/// window in view) and the key / read-mode filters. Text, not markup: no value from a
/// history is ever interpolated into it.
const TIMELINE_JS: &str = r#"
(function(){
var tl=document.getElementById('tl'),base=parseFloat(tl.dataset.s),s=base;
function mid(){var r=tl.getBoundingClientRect();return (window.innerHeight/2-r.top-30)/s;}
function set(v){var t=mid();s=Math.max(base/64,Math.min(base*4096,v));tl.style.setProperty('--s',s);
 var r=tl.getBoundingClientRect();window.scrollBy(0,t*s+30+r.top-window.innerHeight/2);
 document.getElementById('scale').textContent=(s>=10?s.toFixed(0):s.toPrecision(2))+' px/s';}
document.getElementById('zin').onclick=function(){set(s*2);};
document.getElementById('zout').onclick=function(){set(s/2);};
document.getElementById('zfit').onclick=function(){set(base);};
var k=document.getElementById('fk'),m=document.getElementById('fm');
function filt(){var kv=k.value,mv=m.value,os=tl.querySelectorAll('.o');
 for(var i=0;i<os.length;i++){var o=os[i];
  var hide=(kv&&o.dataset.k!==kv)||(mv&&o.dataset.m!==mv);o.classList.toggle('x',!!hide);}}
k.onchange=filt;m.onchange=filt;
})();
"#;

/// Seconds with four decimals (0.1 ms: finer than a pixel at any zoom the page offers), as
/// a CSS number.
fn css_s(ns: u64) -> String {
    let s = format!("{:.4}", ns as f64 / 1e9);
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Renders the timeline page. `highlight` holds the invocation indexes of operations named by
/// an anomaly.
pub fn render(run: &Run, d: &Digest, highlight: &HashSet<u64>) -> String {
    let concurrency = run.test.raw.get("concurrency").and_then(|v| v.as_u64());
    let cols = columns(d, concurrency);
    let scale = px_per_s(d);
    let dur = d.duration_s();
    let width = RULER_W + COL_W * cols.labels.len().max(1) as u32 + 10;
    // Column positions as classes rather than inline styles: the page stays compact.
    let mut css = String::from(TIMELINE_CSS);
    for i in 0..cols.labels.len() {
        let _ = write!(css, ".c{i}{{left:{}px}}", RULER_W + COL_W * i as u32 + 3);
    }
    let kinds = d.fault_kinds();
    let step = ruler_step(scale);
    let ticks = (dur / step).floor() as u64;
    let mut keys: Vec<&str> = d.ops.iter().filter_map(|o| o.key.as_deref()).collect();
    keys.sort_unstable();
    keys.dedup();
    let mut modes: Vec<&str> = d
        .ops
        .iter()
        .filter_map(|o| o.read_mode.as_deref())
        .collect();
    modes.sort_unstable();
    modes.dedup();
    let mut boxes = String::with_capacity(d.ops.len() * 220);
    for (o, col) in d.ops.iter().zip(&cols.of_op) {
        let cls = match o.outcome {
            Outcome::Ok => "k",
            Outcome::Fail => "f",
            Outcome::Info => "i",
            Outcome::Pending => "p",
        };
        let a = if highlight.contains(&o.invoke_index) {
            " a"
        } else {
            ""
        };
        // maud escapes the tooltip, label and data values; written per op into one buffer.
        let m = html! {
            div id={"op-" (o.invoke_index)} class={"o " (cls) (a) " c" (col)}
                style={"--t:" (css_s(o.start_ns)) ";--d:" (css_s(o.end_ns.saturating_sub(o.start_ns)))}
                data-k=[o.key.as_deref()] data-m=[o.read_mode.as_deref()]
                title=(tooltip(o)) { (label(o)) }
        };
        boxes.push_str(&m.into_string());
    }
    let mut hl: Vec<u64> = highlight.iter().copied().collect();
    hl.sort_unstable();
    let height = format!("calc(50px + var(--s)*{}px)", css_s(d.end_ns));
    let body = html! {
        main {
            p.sub { a href="index.html" { "← run report" } }
            h1 { "Timeline: " (run.name()) }
            p.key {
                "Time runs down; one column per "
                (if cols.labels.first().is_some_and(|l| l.0.starts_with('t')) { "client thread" } else { "process" })
                "; hover a box for its details. Every box is at least " (MIN_BOX) " px tall."
                br;
                span.k {} "ok" span.f {} "fail" span.i {} "info (unknown)" span.p {} "never completed"
                span style="outline:3px solid #d00" {} "in an anomaly"
                @for k in &kinds {
                    span style={"background:" (rgba(k, 0.2)) ";border-top:2px solid " (rgba(k, 0.9))} {} (k)
                }
                @if !d.cluster.leader_changes.is_empty() {
                    span style="border-top:2px dashed #6a1b9a;height:0" {} "leader change"
                }
                @if !d.cluster.leaderless.is_empty() {
                    span style="background:repeating-linear-gradient(45deg,#b39ddb 0 4px,transparent 4px 8px)" {} "no leader (on the ruler)"
                }
            }
            @if !highlight.is_empty() {
                p { "Operations in anomalies: "
                    @for (i, ix) in hl.iter().take(200).enumerate() {
                        @if i > 0 { " " }
                        a href={"#op-" (ix)} { "#" (ix) }
                    }
                }
            }
            div.tools {
                button #zout type="button" title="zoom out" { "−" }
                button #zin type="button" title="zoom in" { "+" }
                button #zfit type="button" title="the whole run in a few screens" { "fit" }
                span #scale.note { (format!("{scale:.0}")) " px/s" }
                label { "key " select #fk { option value="" { "all" } @for k in &keys { option value=(k) { (k) } } } }
                label { "read mode " select #fm { option value="" { "all" } @for m in &modes { option value=(m) { (m) } } } }
            }
            div #tl .tl data-s=(format!("{scale:.3}"))
                style={"--s:" (format!("{scale:.3}")) ";height:" (height) ";width:" (width) "px"} {
                div.hd {
                    @for (i, (l, t)) in cols.labels.iter().enumerate() {
                        div class={"c" (i)} title=(t) { (l) }
                    }
                }
                @for t in 0..=ticks {
                    @let s = t as f64 * step;
                    div.tick style={"--t:" (css_s((s * 1e9) as u64))} { (format!("{s:.3}").trim_end_matches('0').trim_end_matches('.')) " s" }
                }
                @for (from, to) in &d.cluster.leaderless {
                    div.nol style={"--t:" (css_s(*from)) ";--d:" (css_s(to.saturating_sub(*from)))}
                        title={"no leader " (fmt_s(*from)) "–" (fmt_s(*to)) " s"} {}
                }
                @for (at, name) in &d.cluster.leader_changes {
                    div.ldr style={"--t:" (css_s(*at))} title={"new leader " (name) " at " (fmt_s(*at)) " s"} {
                        span { "leader → " (name) }
                    }
                }
                @for w in &d.faults {
                    @let lane = kinds.iter().position(|k| *k == w.kind).unwrap_or(0);
                    div.band id={"op-" (w.start_index)}
                        style={"--t:" (css_s(w.start_ns)) ";--d:" (css_s(w.end_ns.saturating_sub(w.start_ns))) ";background:" (rgba(&w.kind, 0.12)) ";border-color:" (rgba(&w.kind, 0.8))}
                        title={(w.kind) " " (fmt_s(w.start_ns)) "–" (fmt_s(w.end_ns)) " s " (w.detail)} {
                        span style={"top:" (lane * 14) "px;color:" (rgba(&w.kind, 1.0))} {
                            (w.kind) @if !w.stopped { " (never stopped)" }
                        }
                    }
                }
                (PreEscaped(boxes))
            }
            script { (PreEscaped(TIMELINE_JS)) }
        }
    };
    page(&format!("Timeline: {}", run.name()), &css, body).into_string()
}

fn rgba(kind: &str, a: f64) -> String {
    let c = fault_color(kind);
    format!("rgba({},{},{},{a})", c.0, c.1, c.2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use workloads::history::{Event, EventType, Process};

    fn ev(index: u64, p: u64, kind: EventType) -> Event {
        Event {
            index,
            time: index * 1_000_000,
            process: Process::Client(p),
            kind,
            f: "read".into(),
            key: Some("<k>".into()),
            value: serde_json::Value::Null,
            node: None,
            read_mode: None,
            error: None,
        }
    }

    #[test]
    fn threads_group_processes_until_they_overlap() {
        use EventType::*;
        // p0 times out, continues as p2 (concurrency 2).
        let e = vec![
            ev(0, 0, Invoke),
            ev(1, 1, Invoke),
            ev(2, 0, Info),
            ev(3, 2, Invoke),
            ev(4, 1, Ok),
            ev(5, 2, Ok),
        ];
        let d = Digest::from_events(&e);
        let c = columns(&d, Some(2));
        assert_eq!(c.of_op, vec![0, 1, 0]);
        assert_eq!(c.labels[0].0, "t0");
        // Concurrency 1 would make p0 and p1 overlap: fall back to one column per process.
        let c = columns(&d, Some(1));
        assert_eq!(c.of_op, vec![0, 1, 2]);
        assert_eq!(c.labels[2].0, "p2");
    }

    #[test]
    fn escapes_keys_in_boxes() {
        let e = vec![ev(0, 0, EventType::Invoke), ev(1, 0, EventType::Ok)];
        let d = Digest::from_events(&e);
        let run = Run::load_meta(std::path::Path::new("/nonexistent"));
        let html = render(&run, &d, &HashSet::from([0]));
        assert!(!html.contains("<k>"));
        assert!(html.contains("&lt;k&gt;"));
        assert!(html.contains("id=\"op-0\""));
        assert!(html.contains("class=\"o k a c0\""));
    }
}
