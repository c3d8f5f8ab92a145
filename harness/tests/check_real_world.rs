//! `harness check` and `harness report` on histories from the real world: a torn last line is
//! left out with one warning, an empty or nemesis-only history is `unknown` (exit 2), and a
//! malformed line before the end is one error naming file and line (exit 255).

use std::path::{Path, PathBuf};
use std::process::Command;

const GOOD: &str = concat!(
    r#"{"index":0,"time":1,"process":0,"type":"invoke","f":"write","key":"k","value":1}"#,
    "\n",
    r#"{"index":1,"time":2,"process":0,"type":"ok","f":"write","key":"k","value":1}"#,
    "\n",
    r#"{"index":2,"time":3,"process":1,"type":"invoke","f":"read","key":"k","value":null}"#,
    "\n",
    r#"{"index":3,"time":4,"process":1,"type":"ok","f":"read","key":"k","value":1}"#,
    "\n",
);
const NEMESIS_ONLY: &str = concat!(
    r#"{"index":0,"time":1,"process":"nemesis","type":"info","f":"start","value":{"fault":"kill","nodes":["n1"]}}"#,
    "\n"
);

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn harness(args: &[&str]) -> Out {
    let o = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args(args)
        .output()
        .expect("run harness");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn check(file: &Path) -> Out {
    harness(&["check", file.to_str().unwrap()])
}

#[test]
fn check_leaves_out_a_torn_last_line_with_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    for (name, tail) in [
        ("cut.jsonl", r#"{"index":4,"time":5,"proc"#),
        ("junk.jsonl", "not json at all\n"),
    ] {
        let f = write(dir.path(), name, &format!("{GOOD}{tail}"));
        let o = check(&f);
        assert_eq!(o.code, 0, "{name}: {}{}", o.stdout, o.stderr);
        assert!(o.stdout.contains(": valid"), "{name}: {}", o.stdout);
        let want = format!("{}: line 5:", f.display());
        assert_eq!(o.stderr.matches(&want).count(), 1, "{name}: {}", o.stderr);
        assert_eq!(o.stderr.lines().count(), 1, "{name}: {}", o.stderr);
    }
}

#[test]
fn check_says_unknown_without_operations() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("empty.jsonl", ""),
        ("blank.jsonl", "\n\n"),
        ("nemesis.jsonl", NEMESIS_ONLY),
    ] {
        let f = write(dir.path(), name, text);
        let o = check(&f);
        assert_eq!(o.code, 2, "{name}: {}{}", o.stdout, o.stderr);
        assert!(
            o.stdout.contains("unknown (no operations)"),
            "{name}: {}",
            o.stdout
        );
        let o = harness(&["check", "--json", f.to_str().unwrap()]);
        assert_eq!(o.code, 2, "{name}: {}", o.stdout);
        let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
        assert_eq!(v["valid"], "unknown", "{name}: {v}");
    }
}

#[test]
fn check_names_a_malformed_line_before_the_end_once() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<&str> = GOOD.lines().collect();
    let text = format!(
        "{}\n{}\n{{\"index\":2,\"ti\n{}\n",
        lines[0], lines[1], lines[3]
    );
    let f = write(dir.path(), "mid.jsonl", &text);
    let o = check(&f);
    assert_eq!(o.code, 255, "{}{}", o.stdout, o.stderr);
    let all = format!("{}{}", o.stdout, o.stderr);
    assert_eq!(all.matches("line 3").count(), 1, "{all}");
    assert_eq!(all.matches(&f.display().to_string()).count(), 1, "{all}");
    // The worst code over files: the error wins over a valid file.
    let good = write(dir.path(), "good.jsonl", GOOD);
    let o = harness(&["check", good.to_str().unwrap(), f.to_str().unwrap()]);
    assert_eq!(o.code, 255, "{}", o.stdout);
}

#[test]
fn report_accepts_a_torn_tail_and_shows_no_operations_as_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, history: &str| {
        let d = dir.path().join(name);
        std::fs::create_dir_all(&d).unwrap();
        write(&d, "history.jsonl", history);
        // A results.json that claims valid must not make an empty history look valid.
        write(&d, "results.json", r#"{"valid": true}"#);
        let o = harness(&["report", d.to_str().unwrap()]);
        (d, o)
    };
    let (d, o) = run("torn", &format!("{GOOD}{{\"index\":4,\"ti"));
    assert_eq!(o.code, 0, "{}", o.stderr);
    let hist = d.join("history.jsonl").display().to_string();
    assert_eq!(
        o.stderr.matches(&format!("{hist}: line 5:")).count(),
        1,
        "{}",
        o.stderr
    );
    assert!(d.join("index.html").is_file());

    let (d, o) = run("empty", "");
    assert_eq!(o.code, 0, "{}", o.stderr);
    let page = std::fs::read_to_string(d.join("index.html")).unwrap();
    assert!(
        page.contains("verdict big unknown"),
        "page verdict is not unknown"
    );
    assert!(page.contains("no operations"));

    let (d, o) = run("mid", &format!("{{\"index\":0,\n{GOOD}"));
    assert_eq!(o.code, 255, "{}", o.stderr);
    let hist = d.join("history.jsonl").display().to_string();
    assert_eq!(o.stderr.matches(&hist).count(), 1, "{}", o.stderr);
    assert!(
        o.stderr.contains(&format!("{hist}: line 1:")),
        "{}",
        o.stderr
    );
}
