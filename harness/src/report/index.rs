//! `results/index.html` (every run, newest first) and the `results/latest` symlink.

use super::html::{page, url_path};
use super::run::Run;
use crate::run_dir::write_atomic;
use anyhow::{bail, Context, Result};
use maud::html;
use std::path::{Path, PathBuf};
use workloads::checker::Verdict;

/// Files whose presence makes a directory a run directory.
const RUN_MARKERS: [&str; 3] = ["results.json", "test.json", "history.jsonl"];

/// Every run directory `results_dir/<test>/<timestamp>/` (holding a `results.json`,
/// `test.json` or `history.jsonl`), newest first: by timestamp directory name descending (the
/// harness names them so that they sort by time), then by test name. Symlinks (`latest`) are
/// not followed, so no run is listed twice.
pub fn find_runs(results_dir: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<(String, String, PathBuf)> = Vec::new();
    let subdirs = |p: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
            .map(|e| e.path())
            .collect()
    };
    for test in subdirs(results_dir) {
        for run in subdirs(&test) {
            if RUN_MARKERS.iter().any(|m| run.join(m).is_file()) {
                let name = |p: &Path| {
                    p.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default()
                };
                runs.push((name(&run), name(&test), run));
            }
        }
    }
    runs.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
    runs.into_iter().map(|r| r.2).collect()
}

/// Writes `results_dir/index.html` listing every run (see [`find_runs`]) with its verdict per
/// read mode, and a link to its report. Runs without `results.json` show `unknown`.
pub fn rebuild_results_index(results_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(results_dir)
        .with_context(|| format!("creating {}", results_dir.display()))?;
    let runs: Vec<Run> = find_runs(results_dir)
        .iter()
        .map(|d| Run::load_meta(d))
        .collect();
    let count = |v: Verdict| runs.iter().filter(|r| r.results.overall == v).count();
    let body = html! {
        main {
            h1 { "Test runs" }
            p.sub {
                (runs.len()) " runs: "
                (count(Verdict::Valid)) " valid, " (count(Verdict::Invalid)) " INVALID, "
                (count(Verdict::Unknown)) " unknown. Newest first."
                @if results_dir.join("latest").exists() { " " a href="latest/index.html" { "latest run" } }
            }
            table {
                tr { th { "time" } th { "test" } th { "verdict" } th { "per read mode" } th { "seed" } th { "files" } }
                @for r in &runs {
                    @let rel = rel_link(results_dir, &r.dir);
                    tr {
                        td.mono { (r.timestamp()) }
                        td {
                            @if r.dir.join("index.html").is_file() {
                                a href={(rel) "/index.html"} { (r.name()) }
                            } @else { (r.name()) }
                        }
                        td { span class={"pill " (r.results.overall.as_str())} { (r.results.overall.label()) } }
                        td {
                            @for (mode, m) in &r.results.read_modes {
                                span class={"pill " (m.valid.as_str())} title=(m.valid.label()) { (mode) ": " (m.valid.label()) }
                                " "
                            }
                        }
                        td.mono { (r.test.text("seed").unwrap_or_default()) }
                        td {
                            @for f in ["history.jsonl", "results.json"] {
                                @if r.dir.join(f).is_file() { a href={(rel) "/" (f)} { (f) } " " }
                            }
                        }
                    }
                }
            }
        }
    };
    let out = results_dir.join("index.html");
    write_atomic(&out, page("Test runs", "", body).into_string().as_bytes())
}

/// The link from `base` to `dir` (a run directory under it), percent-encoded.
fn rel_link(base: &Path, dir: &Path) -> String {
    let rel = dir.strip_prefix(base).unwrap_or(dir);
    let segs: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
    url_path(&segs)
}

/// Points `results_dir/latest` at `run_dir` (a relative link when `run_dir` is inside
/// `results_dir`), replacing an older link atomically (new link, then rename), so readers never
/// see it missing. Refuses to replace a `latest` that is a real file or directory.
pub fn update_latest(results_dir: &Path, run_dir: &Path) -> Result<()> {
    let latest = results_dir.join("latest");
    if let Ok(md) = std::fs::symlink_metadata(&latest) {
        if !md.file_type().is_symlink() {
            bail!(
                "{} exists and is not a symlink; not replacing it",
                latest.display()
            );
        }
    }
    let target = run_dir.strip_prefix(results_dir).unwrap_or(run_dir);
    let tmp = results_dir.join(format!(".latest.tmp.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(target, &tmp)
        .with_context(|| format!("creating symlink {}", tmp.display()))?;
    #[cfg(not(unix))]
    bail!("symlinks are only supported on unix");
    std::fs::rename(&tmp, &latest).with_context(|| format!("replacing {}", latest.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mk(dir: &Path, test: &str, ts: &str, results: &str) -> PathBuf {
        let d = dir.join(test).join(ts);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("results.json"), results).unwrap();
        d
    }

    #[test]
    fn lists_newest_first_and_latest_link_is_replaced() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        let a = mk(
            r,
            "register-none-lease",
            "20260101T000000",
            r#"{"valid":true}"#,
        );
        let b = mk(
            r,
            "register-kill-<b>",
            "20260102T000000",
            r#"{"valid":false,"read_modes":{"lease":{"valid":false}}}"#,
        );
        std::fs::create_dir_all(r.join("empty/dir")).unwrap();
        update_latest(r, &a).unwrap();
        update_latest(r, &b).unwrap();
        assert_eq!(
            std::fs::read_link(r.join("latest")).unwrap(),
            Path::new("register-kill-<b>/20260102T000000")
        );
        assert_eq!(find_runs(r), vec![b.clone(), a.clone()]);
        rebuild_results_index(r).unwrap();
        let html = std::fs::read_to_string(r.join("index.html")).unwrap();
        assert!(html.contains("register-kill-&lt;b&gt;"));
        assert!(!html.contains("<b>/"));
        let (pa, pb) = (
            html.find("20260101").unwrap(),
            html.find("20260102").unwrap(),
        );
        assert!(pb < pa, "newest first");
        assert!(html.contains("INVALID"));
    }

    #[test]
    fn latest_refuses_to_replace_a_directory() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("latest")).unwrap();
        assert!(update_latest(t.path(), &t.path().join("x/y")).is_err());
    }
}
