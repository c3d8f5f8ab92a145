//! The soak matrix: `NEMESES x READ-MODES [x BUGS]`, e.g. `"partition,kill x read-index,lease"`.
//! Each spec expands to the cross product of its lists; several specs add up (duplicates are
//! dropped, order kept). The optional third list names deliberate bugs (`none` = correct node),
//! so a forced-failure cell can sit beside correct ones.

/// One cell of the matrix: what one run tests.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cell {
    /// A single nemesis family name (`none`, `partition`, ...), passed to `--nemesis`.
    pub nemesis: String,
    /// A single read mode, passed to `--read-mode`.
    pub read_mode: String,
    /// A deliberate bug to start the nodes with, if any.
    pub bug: Option<String>,
}

impl Cell {
    /// The cell's name, used as the JUnit classname: `partition.read-index` or
    /// `partition.read-index.bug-read-index-no-confirm` (dots separate, as JUnit viewers group).
    pub fn name(&self) -> String {
        let mut s = format!("{}.{}", self.nemesis, self.read_mode);
        if let Some(b) = &self.bug {
            s.push_str(".bug-");
            s.push_str(b);
        }
        s
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

/// Expands the specs into cells. Names are checked later by `harness test`'s own validation,
/// so a typo is reported with the same message as there.
pub fn parse_matrix(specs: &[String]) -> Result<Vec<Cell>, MatrixError> {
    let mut cells: Vec<Cell> = Vec::new();
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
                    let c = Cell {
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
    }
    Ok(cells)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn specs(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn cross_product_in_order() {
        let cells = parse_matrix(&specs(&["partition,kill x read-index,lease"])).unwrap();
        let names: Vec<String> = cells.iter().map(Cell::name).collect();
        assert_eq!(
            names,
            [
                "partition.read-index",
                "partition.lease",
                "kill.read-index",
                "kill.lease"
            ]
        );
    }

    #[test]
    fn several_specs_add_up_with_bugs_and_no_duplicates() {
        let cells = parse_matrix(&specs(&[
            "partition x read-index",
            "partition x read-index x none,read-index-no-confirm",
        ]))
        .unwrap();
        assert_eq!(cells.len(), 2);
        assert_eq!(cells[1].bug.as_deref(), Some("read-index-no-confirm"));
        assert_eq!(
            cells[1].name(),
            "partition.read-index.bug-read-index-no-confirm"
        );
    }

    #[test]
    fn default_parses_and_bad_shapes_are_errors() {
        assert_eq!(parse_matrix(&specs(&[DEFAULT_MATRIX])).unwrap().len(), 20);
        assert!(matches!(
            parse_matrix(&specs(&["partition"])),
            Err(MatrixError::Shape(_))
        ));
        assert!(matches!(
            parse_matrix(&specs(&[" , x lease"])),
            Err(MatrixError::Empty(_))
        ));
        assert_eq!(parse_matrix(&specs(&["kill×log"])).unwrap().len(), 1);
    }
}
