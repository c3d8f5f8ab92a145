//! JUnit XML for soak runs: one `<testcase>` per run, so any CI system can show a soak.
//! classname = the matrix cell, name = the seed; an invalid run carries a `<failure>` and an
//! unknown verdict or a harness failure an `<error>`, each with the command that reproduces it.
//! A cell that never got a turn is a case of its own with `<skipped message="why"/>`, so a
//! CI view counts what did not run instead of silently showing fewer cases.

use std::fmt::Write as _;

/// How one run ended, as JUnit sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CaseResult {
    /// The checker found the history valid.
    Passed,
    /// The checker found an anomaly (`<failure>`).
    Failed,
    /// The checker could not decide (`<error type="unknown">`).
    Unknown,
    /// The harness itself failed (`<error type="harness">`).
    HarnessError,
    /// The cell did not run (`<skipped message=...>`; the message says why).
    Skipped,
}

/// One run, as a JUnit test case.
#[derive(Clone, Debug)]
pub struct Case {
    /// The matrix cell (`partition.read-index`).
    pub classname: String,
    /// The seed, as text.
    pub name: String,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// The outcome.
    pub result: CaseResult,
    /// One line: the verdict and the first anomaly.
    pub message: String,
    /// The command that reproduces this run (empty for a skipped cell: nothing ran).
    pub reproduce: String,
    /// The kept run directory, for failing runs.
    pub run_dir: Option<String>,
}

/// Escapes text for XML content and attribute values (also drops characters XML 1.0 forbids,
/// so a stray control byte in a message can never make the file unparsable).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// The whole document: one `<testsuite name=suite>` inside `<testsuites>`, with totals.
pub fn render(suite: &str, timestamp: &str, cases: &[Case]) -> String {
    let failures = cases
        .iter()
        .filter(|c| c.result == CaseResult::Failed)
        .count();
    let errors = cases
        .iter()
        .filter(|c| matches!(c.result, CaseResult::Unknown | CaseResult::HarnessError))
        .count();
    let skipped = cases
        .iter()
        .filter(|c| c.result == CaseResult::Skipped)
        .count();
    let total: f64 = cases.iter().map(|c| c.seconds).sum();
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total:.3}\">",
        escape(suite),
        cases.len()
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" timestamp=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"{skipped}\" time=\"{total:.3}\">",
        escape(suite),
        escape(timestamp),
        cases.len()
    );
    for c in cases {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" time=\"{:.3}\">",
            escape(&c.classname),
            escape(&c.name),
            c.seconds
        );
        let mut body = String::new();
        if !c.reproduce.is_empty() {
            body.push_str(&format!("reproduce: {}\n", c.reproduce));
        }
        if let Some(d) = &c.run_dir {
            body.push_str(&format!("run directory: {d}\n"));
        }
        match c.result {
            CaseResult::Passed => {}
            CaseResult::Skipped => {
                let _ = write!(
                    x,
                    "\n      <skipped message=\"{}\"/>\n    ",
                    escape(&c.message)
                );
            }
            CaseResult::Failed => {
                let _ = write!(
                    x,
                    "\n      <failure type=\"invalid\" message=\"{}\">{}</failure>\n    ",
                    escape(&c.message),
                    escape(&body)
                );
            }
            CaseResult::Unknown | CaseResult::HarnessError => {
                let ty = if c.result == CaseResult::Unknown {
                    "unknown"
                } else {
                    "harness"
                };
                let _ = write!(
                    x,
                    "\n      <error type=\"{ty}\" message=\"{}\">{}</error>\n    ",
                    escape(&c.message),
                    escape(&body)
                );
            }
        }
        if !body.is_empty() {
            let _ = write!(x, "<system-out>{}</system-out>", escape(&body));
        }
        x.push_str("</testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(result: CaseResult) -> Case {
        Case {
            classname: "partition.read-index".into(),
            name: "42".into(),
            seconds: 12.5,
            result,
            message: "INVALID: stale read <k1> & \"x\"\u{1}".into(),
            reproduce: "harness test --seed 42 --bug read-index-no-confirm".into(),
            run_dir: Some("runs/a".into()),
        }
    }

    #[test]
    fn escapes_markup_and_control_characters() {
        assert_eq!(escape("a<b>&\"'\u{7}\n"), "a&lt;b&gt;&amp;&quot;&apos;\n");
    }

    #[test]
    fn counts_and_elements() {
        let xml = render(
            "harness-soak",
            "2026-01-01T00:00:00Z",
            &[
                case(CaseResult::Passed),
                case(CaseResult::Failed),
                case(CaseResult::Unknown),
                case(CaseResult::HarnessError),
                Case {
                    result: CaseResult::Skipped,
                    name: "not run".into(),
                    message: "time budget spent before this cell's turn".into(),
                    reproduce: String::new(),
                    run_dir: None,
                    seconds: 0.0,
                    ..case(CaseResult::Skipped)
                },
            ],
        );
        assert!(
            xml.contains("tests=\"5\" failures=\"1\" errors=\"2\" skipped=\"1\""),
            "{xml}"
        );
        assert_eq!(xml.matches("<testcase ").count(), 5);
        assert!(
            xml.contains("<skipped message=\"time budget spent before this cell&apos;s turn\"/>"),
            "{xml}"
        );
        assert_eq!(
            xml.matches("<system-out>").count(),
            4,
            "none for the skipped"
        );
        assert_eq!(xml.matches("<failure ").count(), 1);
        assert_eq!(xml.matches("<error ").count(), 2);
        assert!(xml.contains("reproduce: harness test --seed 42 --bug read-index-no-confirm"));
        assert!(!xml.contains('\u{1}'));
        assert!(xml.contains("&lt;k1&gt; &amp; &quot;x&quot;"));
    }
}
