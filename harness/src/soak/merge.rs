//! `harness soak-merge DIR...`: joins the results of several soaks (typically the shards of
//! one nightly, `--shard I/N`) into one `summary.json`, one page and one `junit.xml`.
//!
//! Guarantees: every run of every input is in the merged outputs, with its link to the kept
//! run directory still working from the merged page; every cell that ran in no input is a
//! skipped case with its reason; a shard of the split that no input holds, or an input whose
//! soak did not finish, is named and makes the exit code 255 (a nightly that lost a shard
//! must not pass); otherwise the exit code is the worst of the inputs'.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use clap::Args;

use super::matrix::{CellRecord, Shard};
use super::summary::{self, MergedInput, Skipped, Summary};
use crate::exit;

/// Options of `harness soak-merge`.
#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// Soak directories (each with a summary.json), or directories holding them up to three
    /// levels down (e.g. downloaded CI artifacts); merged outputs found below are left out.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged summary.json, index.html and junit.xml go (default:
    /// results/soak/merged-<timestamp>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Also write the merged JUnit XML here.
    #[arg(long)]
    pub junit: Option<PathBuf>,
}

/// How deep below a given directory soak directories are looked for.
const SEARCH_DEPTH: usize = 3;

/// Runs `harness soak-merge`; returns the exit code (the worst of the inputs', 255 when a
/// shard is missing or unfinished or the merge itself failed, 254 for bad inputs).
pub fn run(args: &MergeArgs) -> u8 {
    match run_inner(args) {
        Ok(code) => code,
        Err(MergeError::Usage(m)) => {
            eprintln!("harness soak-merge: {m}");
            exit::BAD_USAGE
        }
        Err(MergeError::Failed(e)) => {
            eprintln!("harness soak-merge: {e:#}");
            exit::HARNESS_FAILED
        }
    }
}

enum MergeError {
    Usage(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for MergeError {
    fn from(e: anyhow::Error) -> Self {
        MergeError::Failed(e)
    }
}

fn run_inner(args: &MergeArgs) -> Result<u8, MergeError> {
    let mut found: Vec<PathBuf> = Vec::new();
    for d in &args.dirs {
        let here = soak_dirs_in(d);
        if here.is_empty() {
            return Err(MergeError::Usage(format!(
                "{}: no summary.json in it or up to {SEARCH_DEPTH} levels below",
                d.display()
            )));
        }
        for h in here {
            if !found.contains(&h) {
                found.push(h);
            }
        }
    }
    let mut inputs: Vec<(PathBuf, Summary)> = Vec::new();
    for d in found {
        let path = d.join("summary.json");
        let bytes = std::fs::read(&path)
            .map_err(|e| MergeError::Usage(format!("{}: {e}", path.display())))?;
        let s: Summary = serde_json::from_slice(&bytes).map_err(|e| {
            MergeError::Usage(format!("{}: not a soak summary.json: {e}", path.display()))
        })?;
        inputs.push((d, s));
    }
    let stamp = crate::run_dir::timestamp();
    let out = args.out.clone().unwrap_or_else(|| {
        PathBuf::from("results")
            .join("soak")
            .join(format!("merged-{stamp}"))
    });
    std::fs::create_dir_all(&out)
        .map_err(|e| MergeError::Failed(anyhow::anyhow!("cannot create {}: {e}", out.display())))?;
    let (merged, notes) = merge(&inputs, &out, &stamp).map_err(MergeError::Usage)?;
    super::write_summary_files(&merged, &out, args.junit.as_deref())?;
    for n in &notes {
        eprintln!("harness soak-merge: {n}");
    }
    let bad = merged.runs.iter().filter(|r| r.code != exit::VALID).count();
    println!(
        "soak-merge: {} inputs, {}; {} runs, {} not valid; exit {}; summary {}",
        inputs.len(),
        summary::cells_line(&merged),
        merged.runs.len(),
        bad,
        merged.code,
        out.join("index.html").display()
    );
    Ok(merged.code)
}

/// `dir` itself when it holds a summary.json, else the soak directories below it (at most
/// [`SEARCH_DEPTH`] levels, sorted, merged outputs left out so that merging a results tree
/// twice does not count runs twice).
fn soak_dirs_in(dir: &Path) -> Vec<PathBuf> {
    if dir.join("summary.json").is_file() {
        return vec![dir.to_path_buf()];
    }
    let mut out = Vec::new();
    let mut level = vec![dir.to_path_buf()];
    for _ in 0..SEARCH_DEPTH {
        let mut next = Vec::new();
        for d in &level {
            let Ok(rd) = std::fs::read_dir(d) else {
                continue;
            };
            let mut subs: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir())
                .collect();
            subs.sort();
            for s in subs {
                if s.join("summary.json").is_file() {
                    if !is_merged(&s) {
                        out.push(s);
                    }
                } else {
                    next.push(s);
                }
            }
        }
        level = next;
    }
    out
}

fn is_merged(dir: &Path) -> bool {
    std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v["merged_from"].as_array().is_some_and(|a| !a.is_empty()))
}

/// `to` as a path relative to the directory `from` (both made absolute first), so a link
/// written into a page in `from` reaches `to`; `to` itself when no relative path exists.
pub fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let abs = |p: &Path| {
        p.canonicalize().unwrap_or_else(|_| {
            std::env::current_dir()
                .map(|c| c.join(p))
                .unwrap_or_else(|_| p.to_path_buf())
        })
    };
    let (f, t) = (abs(from), abs(to));
    let fc: Vec<Component> = f.components().collect();
    let tc: Vec<Component> = t.components().collect();
    let common = fc.iter().zip(&tc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return to.to_path_buf();
    }
    let mut r = PathBuf::new();
    for _ in common..fc.len() {
        r.push("..");
    }
    for c in &tc[common..] {
        r.push(c.as_os_str());
    }
    r
}

/// Merges the inputs (each a soak directory and its summary) into one summary whose run
/// directories are relative to `out`; also returns notes worth printing. Refuses inputs
/// that split the matrix in different ways (no sound union exists).
pub fn merge(
    inputs: &[(PathBuf, Summary)],
    out: &Path,
    stamp: &str,
) -> Result<(Summary, Vec<String>), String> {
    let mut notes = Vec::new();
    let counts: BTreeSet<usize> = inputs
        .iter()
        .filter_map(|(_, s)| s.shard.map(|sh| sh.count))
        .collect();
    if counts.len() > 1 {
        return Err(format!(
            "the inputs split the matrix in different ways ({}); merge shards of one split",
            inputs
                .iter()
                .filter_map(|(d, s)| s.shard.map(|sh| format!("{} is {sh}", d.display())))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let mut code = exit::VALID;
    // Shards of the split that no input holds.
    let mut missing: Vec<Shard> = Vec::new();
    if let Some(&count) = counts.iter().next() {
        for index in 1..=count {
            let n = inputs
                .iter()
                .filter(|(_, s)| s.shard.map(|x| x.index) == Some(index))
                .count();
            if n == 0 {
                missing.push(Shard { index, count });
            } else if n > 1 {
                notes.push(format!(
                    "shard {index}/{count} is given {n} times; all its runs are kept"
                ));
            }
        }
        if !missing.is_empty() {
            code = exit::HARNESS_FAILED;
            notes.push(format!(
                "missing shard(s) {}: their cells are listed as not run; exit 255",
                missing
                    .iter()
                    .map(Shard::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let mut matrix: Vec<String> = Vec::new();
    for (_, s) in inputs {
        for m in &s.matrix {
            if !matrix.contains(m) {
                matrix.push(m.clone());
            }
        }
    }
    if inputs.windows(2).any(|w| w[0].1.matrix != w[1].1.matrix) {
        notes.push("the inputs' matrices differ; the merged matrix is their union".into());
    }
    let position = |name: &str| matrix.iter().position(|m| m == name).unwrap_or(usize::MAX);
    let mut cells: Vec<CellRecord> = Vec::new();
    for (_, s) in inputs {
        for c in &s.cells {
            if !cells.iter().any(|x| x.name == c.name) {
                cells.push(c.clone());
            }
        }
    }
    cells.sort_by_key(|c| position(&c.name));
    let mut runs = Vec::new();
    let mut merged_from = Vec::new();
    for (dir, s) in inputs {
        code = exit::worst(code, s.code);
        if !s.finished {
            code = exit::HARNESS_FAILED;
            notes.push(format!(
                "{}: its soak did not finish (summary.json says finished: false); exit 255",
                dir.display()
            ));
        }
        for r in &s.runs {
            let mut r = r.clone();
            r.run_dir = r.run_dir.map(|d| relative_path(out, &dir.join(d)));
            runs.push(r);
        }
        merged_from.push(MergedInput {
            dir: dir.clone(),
            shard: s.shard,
            code: s.code,
            runs: s.runs.len(),
            cells_run: s.cells_run,
            cells_total: s.cells_total,
        });
    }
    let mut skipped: Vec<Skipped> = Vec::new();
    for c in &cells {
        if runs.iter().any(|r| r.cell == c.name) {
            continue;
        }
        // The reason of the input that held the cell; an unfinished one's "not run yet" is
        // no longer true once it is being merged.
        let holder = inputs
            .iter()
            .find(|(_, s)| s.cells.iter().any(|x| x.name == c.name));
        let reason = match holder {
            Some((dir, s)) if !s.finished => format!(
                "the soak in {} stopped before this cell's turn",
                dir.display()
            ),
            Some((_, s)) => s
                .skipped
                .iter()
                .find(|k| k.cell == c.name)
                .map(|k| k.reason.clone())
                .unwrap_or_else(|| "no run recorded".into()),
            None => "no run recorded".into(),
        };
        skipped.push(Skipped {
            cell: c.name.clone(),
            reason,
        });
    }
    let mut absent = 0;
    for (pos, m) in matrix.iter().enumerate() {
        if cells.iter().any(|c| &c.name == m) {
            continue;
        }
        absent += 1;
        let reason = match missing.iter().find(|sh| sh.owns(pos)) {
            Some(sh) => format!("shard {sh} is missing from the merge (no summary.json for it)"),
            None => "in no merged input's cells".to_string(),
        };
        skipped.push(Skipped {
            cell: m.clone(),
            reason,
        });
    }
    let seeds: BTreeSet<Option<u64>> = inputs.iter().map(|(_, s)| s.seed).collect();
    let mut durations: Vec<String> = Vec::new();
    for (_, s) in inputs {
        if !durations.contains(&s.duration) {
            durations.push(s.duration.clone());
        }
    }
    if inputs.is_empty() {
        code = exit::UNKNOWN;
    }
    let merged = Summary {
        started: stamp.to_string(),
        duration: durations.join(", "),
        elapsed_s: inputs.iter().map(|(_, s)| s.elapsed_s).fold(0.0, f64::max),
        seed: if seeds.len() == 1 {
            seeds.into_iter().next().flatten()
        } else {
            None
        },
        shard: None,
        finished: inputs.iter().all(|(_, s)| s.finished),
        code,
        cells_run: summary::count_cells_run(&cells, &runs),
        cells_total: cells.len() + absent,
        matrix,
        cells,
        skipped,
        runs,
        merged_from,
    };
    Ok((merged, notes))
}

#[cfg(test)]
mod tests {
    use super::super::matrix::parse_matrix;
    use super::super::summary::RunSummary;
    use super::*;

    /// A finished shard `index`/`count` of the 4-cell matrix `partition,kill x log,lease`,
    /// whose cells ran with the given codes (`None`: skipped).
    fn shard(index: usize, count: usize, codes: &[Option<u8>]) -> Summary {
        let all = parse_matrix(
            &["partition,kill x log,lease".into()],
            &["register".into()],
            &[3],
        )
        .unwrap();
        let sh = Shard { index, count };
        let cells: Vec<CellRecord> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| sh.owns(*i))
            .map(|(_, c)| CellRecord::from(c))
            .collect();
        let mut runs = Vec::new();
        let mut skipped = Vec::new();
        for (c, code) in cells.iter().zip(codes) {
            match code {
                Some(code) => runs.push(RunSummary {
                    cell: c.name.clone(),
                    seed: index as u64,
                    code: *code,
                    verdict: "v".into(),
                    seconds: 2.0,
                    reproduce: format!("harness test --seed {index}"),
                    run_dir: (*code != 0).then(|| PathBuf::from("runs/t/r")),
                }),
                None => skipped.push(Skipped {
                    cell: c.name.clone(),
                    reason: "time budget spent before this cell's turn".into(),
                }),
            }
        }
        Summary {
            started: "T".into(),
            duration: "1m".into(),
            elapsed_s: 10.0 * index as f64,
            seed: Some(index as u64),
            shard: Some(sh),
            finished: true,
            code: summary::runs_code(&runs),
            cells_run: summary::count_cells_run(&cells, &runs),
            cells_total: cells.len(),
            matrix: all.iter().map(|c| c.name()).collect(),
            cells,
            skipped,
            runs,
            merged_from: vec![],
        }
    }

    #[test]
    fn merges_shards_with_worst_code_and_skipped_cells() {
        let out = Path::new("/r/merged");
        let inputs = vec![
            (PathBuf::from("/r/a"), shard(1, 2, &[Some(0), None])),
            (PathBuf::from("/r/b"), shard(2, 2, &[Some(1), Some(0)])),
        ];
        let (m, notes) = merge(&inputs, out, "S").unwrap();
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(m.code, exit::INVALID);
        assert_eq!((m.cells_run, m.cells_total), (3, 4));
        assert_eq!(m.runs.len(), 3);
        assert_eq!(m.elapsed_s, 20.0, "shards run side by side");
        assert_eq!(m.seed, None, "two seeds");
        assert_eq!(m.skipped.len(), 1);
        assert_eq!(m.skipped[0].cell, "register.n3.kill.log");
        assert!(m.skipped[0].reason.starts_with("time budget"));
        let failing = m.runs.iter().find(|r| r.code == 1).unwrap();
        assert_eq!(
            failing.run_dir.as_deref(),
            Some(Path::new("../b/runs/t/r")),
            "links work from the merged page"
        );
        assert_eq!(
            m.cells.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
            m.matrix,
            "matrix order"
        );
    }

    #[test]
    fn a_missing_or_unfinished_shard_fails_the_merge() {
        let out = Path::new("/r/merged");
        let (m, notes) = merge(
            &[(PathBuf::from("/r/a"), shard(1, 2, &[Some(0), Some(0)]))],
            out,
            "S",
        )
        .unwrap();
        assert_eq!(m.code, exit::HARNESS_FAILED);
        assert!(notes.iter().any(|n| n.contains("2/2")), "{notes:?}");
        assert_eq!((m.cells_run, m.cells_total), (2, 4));
        assert!(m
            .skipped
            .iter()
            .all(|k| k.reason.contains("shard 2/2 is missing")));

        let mut unfinished = shard(2, 2, &[Some(0), None]);
        unfinished.finished = false;
        let (m, _) = merge(
            &[
                (PathBuf::from("/r/a"), shard(1, 2, &[Some(0), Some(0)])),
                (PathBuf::from("/r/b"), unfinished),
            ],
            out,
            "S",
        )
        .unwrap();
        assert_eq!(m.code, exit::HARNESS_FAILED);
        assert!(m.skipped[0].reason.contains("stopped before"), "{m:?}");
    }

    #[test]
    fn different_splits_are_refused() {
        let e = merge(
            &[
                (PathBuf::from("/r/a"), shard(1, 2, &[Some(0)])),
                (PathBuf::from("/r/b"), shard(1, 3, &[Some(0)])),
            ],
            Path::new("/r/m"),
            "S",
        )
        .unwrap_err();
        assert!(e.contains("different ways"), "{e}");
    }

    #[test]
    fn relative_paths() {
        assert_eq!(
            relative_path(Path::new("/x/m"), Path::new("/x/a/runs/r")),
            Path::new("../a/runs/r")
        );
        assert_eq!(
            relative_path(Path::new("/x"), Path::new("/x/a")),
            Path::new("a")
        );
    }
}
