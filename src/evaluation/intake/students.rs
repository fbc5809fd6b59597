//! `students.csv` at the root of a submitted archive: who each project is.
//! A header row names the columns `path` (a project, as the archive names
//! it: its folder relative to the archive's root), `id` and `name` (at least
//! one of the two), in any order, other columns ignored; then one row per
//! project. A project without a row is shown by its name.
//!
//! The file comes with the submission, before any of its code runs; it is
//! still read as any file of an archive is: not through a link, only a
//! regular file, capped.

use std::collections::BTreeMap;
use std::path::Path;

use super::IntakeError;
use crate::executor::safe_file::{self, SafeReadError};

pub const FILE: &str = "students.csv";
/// Room for tens of thousands of rows.
pub const MAX_BYTES: u64 = 1 << 20;

/// The label of each project that `students.csv` in `workspace` names, keyed
/// by project name: "name (id)", or whichever of the two the row gives.
/// Empty without the file; refused when the file is malformed or names a
/// path that is no project of `projects`, or one twice.
pub fn labels(workspace: &Path, projects: &[&str]) -> Result<BTreeMap<String, String>, IntakeError> {
    let bytes = match safe_file::read_capped(&workspace.join(FILE), FILE, MAX_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return Ok(BTreeMap::new()),
        Err(e @ (SafeReadError::Link { .. } | SafeReadError::NotRegular { .. } | SafeReadError::TooLarge { .. })) => {
            return Err(invalid(e.to_string()));
        }
        Err(SafeReadError::Io { source, .. }) => return Err(IntakeError::Io { path: workspace.join(FILE), source }),
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(bytes.as_slice());
    let header = reader.headers().map_err(|e| invalid(format!("its header: {e}")))?.clone();
    let column = |name: &str| header.iter().position(|h| h.eq_ignore_ascii_case(name));
    let path = column("path").ok_or_else(|| invalid("its header has no path column".into()))?;
    let (id, name) = (column("id"), column("name"));
    if id.is_none() && name.is_none() {
        return Err(invalid("its header has neither an id nor a name column".into()));
    }
    let mut labels = BTreeMap::new();
    for (n, row) in reader.records().enumerate() {
        let line = n + 2;
        let row = row.map_err(|e| invalid(format!("line {line}: {e}")))?;
        let field = |i: Option<usize>| i.and_then(|i| row.get(i)).filter(|v| !v.is_empty());
        let project = field(Some(path)).ok_or_else(|| invalid(format!("line {line}: no path")))?;
        let project = project.trim_end_matches('/');
        if !projects.contains(&project) {
            return Err(invalid(format!("line {line}: {project:?} is no project of the archive")));
        }
        let label = match (field(name), field(id)) {
            (Some(name), Some(id)) => format!("{name} ({id})"),
            (Some(one), None) | (None, Some(one)) => one.to_owned(),
            (None, None) => return Err(invalid(format!("line {line}: neither an id nor a name"))),
        };
        if labels.insert(project.to_owned(), label).is_some() {
            return Err(invalid(format!("line {line}: {project:?} has a row already")));
        }
    }
    Ok(labels)
}

fn invalid(reason: String) -> IntakeError {
    IntakeError::Students { reason }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels_of(csv: &str) -> Result<BTreeMap<String, String>, String> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), csv).unwrap();
        labels(dir.path(), &["alice", "bob", "group/carol"]).map_err(|e| e.to_string())
    }

    #[test]
    fn names_each_row_by_name_and_id_in_any_column_order() {
        let got =
            labels_of("id,Name,path,email\ns1,Alice Smith,alice,a@x\n,Bob,bob/,\n\"s3\",,group/carol,\n").unwrap();
        let want: BTreeMap<String, String> = [
            ("alice".to_owned(), "Alice Smith (s1)".to_owned()),
            ("bob".to_owned(), "Bob".to_owned()),
            ("group/carol".to_owned(), "s3".to_owned()),
        ]
        .into();
        assert_eq!(got, want);
    }

    #[test]
    fn without_the_file_there_are_no_labels() {
        let dir = tempfile::tempdir().unwrap();
        assert!(labels(dir.path(), &["alice"]).unwrap().is_empty());
    }

    #[test]
    fn refuses_a_file_that_does_not_say_who_is_who() {
        for (csv, reason) in [
            ("id,name\ns1,Alice\n", "no path column"),
            ("path,email\nalice,a@x\n", "neither an id nor a name column"),
            ("path,name\nmallory,Mallory\n", "line 2: \"mallory\" is no project"),
            ("path,name\nalice,Alice\nalice,Alice again\n", "line 3: \"alice\" has a row already"),
            ("path,name\n,Alice\n", "line 2: no path"),
            ("path,id,name\nalice,,\n", "line 2: neither an id nor a name"),
            ("path,name\nalice,Alice,extra\n", "line 2:"),
        ] {
            let err = labels_of(csv).expect_err(csv);
            assert!(err.starts_with("students.csv: ") && err.contains(reason), "{csv:?}: {err}");
        }
    }

    #[test]
    fn refuses_a_link_and_a_file_past_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elsewhere.csv"), "path,name\nalice,Alice\n").unwrap();
        std::os::unix::fs::symlink("elsewhere.csv", dir.path().join(FILE)).unwrap();
        let err = labels(dir.path(), &["alice"]).unwrap_err().to_string();
        assert!(err.contains("symbolic link"), "{err}");
        std::fs::remove_file(dir.path().join(FILE)).unwrap();
        std::fs::write(dir.path().join(FILE), "x".repeat(MAX_BYTES as usize + 1)).unwrap();
        let err = labels(dir.path(), &["alice"]).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }
}
