//! Pieces shared by every HTML page: the style sheet, the page frame, verdict badges, number
//! formatting and link encoding. Pages are built with maud, which escapes every interpolated
//! value, so text from a history can never become markup.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use workloads::checker::Verdict;

/// The style sheet of every page: inline, so pages work offline and from `file://`.
pub const CSS: &str = r#"
*{box-sizing:border-box}
body{font:15px/1.45 "DejaVu Sans",system-ui,sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
main{max-width:1460px;margin:0 auto;padding:18px 24px 60px}
h1{font-size:26px;margin:4px 0}
h2{font-size:20px;margin:28px 0 10px;border-bottom:2px solid #dde1e7;padding-bottom:4px}
a{color:#1456b8}
code,pre,.mono{font-family:"DejaVu Sans Mono",monospace;font-size:13px}
pre{background:#fff;border:1px solid #dde1e7;border-radius:6px;padding:10px 12px;overflow-x:auto;white-space:pre-wrap}
.sub{color:#5b6473}
.verdict{display:inline-block;font-weight:700;border-radius:10px;padding:8px 22px;color:#fff;letter-spacing:.5px}
.big{font-size:44px;margin:10px 0}
.valid{background:#1e8e3e}.invalid{background:#d93025}.unknown{background:#8a6d00}
.badges{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0}
.badge{border-radius:8px;padding:8px 14px;color:#fff;min-width:150px}
.badge b{font-size:17px;display:block}
.badge .v{font-size:22px;font-weight:700}
.badge small{opacity:.9}
table{border-collapse:collapse;background:#fff;margin:6px 0;display:block;overflow-x:auto;max-width:100%;width:max-content}
th,td{border:1px solid #dde1e7;padding:4px 10px;text-align:left;vertical-align:top}
th{background:#eef1f5}
td.n{text-align:right;font-variant-numeric:tabular-nums}
img.chart{display:block;width:100%;max-width:1400px;border:1px solid #dde1e7;background:#fff;margin:8px 0 18px}
.anomaly{background:#fff;border:1px solid #f0b4ae;border-left:6px solid #d93025;border-radius:6px;padding:10px 14px;margin:10px 0}
.note{color:#5b6473;font-size:13px}
.context{background:#fff8e1;border-left:4px solid #e0a800;padding:6px 10px;margin:6px 0}
.explain{white-space:pre-wrap;font-family:"DejaVu Sans Mono",monospace;font-size:13px;background:#fdf3f2;padding:8px;border-radius:4px}
.pill{display:inline-block;border-radius:4px;padding:0 6px;color:#fff;font-size:13px}
"#;

/// Wraps a page body in a complete, self-contained HTML document.
pub fn page(title: &str, extra_css: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) (PreEscaped(extra_css)) }
            }
            body { (body) }
        }
    }
}

/// A verdict as a coloured inline label.
pub fn verdict_pill(v: Verdict) -> Markup {
    html! { span class={"pill " (v.as_str())} { (v.label()) } }
}

/// Milliseconds with precision suited to their size ("0.231", "12.4", "1530").
pub fn fmt_ms(ms: f64) -> String {
    if !ms.is_finite() {
        "–".to_string()
    } else if ms < 1.0 {
        format!("{ms:.3}")
    } else if ms < 100.0 {
        format!("{ms:.1}")
    } else {
        format!("{ms:.0}")
    }
}

/// Nanoseconds as seconds with millisecond precision.
pub fn fmt_s(ns: u64) -> String {
    format!("{:.3}", ns as f64 / 1e9)
}

/// Percent-encodes one path segment for use in a relative link (`/`, `#`, `?`, `%`, spaces
/// and non-ASCII would otherwise change what the link points to).
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path made of segments, each percent-encoded, joined by `/`.
pub fn url_path(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| url_segment(s))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_encodes() {
        assert_eq!(fmt_ms(0.2314), "0.231");
        assert_eq!(fmt_ms(12.44), "12.4");
        assert_eq!(fmt_ms(1530.2), "1530");
        assert_eq!(fmt_s(1_234_567_890), "1.235");
        assert_eq!(url_segment("n1"), "n1");
        assert_eq!(url_segment("a b/#?"), "a%20b%2F%23%3F");
        assert_eq!(
            url_path(&["nodes", "n 1", "node.log"]),
            "nodes/n%201/node.log"
        );
    }

    #[test]
    fn page_escapes_title() {
        let p = page("<script>", "", html! { p { ("<b>") } }).into_string();
        assert!(!p.contains("<script>"));
        assert!(p.contains("&lt;script&gt;"));
        assert!(p.contains("&lt;b&gt;"));
    }
}
