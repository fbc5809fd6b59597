//! Which pytest plugins a project's runs may load.
//!
//! With a reference suite, a submission must not change how its tests run
//! or report, so the plugins that the submission's own requirements
//! install (their `pytest11` entry points) stay out: laying the suite over a
//! project writes [`FILE`] with the distributions that the suite's
//! requirements name, and the runs of that project load only those
//! distributions' plugins, besides pytest's own. Without the file every
//! plugin of the environment loads, as under plain pytest.
//!
//! The file sits in the node's copy of the project, which no run writes;
//! it is read as any file of a project is (no link, regular, capped).

use std::path::Path;

use super::requirements::{self, Requirements};
use super::safe_file;
use super::ExecutorError;

/// Written at the project's root, after the suite's own files.
pub const FILE: &str = ".evalmesh-plugins";
const CAP: u64 = 64 * 1024;

/// The file's text for a suite whose requirements are `suite`: one
/// canonical distribution name a line.
pub fn allowed_by(suite: &Requirements) -> String {
    suite.names().iter().map(|n| format!("{n}\n")).collect()
}

/// The distributions whose plugins the runs of the project at `root` may
/// load; `None` when it may load all.
pub fn read(root: &Path) -> Result<Option<Vec<String>>, ExecutorError> {
    let bytes =
        safe_file::read_capped(&root.join(FILE), FILE, CAP).map_err(|e| ExecutorError::Requirements(e.to_string()))?;
    Ok(bytes.map(|bytes| {
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(requirements::canonical)
            .filter(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            .collect()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_holds_the_suites_distributions_and_reads_back_as_them() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), None, "without the file, every plugin");
        let suite = requirements::vet("pytest-mock>=3\nPytest_Timeout\n--prefer-binary\n").unwrap();
        std::fs::write(dir.path().join(FILE), allowed_by(&suite)).unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(vec!["pytest-mock".to_owned(), "pytest-timeout".to_owned()]));
        std::fs::write(dir.path().join(FILE), "").unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(vec![]), "a suite without requirements: pytest's own only");
        std::fs::write(dir.path().join(FILE), "ok\nnot,a name\n").unwrap();
        assert_eq!(read(dir.path()).unwrap(), Some(vec!["ok".to_owned()]), "only what a name can be");
    }

    #[test]
    fn a_linked_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("elsewhere"), "pytest-mock\n").unwrap();
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), dir.path().join(FILE)).unwrap();
        assert!(read(dir.path()).is_err());
    }
}
