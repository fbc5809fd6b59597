//! Finds the Python projects in an unpacked or cloned workspace, so the
//! planner knows where to run pytest and under which name to report.
//!
//! Rules, in order:
//! 1. A project root is the shallowest folder holding a marker file
//!    (`requirements.txt`, `pyproject.toml` or `setup.py`). Folders below a
//!    root belong to it; sibling folders may be projects of their own. A root
//!    is named by its path relative to the workspace with `/` separators, or
//!    by the fallback name when it is the workspace itself.
//! 2. Without any marker, a workspace that holds test files is one project:
//!    if its only top-level entry (hidden entries and `__MACOSX` aside) is a
//!    folder, that folder is the root and names the project; otherwise the
//!    workspace is the root under the fallback name.
//! 3. Otherwise there is nothing to run and the list is empty.
//!
//! "Test files" follow pytest's default collection: `test_*.py` and
//! `*_test.py`, plus any `.py` file directly inside a folder named `tests` or
//! `test` other than `__init__.py` and `conftest.py`, because projects often
//! set `python_files` to collect those and a false "no tests" would drop the
//! project. The walk never follows symlinks
//! and skips hidden folders, `__pycache__`, `__MACOSX`, virtualenvs and
//! `node_modules`, which hold other people's code and tests.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// A folder pytest should run in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    /// Path relative to the workspace with `/` separators, or the fallback
    /// name when the project is the workspace itself.
    pub name: String,
    /// Absolute path of the project's root folder: the workspace path as
    /// given (made absolute, symlinks kept) joined with the relative name.
    pub root: PathBuf,
    /// Whether the project holds at least one test file (see the module doc).
    pub has_tests: bool,
}

pub const MARKERS: [&str; 3] = ["requirements.txt", "pyproject.toml", "setup.py"];
const SKIPPED_DIRS: [&str; 6] = ["__pycache__", "__MACOSX", "venv", "env", "node_modules", "site-packages"];

/// Lists the projects in `workspace`, sorted by name.
pub fn discover(workspace: &Path, fallback_name: &str) -> io::Result<Vec<Project>> {
    // Not canonicalize: callers strip `workspace` back off the roots, which
    // only works if a symlink in its path is kept as given.
    let workspace = std::path::absolute(workspace)?;
    if !fs::metadata(&workspace)?.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::NotADirectory,
            format!("workspace {} is not a folder", workspace.display()),
        ));
    }
    let roots = find_roots(&workspace)?;

    let mut projects = Vec::with_capacity(roots.len());
    if roots.is_empty() {
        if !holds_tests(&workspace)? {
            return Ok(projects);
        }
        let root = single_top_folder(&workspace)?.unwrap_or_else(|| workspace.clone());
        projects.push(Project { name: name_of(&workspace, &root, fallback_name), has_tests: true, root });
    } else {
        for root in roots {
            projects.push(Project {
                name: name_of(&workspace, &root, fallback_name),
                has_tests: holds_tests(&root)?,
                root,
            });
        }
    }
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(projects)
}

/// The projects a reference suite grades: those of [`discover`], tests or
/// not, and every folder beside one of them that holds none, even empty: a
/// submission without a marker file or with nothing in it is graded (0)
/// rather than left out. With no project at all, the workspace (or its only
/// top folder) is one.
pub fn discover_for_suite(workspace: &Path, fallback_name: &str) -> io::Result<Vec<Project>> {
    let mut projects = discover(workspace, fallback_name)?;
    let workspace = std::path::absolute(workspace)?;
    if projects.is_empty() {
        let root = single_top_folder(&workspace)?.unwrap_or_else(|| workspace.clone());
        let has_tests = holds_tests(&root)?;
        return Ok(vec![Project { name: name_of(&workspace, &root, fallback_name), root, has_tests }]);
    }
    let roots: Vec<PathBuf> = projects.iter().map(|p| p.root.clone()).collect();
    let mut parents: Vec<&Path> =
        roots.iter().filter_map(|r| r.parent()).filter(|p| p.starts_with(&workspace)).collect();
    parents.sort();
    parents.dedup();
    for parent in parents {
        for entry in fs::read_dir(parent)? {
            let entry = entry?;
            let path = entry.path();
            let beside = entry.file_type()?.is_dir()
                && !is_skipped_dir(&entry.file_name())
                && !roots.iter().any(|r| r.starts_with(&path) || path.starts_with(r));
            if beside {
                let has_tests = holds_tests(&path)?;
                projects.push(Project { name: name_of(&workspace, &path, fallback_name), root: path, has_tests });
            }
        }
    }
    projects.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(projects)
}

/// Walks top-down and stops descending at the first folder holding a marker.
fn find_roots(workspace: &Path) -> io::Result<Vec<PathBuf>> {
    let mut roots = Vec::new();
    // An explicit stack: a hostile archive may nest folders thousands deep.
    let mut stack = vec![workspace.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut subdirs = Vec::new();
        let mut is_root = false;
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            // DirEntry::file_type does not follow symlinks.
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            if file_type.is_file() && MARKERS.iter().any(|m| name == OsStr::new(m)) {
                is_root = true;
            } else if file_type.is_dir() && !is_skipped_dir(&name) {
                subdirs.push(entry.path());
            }
        }
        if is_root {
            roots.push(dir);
        } else {
            stack.extend(subdirs);
        }
    }
    Ok(roots)
}

/// Tells whether any test file lies under `dir`, walking as [`find_roots`]
/// does but through nested project roots too.
pub fn holds_tests(dir: &Path) -> io::Result<bool> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let in_tests_folder = dir.file_name().is_some_and(|n| n == OsStr::new("tests") || n == OsStr::new("test"));
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            if file_type.is_file() && is_test_file(&name, in_tests_folder) {
                return Ok(true);
            }
            if file_type.is_dir() && !is_skipped_dir(&name) {
                stack.push(entry.path());
            }
        }
    }
    Ok(false)
}

fn is_test_file(name: &OsStr, in_tests_folder: bool) -> bool {
    let Some(name) = name.to_str() else {
        return false;
    };
    let Some(stem) = name.strip_suffix(".py") else {
        return false;
    };
    let helper = stem.starts_with('.') || stem == "__init__" || stem == "conftest";
    stem.starts_with("test_") || stem.ends_with("_test") || (in_tests_folder && !helper)
}

fn is_skipped_dir(name: &OsStr) -> bool {
    name.as_encoded_bytes().starts_with(b".") || SKIPPED_DIRS.iter().any(|s| name == OsStr::new(s))
}

/// The workspace's only top-level entry, when it is a real folder; hidden
/// entries and `__MACOSX` do not count.
fn single_top_folder(workspace: &Path) -> io::Result<Option<PathBuf>> {
    let mut only = None;
    for entry in fs::read_dir(workspace)? {
        let entry = entry?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") || name == OsStr::new("__MACOSX") {
            continue;
        }
        if only.is_some() || !entry.file_type()?.is_dir() {
            return Ok(None);
        }
        only = Some(entry.path());
    }
    Ok(only)
}

fn name_of(workspace: &Path, root: &Path, fallback_name: &str) -> String {
    let parts: Vec<_> =
        root.strip_prefix(workspace).unwrap_or(root).components().map(|c| c.as_os_str().to_string_lossy()).collect();
    if parts.is_empty() {
        fallback_name.to_string()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workspace(files: &[&str]) -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for file in files {
            let path = tmp.path().join(file);
            if file.ends_with('/') {
                fs::create_dir_all(&path).unwrap();
            } else {
                fs::create_dir_all(path.parent().unwrap()).unwrap();
                fs::write(&path, "").unwrap();
            }
        }
        tmp
    }

    /// (name, root relative to the workspace, has_tests) for each project.
    fn found(tmp: &tempfile::TempDir) -> Vec<(String, String, bool)> {
        let base = tmp.path();
        discover(base, "upload")
            .unwrap()
            .into_iter()
            .map(|p| {
                assert!(p.root.is_absolute());
                let rel = p.root.strip_prefix(base).unwrap().to_string_lossy().into_owned();
                (p.name, rel, p.has_tests)
            })
            .collect()
    }

    fn p(name: &str, rel: &str, has_tests: bool) -> (String, String, bool) {
        (name.to_string(), rel.to_string(), has_tests)
    }

    #[test]
    fn with_a_suite_a_folder_beside_a_project_is_one_even_empty_or_without_a_marker() {
        let tmp = workspace(&[
            "class/alice/requirements.txt",
            "class/alice/calc.py",
            "class/bob/calc.py",
            "class/empty/",
            "class/.git/config",
            "class/__pycache__/x.pyc",
            "students.csv",
        ]);
        let names: Vec<String> =
            discover_for_suite(tmp.path(), "upload").unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["class/alice", "class/bob", "class/empty"]);
        let lone = workspace(&["only/calc.py"]);
        let names: Vec<String> =
            discover_for_suite(lone.path(), "upload").unwrap().into_iter().map(|p| p.name).collect();
        assert_eq!(names, ["only"]);
    }

    #[test]
    fn marker_at_workspace_root_uses_fallback_name() {
        let tmp = workspace(&["requirements.txt", "app.py", "tests/test_app.py", "sub/pyproject.toml"]);
        assert_eq!(found(&tmp), vec![p("upload", "", true)]);
    }

    #[test]
    fn sibling_folders_are_separate_projects_sorted_by_name() {
        let tmp = workspace(&[
            "zeta/setup.py",
            "zeta/zeta_test.py",
            "alpha/pyproject.toml",
            "alpha/src/alpha/__init__.py",
            "group/beta/requirements.txt",
            "group/beta/tests/test_beta.py",
            "README.md",
        ]);
        assert_eq!(
            found(&tmp),
            vec![p("alpha", "alpha", false), p("group/beta", "group/beta", true), p("zeta", "zeta", true),]
        );
    }

    #[test]
    fn nested_markers_belong_to_the_shallowest_root() {
        let tmp = workspace(&["proj/requirements.txt", "proj/lib/setup.py", "proj/lib/tests/test_lib.py"]);
        assert_eq!(found(&tmp), vec![p("proj", "proj", true)]);
    }

    #[test]
    fn no_markers_with_tests_in_one_top_folder_uses_that_folder() {
        let tmp = workspace(&["hw1/solution.py", "hw1/test_solution.py", "__MACOSX/hw1/._solution.py", ".DS_Store"]);
        assert_eq!(found(&tmp), vec![p("hw1", "hw1", true)]);
    }

    #[test]
    fn no_markers_with_tests_spread_out_uses_the_workspace() {
        let tmp = workspace(&["a/test_a.py", "b/b.py"]);
        assert_eq!(found(&tmp), vec![p("upload", "", true)]);

        let tmp = workspace(&["hw1/test_a.py", "notes.txt"]);
        assert_eq!(found(&tmp), vec![p("upload", "", true)]);
    }

    #[test]
    fn no_markers_and_no_tests_finds_nothing() {
        let tmp = workspace(&["hw1/solution.py", "hw1/README.md"]);
        assert_eq!(found(&tmp), vec![]);

        let tmp = workspace(&[]);
        assert_eq!(found(&tmp), vec![]);
    }

    #[test]
    fn skipped_folders_hide_markers_and_tests() {
        let tmp = workspace(&[
            ".venv/lib/requirements.txt",
            "venv/setup.py",
            "env/pyproject.toml",
            "node_modules/x/setup.py",
            "lib/site-packages/pkg/setup.py",
            "__pycache__/test_a.py",
            ".git/test_b.py",
            "proj/venv/test_c.py",
            "proj/solution.py",
        ]);
        assert_eq!(found(&tmp), vec![]);
    }

    #[test]
    fn tests_folder_counts_even_without_pytest_names() {
        let tmp = workspace(&["proj/requirements.txt", "proj/tests/checks.py"]);
        assert_eq!(found(&tmp), vec![p("proj", "proj", true)]);

        let tmp = workspace(&["proj/requirements.txt", "proj/tests/data.txt", "proj/testing.py"]);
        assert_eq!(found(&tmp), vec![p("proj", "proj", false)]);
    }

    #[test]
    fn never_follows_symlinks() {
        let outside = workspace(&["evil/requirements.txt", "evil/test_x.py"]);
        let tmp = workspace(&["hw/solution.py"]);
        std::os::unix::fs::symlink(outside.path().join("evil"), tmp.path().join("hw/linked")).unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("evil/requirements.txt"),
            tmp.path().join("hw/requirements.txt"),
        )
        .unwrap();
        std::os::unix::fs::symlink(outside.path().join("evil/test_x.py"), tmp.path().join("hw/test_y.py")).unwrap();
        assert_eq!(found(&tmp), vec![]);
    }

    #[test]
    fn roots_keep_the_workspace_path_as_given() {
        let tmp = workspace(&["real/a/requirements.txt"]);
        let via = tmp.path().join("via");
        std::os::unix::fs::symlink(tmp.path().join("real"), &via).unwrap();
        let projects = discover(&via, "upload").unwrap();
        assert_eq!(projects, vec![Project { name: "a".to_string(), root: via.join("a"), has_tests: false }]);
    }

    #[test]
    fn missing_workspace_is_an_error() {
        let tmp = workspace(&[]);
        let err = discover(&tmp.path().join("nope"), "upload").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let tmp = workspace(&["file.txt"]);
        let err = discover(&tmp.path().join("file.txt"), "upload").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotADirectory);
    }

    #[test]
    fn test_file_names_follow_pytest_defaults() {
        let yes = ["test_a.py", "a_test.py", "test_.py"];
        let no = ["testa.py", "a_test.txt", "conftest.py", "test_a.pyc", "atest.py"];
        for name in yes {
            assert!(is_test_file(OsStr::new(name), false), "{name}");
        }
        for name in no {
            assert!(!is_test_file(OsStr::new(name), false), "{name}");
        }
        assert!(is_test_file(OsStr::new("checks.py"), true));
        for name in [".hidden.py", "__init__.py", "conftest.py", "data.json"] {
            assert!(!is_test_file(OsStr::new(name), true), "{name}");
        }
    }
}
