//! The soak matrix: `NEMESES x READ-MODES [x BUGS]`, e.g. `"partition,kill x read-index,lease"`,
//! crossed with the soak's workloads and cluster sizes. Each spec expands to the cross product
//! of its lists; several specs add up (duplicates are dropped, order kept). The optional third
//! list names deliberate bugs (`none` = correct node), so a forced-failure cell can sit beside
//! correct ones.
//!
//! Also here: sharding (`--shard I/N`, a deterministic split of the matrix that every shard
//! computes alike) and the seeded order cells take their turns in.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// One cell of the matrix: what one run tests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// `register` or `set`, passed to `--workload`.
    pub workload: String,
    /// Cluster size, passed to `--nodes`.
    pub nodes: usize,
    /// A single nemesis family name (`none`, `partition`, ...), passed to `--nemesis`.
    pub nemesis: String,
    /// A single read mode, passed to `--read-mode`.
    pub read_mode: String,
    /// A deliberate bug to start the nodes with, if any.
    pub bug: Option<String>,
}

impl Cell {
    /// The cell's name, used as the JUnit classname and unique within a matrix:
    /// `register.n3.partition.read-index` or
    /// `set.n4.partition.read-index.bug-read-index-no-confirm` (dots separate, as JUnit
    /// viewers group; the broadest dimension first so a viewer groups by workload, then size).
    pub fn name(&self) -> String {
        let mut s = format!(
            "{}.n{}.{}.{}",
            self.workload, self.nodes, self.nemesis, self.read_mode
        );
        if let Some(b) = &self.bug {
            s.push_str(".bug-");
            s.push_str(b);
        }
        s
    }
}

/// A cell as stored in `summary.json`: its name and every dimension, so a reader (the page,
/// `soak-merge`) needs no parsing of names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CellRecord {
    /// [`Cell::name`].
    pub name: String,
    /// The workload.
    pub workload: String,
    /// The cluster size.
    pub nodes: usize,
    /// The nemesis.
    pub nemesis: String,
    /// The read mode.
    pub read_mode: String,
    /// The deliberate bug, if any.
    pub bug: Option<String>,
}

impl From<&Cell> for CellRecord {
    fn from(c: &Cell) -> Self {
        CellRecord {
            name: c.name(),
            workload: c.workload.clone(),
            nodes: c.nodes,
            nemesis: c.nemesis.clone(),
            read_mode: c.read_mode.clone(),
            bug: c.bug.clone(),
        }
    }
}

/// Why a matrix spec could not be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MatrixError {
    /// Not two or three `x`-separated lists.
    #[error("bad matrix {0:?}: expected \"NEMESES x READ-MODES\" or \"NEMESES x READ-MODES x BUGS\", e.g. \"partition,kill x read-index,lease\"")]
    Shape(String),
    /// A list is empty.
    #[error("bad matrix {0:?}: an empty list")]
    Empty(String),
}

/// The default matrix of `harness soak`: every single fault against every linearizable read
/// path, correct node.
pub const DEFAULT_MATRIX: &str = "none,partition,kill,pause,clock x log,read-index,lease,follower";

fn list(part: &str, spec: &str) -> Result<Vec<String>, MatrixError> {
    let v: Vec<String> = part
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if v.is_empty() {
        return Err(MatrixError::Empty(spec.to_string()));
    }
    Ok(v)
}

/// Expands the specs into cells, crossed with every workload and cluster size (in that
/// order: workload outermost, so the cells of one workload and size stay together). Names are
/// checked later by `harness test`'s own validation, so a typo is reported with the same
/// message as there. Guarantees no two cells are equal.
pub fn parse_matrix(
    specs: &[String],
    workloads: &[String],
    sizes: &[usize],
) -> Result<Vec<Cell>, MatrixError> {
    let mut base: Vec<(String, String, Option<String>)> = Vec::new();
    for spec in specs {
        // `x` (or `×`) surrounded by spaces separates the lists; names never contain spaces.
        let normalized = spec.replace('×', " x ");
        let parts: Vec<&str> = normalized.split(" x ").collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(MatrixError::Shape(spec.clone()));
        }
        let nemeses = list(parts[0], spec)?;
        let modes = list(parts[1], spec)?;
        let bugs: Vec<Option<String>> = match parts.get(2) {
            Some(p) => list(p, spec)?
                .into_iter()
                .map(|b| (b != "none").then_some(b))
                .collect(),
            None => vec![None],
        };
        for n in &nemeses {
            for m in &modes {
                for b in &bugs {
                    let t = (n.clone(), m.clone(), b.clone());
                    if !base.contains(&t) {
                        base.push(t);
                    }
                }
            }
        }
    }
    let mut cells: Vec<Cell> = Vec::new();
    for w in workloads {
        for &size in sizes {
            for (n, m, b) in &base {
                let c = Cell {
                    workload: w.clone(),
                    nodes: size,
                    nemesis: n.clone(),
                    read_mode: m.clone(),
                    bug: b.clone(),
                };
                if !cells.contains(&c) {
                    cells.push(c);
                }
            }
        }
    }
    Ok(cells)
}

/// Shard `index` of `count` (1-based), as given to `--shard I/N`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// 1..=count.
    pub index: usize,
    /// How many shards the matrix is split into (at least 1).
    pub count: usize,
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Why `--shard` was refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("bad shard {0:?}: expected I/N with 1 <= I <= N, e.g. 2/4")]
pub struct ShardError(pub String);

/// Parses `I/N`; guarantees `1 <= index <= count`.
pub fn parse_shard(s: &str) -> Result<Shard, ShardError> {
    let bad = || ShardError(s.to_string());
    let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let index: usize = i.trim().parse().map_err(|_| bad())?;
    let count: usize = n.trim().parse().map_err(|_| bad())?;
    if count == 0 || index == 0 || index > count {
        return Err(bad());
    }
    Ok(Shard { index, count })
}

impl Shard {
    /// Whether the cell at `position` in the whole matrix belongs to this shard. The split is
    /// position mod count, so it depends only on the matrix (identical on every shard's
    /// machine), every cell is in exactly one shard, and the shards' sizes differ by at most
    /// one; neighbouring cells (same nemesis, other read modes or sizes) land on different
    /// shards, spreading each dimension over all of them.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index - 1
    }
}

/// The order the soak's cells take their turns in: a permutation of `0..n` drawn from `seed`.
/// A budget too short for every cell then starves different cells under different seeds,
/// instead of always the last ones of the matrix; the same seed gives the same order.
pub fn run_order(n: usize, seed: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn reg3(v: &[&str]) -> Vec<Cell> {
        parse_matrix(&specs(v), &["register".into()], &[3]).unwrap()
    }

    #[test]
    fn cross_product_in_order() {
        let names: Vec<String> = reg3(&["partition,kill x read-index,lease"])
            .iter()
            .map(Cell::name)
            .collect();
        assert_eq!(
            names,
            [
                "register.n3.partition.read-index",
                "register.n3.partition.lease",
                "register.n3.kill.read-index",
                "register.n3.kill.lease"
            ]
        );
    }

    #[test]
    fn workloads_and_sizes_are_dimensions() {
        let cells = parse_matrix(
            &specs(&["partition x log,lease"]),
            &["register".into(), "set".into()],
            &[3, 4, 5, 4],
        )
        .unwrap();
        assert_eq!(cells.len(), 2 * 3 * 2, "duplicate size dropped");
        assert_eq!(cells[0].name(), "register.n3.partition.log");
        assert_eq!(cells[2].name(), "register.n4.partition.log");
        assert_eq!(cells[11].name(), "set.n5.partition.lease");
    }

    #[test]
    fn several_specs_add_up_with_bugs_and_no_duplicates() {
        let cells = reg3(&[
            "partition x read-index",
            "partition x read-index x none,read-index-no-confirm",
        ]);
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[1].bug.as_deref(), Some("read-index-no-confirm"));
        assert_eq!(
            cells[1].name(),
            "register.n3.partition.read-index.bug-read-index-no-confirm"
        );
    }

    #[test]
    fn default_parses_and_bad_shapes_are_errors() {
        assert_eq!(reg3(&[DEFAULT_MATRIX]).len(), 20);
        let one = |s: &str| parse_matrix(&specs(&[s]), &["register".into()], &[3]);
        assert!(matches!(one("partition"), Err(MatrixError::Shape(_))));
        assert!(matches!(one(" , x lease"), Err(MatrixError::Empty(_))));
        assert_eq!(one("kill×log").unwrap().len(), 1);
    }

    #[test]
    fn shards_parse_and_partition_the_matrix() {
        assert_eq!(parse_shard("2/4"), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(parse_shard(" 1 / 1 ").unwrap().to_string(), "1/1");
        for bad in ["0/4", "5/4", "1/0", "2", "a/4", "2/b", "-1/4", "", "1/2/3"] {
            assert!(parse_shard(bad).is_err(), "{bad:?} accepted");
        }
        // Every position is owned by exactly one of the shards; sizes differ by at most one.
        for count in 1..=7 {
            let shards: Vec<Shard> = (1..=count).map(|index| Shard { index, count }).collect();
            let mut sizes = vec![0usize; count];
            for pos in 0..23 {
                let owners: Vec<usize> = shards
                    .iter()
                    .filter(|s| s.owns(pos))
                    .map(|s| s.index)
                    .collect();
                assert_eq!(
                    owners.len(),
                    1,
                    "position {pos} of {count} shards: {owners:?}"
                );
                sizes[owners[0] - 1] += 1;
            }
            let (lo, hi) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
            assert!(hi - lo <= 1, "{sizes:?}");
        }
    }

    #[test]
    fn run_order_is_a_seeded_permutation() {
        let a = run_order(20, 7);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..20).collect::<Vec<_>>());
        assert_eq!(a, run_order(20, 7), "same seed, same order");
        // Over a few seeds, the first turn goes to more than one cell (no fixed starvation).
        let firsts: std::collections::HashSet<usize> =
            (0..16).map(|s| run_order(20, s)[0]).collect();
        assert!(firsts.len() > 3, "{firsts:?}");
        assert!(run_order(0, 1).is_empty());
    }
}
