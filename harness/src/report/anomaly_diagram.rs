//! A small picture of an anomaly, in the spirit of Knossos's `linear.svg`: the operations it
//! cites on a time axis, one row per process, each a bar from invocation to completion
//! labelled with what it did; the operation that cannot be placed is red. Inline SVG built
//! with maud, so every label is escaped.

use super::html::fmt_s;
use super::ops::{Op, Outcome};
use maud::{html, Markup};

/// Most operations drawn (the checker's explanation lists them all).
const MAX_OPS: usize = 16;
const WIDTH: f64 = 900.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 26.0;
const TOP: f64 = 10.0;
const AXIS: f64 = 30.0;

/// What an operation did, shortly: `write 12`, `read 12`, `cas 12→15`, `read ?` (no answer).
fn short(o: &Op) -> String {
    let v = |x: &serde_json::Value| {
        if x.is_null() {
            "?".to_string()
        } else {
            x.to_string()
        }
    };
    let what = match (o.f.as_str(), o.invoke_value.as_array()) {
        ("cas", Some(pair)) if pair.len() == 2 => format!("cas {}→{}", v(&pair[0]), v(&pair[1])),
        ("read", _) => format!("read {}", v(&o.value)),
        _ => format!("{} {}", o.f, v(&o.invoke_value)),
    };
    match o.outcome {
        Outcome::Ok => what,
        Outcome::Fail => format!("{what} (fail)"),
        Outcome::Info => format!("{what} (info)"),
        Outcome::Pending => format!("{what} (pending)"),
    }
}

/// The diagram of `ops` (in any order); `focus` is the invocation index of the operation
/// that cannot be placed. Empty markup when there is nothing to draw.
pub fn render(ops: &[&Op], focus: Option<u64>) -> Markup {
    let mut ops: Vec<&Op> = ops.to_vec();
    ops.sort_by_key(|o| (o.start_ns, o.invoke_index));
    if ops.is_empty() {
        return html! {};
    }
    // Keep the focus and the operations nearest to it.
    if ops.len() > MAX_OPS {
        let at = ops
            .iter()
            .position(|o| Some(o.invoke_index) == focus)
            .unwrap_or(ops.len() - 1);
        let from = at.saturating_sub(MAX_OPS - 1).min(ops.len() - MAX_OPS);
        ops = ops[from..from + MAX_OPS].to_vec();
    }
    let mut procs: Vec<u64> = ops.iter().map(|o| o.process).collect();
    procs.sort_unstable();
    procs.dedup();
    let t0 = ops.iter().map(|o| o.start_ns).min().unwrap_or(0);
    let t1 = ops.iter().map(|o| o.end_ns).max().unwrap_or(t0).max(t0 + 1);
    let pad = (t1 - t0) / 20;
    let (t0, t1) = (t0.saturating_sub(pad), t1 + pad);
    let x = |t: u64| LEFT + (t - t0) as f64 / (t1 - t0) as f64 * (WIDTH - LEFT - RIGHT);
    let height = TOP + ROW * procs.len() as f64 + AXIS;
    let axis_y = TOP + ROW * procs.len() as f64 + 4.0;
    html! {
        svg.diagram xmlns="http://www.w3.org/2000/svg" width=(WIDTH) height=(height)
            viewBox={"0 0 " (WIDTH) " " (height)} role="img"
            aria-label="the operations the anomaly cites on a time axis" {
            @for (row, p) in procs.iter().enumerate() {
                text x="4" y=(TOP + ROW * row as f64 + 17.0) font-size="12" font-family="DejaVu Sans Mono,monospace" {
                    "p" (p)
                }
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + ROW * row as f64 + 21.0)
                    y2=(TOP + ROW * row as f64 + 21.0) stroke="#e3e6eb" {}
            }
            @for o in &ops {
                @let row = procs.iter().position(|p| *p == o.process).unwrap_or(0) as f64;
                @let (a, b) = (x(o.start_ns), x(o.end_ns).max(x(o.start_ns) + 3.0));
                @let bad = Some(o.invoke_index) == focus;
                @let fill = if bad { "#f28b82" } else if o.f == "read" { "#aecbfa" } else { "#ccead1" };
                g {
                    title { "#" (o.invoke_index) " p" (o.process) " " (short(o)) " · " (fmt_s(o.start_ns)) "–" (fmt_s(o.end_ns)) " s" }
                    rect x=(format!("{a:.1}")) y=(TOP + ROW * row + 3.0) width=(format!("{:.1}", b - a))
                        height="16" rx="3" fill=(fill)
                        stroke=(if bad { "#d93025" } else { "#5b6473" })
                        stroke-width=(if bad { "2" } else { "1" }) {}
                    text x=(format!("{:.1}", a + 3.0)) y=(TOP + ROW * row + 15.0) font-size="11"
                        font-family="DejaVu Sans Mono,monospace" { (short(o)) }
                }
            }
            line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(axis_y) y2=(axis_y) stroke="#5b6473" {}
            @for (t, anchor) in [(t0, "start"), (t0 + (t1 - t0) / 2, "middle"), (t1, "end")] {
                text x=(format!("{:.1}", x(t))) y=(axis_y + 16.0) font-size="11" text-anchor=(anchor)
                    font-family="DejaVu Sans,sans-serif" fill="#5b6473" { (fmt_s(t)) " s" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn op(p: u64, f: &str, inv: serde_json::Value, val: serde_json::Value, ix: u64) -> Op {
        Op {
            process: p,
            f: f.into(),
            key: Some("k".into()),
            read_mode: None,
            node: None,
            invoke_index: ix,
            complete_index: Some(ix + 1),
            start_ns: ix * 1_000_000,
            end_ns: ix * 1_000_000 + 3_000_000,
            outcome: Outcome::Ok,
            invoke_value: inv,
            value: val,
            error: None,
        }
    }

    #[test]
    fn draws_each_operation_and_marks_the_one_that_cannot_be_placed() {
        let w = op(1, "write", json!(12), json!(12), 0);
        let c = op(2, "cas", json!([12, 15]), json!([12, 15]), 2);
        let r = op(3, "read", json!(null), json!("<12>"), 6);
        let svg = render(&[&r, &w, &c], Some(6)).into_string();
        assert!(svg.contains(">write 12<"), "{svg}");
        assert!(svg.contains(">cas 12→15<"), "{svg}");
        assert!(
            svg.contains("read &quot;&lt;12&gt;&quot;"),
            "escaped: {svg}"
        );
        assert_eq!(svg.matches("stroke=\"#d93025\"").count(), 1);
        assert_eq!(svg.matches("<rect").count(), 3);
        assert!(render(&[], None).into_string().is_empty());
    }

    #[test]
    fn many_operations_keep_the_focus() {
        let ops: Vec<Op> = (0..40)
            .map(|i| op(i % 4, "read", json!(null), json!(i), i * 2))
            .collect();
        let refs: Vec<&Op> = ops.iter().collect();
        let svg = render(&refs, Some(10)).into_string();
        assert_eq!(svg.matches("<rect").count(), MAX_OPS);
        assert!(svg.contains("stroke=\"#d93025\""));
    }
}
