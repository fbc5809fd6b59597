//! A reference suite: a teacher's tests laid over every project of a
//! submission, so that each is graded on them rather than on its own.
//!
//! Laying a suite over a project, on the node's copy and before any of its
//! code runs:
//! 1. the project's own pytest configuration and plugins go: every
//!    `conftest.py`, `pytest.ini` and `.pytest.ini`, every `tox.ini` with a
//!    `[pytest]` section, `setup.cfg` with `[tool:pytest]` and
//!    `pyproject.toml` with a `[tool.pytest…]` table, at any depth, and its
//!    `evalmesh.toml` (its grading rules are the suite's, or none);
//! 2. the suite's tree lands at the project's root, each file replacing
//!    what the project had at its path (a file, a folder, a link);
//! 3. `requirements.txt` becomes the project's, then the suite's, and the
//!    project's runs may load only the pytest plugins of what the suite's
//!    requirements name (`executor::plugins`).
//!
//! So pytest finds only the suite's configuration, conftests and plugins, and
//! a submission cannot deselect, skip or rewrite outcomes through them. The
//! walk never follows a link; a file it must read to decide (a `tox.ini`, a
//! `setup.cfg`, a `pyproject.toml`, the requirements) is read as any file of
//! a submission is: not through a link, only a regular file, capped; one
//! it cannot read is removed.

use std::ffi::OsStr;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{discover, IntakeError};
use crate::executor::{plugins, requirements, safe_file};

/// The largest configuration or requirements file read to decide.
const READ_CAP: u64 = 1 << 20;

/// A suite unpacked on disk, and its files relative to its root with `/`.
#[derive(Debug, Clone)]
pub struct Suite {
    pub root: PathBuf,
    pub files: Vec<String>,
    /// What its files take: copied into every project.
    pub bytes: u64,
}

impl Suite {
    /// Lists the suite unpacked at `root`; refused when it holds no test.
    pub fn load(root: &Path) -> Result<Self, IntakeError> {
        let (mut files, mut bytes) = (Vec::new(), 0);
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).map_err(IntakeError::io(&dir))? {
                let entry = entry.map_err(IntakeError::io(&dir))?;
                let kind = entry.file_type().map_err(IntakeError::io(entry.path()))?;
                if entry.file_name() == OsStr::new("__MACOSX") {
                    continue;
                }
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_file() {
                    bytes += entry.metadata().map_err(IntakeError::io(entry.path()))?.len();
                    let relative = entry.path().strip_prefix(root).unwrap_or(&entry.path()).to_owned();
                    files.push(relative.to_string_lossy().replace('\\', "/"));
                }
            }
        }
        files.sort();
        if !discover::holds_tests(root).map_err(IntakeError::io(root))? {
            return Err(IntakeError::Suite { reason: "it holds no test file (test_*.py or *_test.py)".into() });
        }
        Ok(Self { root: root.to_path_buf(), files, bytes })
    }

    /// The suite's Python files: a module that pytest collects is graded
    /// only when it is one of them (unless the rules run the project's own
    /// tests too).
    pub fn modules(&self) -> Vec<String> {
        self.files.iter().filter(|f| f.ends_with(".py")).cloned().collect()
    }

    /// Refused when laying it over `projects` projects would take more
    /// than `max_bytes`, the bound of what one submission may unpack.
    pub fn fits(&self, projects: usize, max_bytes: u64) -> Result<(), IntakeError> {
        let total = self.bytes.saturating_mul(projects as u64);
        if total > max_bytes {
            return Err(IntakeError::Suite {
                reason: format!(
                    "{} bytes laid over {projects} projects take {total}, more than the limit of {max_bytes}",
                    self.bytes
                ),
            });
        }
        Ok(())
    }

    /// Lays the suite over the project at `project` (see the module doc).
    /// Refused, leaving the project as it was, when its requirements cannot
    /// be read safely: a link, not a regular file, or past the cap.
    pub fn lay_over(&self, project: &Path) -> Result<(), IntakeError> {
        let own_requirements = safe_file::read_capped(&project.join("requirements.txt"), "requirements.txt", READ_CAP)
            .map_err(|e| IntakeError::Suite { reason: format!("the project's {e}") })?
            .unwrap_or_default();
        strip_configuration(project)?;
        for file in &self.files {
            let target = project.join(file);
            make_room(project, &target)?;
            fs::copy(self.root.join(file), &target).map_err(IntakeError::io(&target))?;
        }
        let theirs = safe_file::read_capped(&self.root.join("requirements.txt"), "requirements.txt", READ_CAP);
        let theirs = theirs.ok().flatten();
        // Requirements that cannot be vetted fail the install later.
        let named = theirs.as_deref().map(String::from_utf8_lossy).and_then(|t| requirements::vet(&t).ok());
        let target = project.join(plugins::FILE);
        make_room(project, &target)?;
        fs::write(&target, plugins::allowed_by(&named.unwrap_or_default())).map_err(IntakeError::io(&target))?;
        if let Some(theirs) = theirs {
            let mut merged = own_requirements;
            if !merged.is_empty() && !merged.ends_with(b"\n") {
                merged.push(b'\n');
            }
            merged.extend_from_slice(&theirs);
            let target = project.join("requirements.txt");
            make_room(project, &target)?;
            fs::write(&target, merged).map_err(IntakeError::io(&target))?;
        }
        Ok(())
    }
}

/// Removes what would let the project configure pytest or grade itself.
fn strip_configuration(project: &Path) -> Result<(), IntakeError> {
    remove(&project.join(crate::evaluation::rules::FILE))?;
    let mut stack = vec![project.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).map_err(IntakeError::io(&dir))? {
            let entry = entry.map_err(IntakeError::io(&dir))?;
            let kind = entry.file_type().map_err(IntakeError::io(entry.path()))?;
            let path = entry.path();
            if kind.is_dir() {
                stack.push(path);
                continue;
            }
            let name = entry.file_name();
            let configures = match name.to_str() {
                Some("conftest.py" | "pytest.ini" | ".pytest.ini") => true,
                Some("tox.ini") => mentions(&path, "[pytest]"),
                Some("setup.cfg") => mentions(&path, "[tool:pytest]"),
                Some("pyproject.toml") => mentions(&path, "[tool.pytest"),
                _ => false,
            };
            if configures {
                remove(&path)?;
            }
        }
    }
    Ok(())
}

/// True when the file holds `section`, or cannot be read safely to tell.
fn mentions(path: &Path, section: &str) -> bool {
    match safe_file::read_capped(path, "a configuration file", READ_CAP) {
        Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).lines().any(|l| l.trim_start().starts_with(section)),
        Ok(None) => false,
        Err(_) => true,
    }
}

/// Clears the way to `target` inside `project`: a file or link where a
/// folder must be is removed, and so is whatever is at `target` itself.
fn make_room(project: &Path, target: &Path) -> Result<(), IntakeError> {
    let relative = target.strip_prefix(project).unwrap_or(target);
    let mut at = project.to_path_buf();
    let parts: Vec<_> = relative.components().collect();
    for (i, part) in parts.iter().enumerate() {
        at.push(part);
        let last = i + 1 == parts.len();
        match fs::symlink_metadata(&at) {
            Ok(meta) if last => {
                if meta.is_dir() {
                    fs::remove_dir_all(&at).map_err(IntakeError::io(&at))?;
                } else {
                    remove(&at)?;
                }
            }
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                remove(&at)?;
                fs::create_dir(&at).map_err(IntakeError::io(&at))?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if !last {
                    fs::create_dir(&at).map_err(IntakeError::io(&at))?;
                }
            }
            Err(e) => return Err(IntakeError::Io { path: at, source: e }),
        }
    }
    Ok(())
}

fn remove(path: &Path) -> Result<(), IntakeError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(IntakeError::Io { path: path.to_owned(), source: e }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (path, text) in files {
            let path = root.join(path);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, text).unwrap();
        }
    }

    fn tree(root: &Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(dir).unwrap() {
                let entry = entry.unwrap();
                let kind = entry.file_type().unwrap();
                let relative = entry.path().strip_prefix(root).unwrap().to_string_lossy().into_owned();
                if kind.is_dir() {
                    stack.push(entry.path());
                } else if kind.is_symlink() {
                    out.push((relative, "-> link".into()));
                } else {
                    out.push((relative, fs::read_to_string(entry.path()).unwrap()));
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn the_suite_replaces_the_projects_configuration_and_keeps_its_code() {
        let dir = tempfile::tempdir().unwrap();
        let (suite_root, project) = (dir.path().join("suite"), dir.path().join("project"));
        write(
            &suite_root,
            &[
                ("tests/test_grade.py", "def test_it(): pass\n"),
                ("tests/conftest.py", "# suite\n"),
                ("pytest.ini", "[pytest]\n# suite\n"),
                ("requirements.txt", "pytest-mock==3.14.0\n"),
                ("evalmesh.toml", "grade_scale = 10\n"),
            ],
        );
        write(
            &project,
            &[
                ("calc.py", "def add(a, b): return a + b\n"),
                ("requirements.txt", "attrs==24.2.0"),
                ("conftest.py", "# forces outcomes\n"),
                ("tests/conftest.py", "# student\n"),
                ("tests/test_grade.py", "def test_it(): assert False\n"),
                ("tests/test_own.py", "def test_mine(): pass\n"),
                ("pytest.ini", "[pytest]\naddopts = -k 'not hard'\n"),
                ("sub/tox.ini", "[tox]\n\n[pytest]\naddopts = -p evil\n"),
                ("tox.ini", "[tox]\nenvlist = py311\n"),
                ("setup.cfg", "[metadata]\nname = calc\n\n[tool:pytest]\naddopts = -x\n"),
                ("pyproject.toml", "[project]\nname = \"calc\"\n\n[tool.pytest.ini_options]\naddopts = \"-q\"\n"),
                ("pkg/pyproject.toml", "[project]\nname = \"pkg\"\n"),
                ("evalmesh.toml", "grade_scale = 1000\n"),
                (".evalmesh-plugins", "cheat\n"),
            ],
        );
        std::os::unix::fs::symlink("/etc", project.join("tests").join("data")).unwrap();
        let suite = Suite::load(&suite_root).unwrap();
        assert_eq!(suite.modules(), ["tests/conftest.py", "tests/test_grade.py"]);
        suite.lay_over(&project).unwrap();
        let got = tree(&project);
        let want: Vec<(String, String)> = [
            (".evalmesh-plugins", "pytest-mock\n"),
            ("calc.py", "def add(a, b): return a + b\n"),
            ("evalmesh.toml", "grade_scale = 10\n"),
            ("pkg/pyproject.toml", "[project]\nname = \"pkg\"\n"),
            ("pytest.ini", "[pytest]\n# suite\n"),
            ("requirements.txt", "attrs==24.2.0\npytest-mock==3.14.0\n"),
            ("tests/conftest.py", "# suite\n"),
            ("tests/data", "-> link"),
            ("tests/test_grade.py", "def test_it(): pass\n"),
            ("tests/test_own.py", "def test_mine(): pass\n"),
            ("tox.ini", "[tox]\nenvlist = py311\n"),
        ]
        .map(|(p, t)| (p.to_owned(), t.to_owned()))
        .into();
        assert_eq!(got, want);
    }

    #[test]
    fn a_file_or_link_in_the_way_of_the_suite_is_replaced_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let (suite_root, project, outside) = (dir.path().join("suite"), dir.path().join("p"), dir.path().join("out"));
        write(&suite_root, &[("tests/test_a.py", "def test_a(): pass\n"), ("data/input.txt", "suite data\n")]);
        fs::create_dir_all(&outside).unwrap();
        write(&project, &[("tests", "a file where the suite has a folder\n")]);
        std::os::unix::fs::symlink(&outside, project.join("data")).unwrap();
        let list = dir.path().join("list");
        fs::write(&list, "outside\n").unwrap();
        std::os::unix::fs::symlink(&list, project.join(plugins::FILE)).unwrap();
        Suite::load(&suite_root).unwrap().lay_over(&project).unwrap();
        assert_eq!(fs::read_to_string(&list).unwrap(), "outside\n", "the plugin list is not written through a link");
        assert!(fs::symlink_metadata(project.join(plugins::FILE)).unwrap().is_file());
        assert_eq!(fs::read_to_string(project.join("tests/test_a.py")).unwrap(), "def test_a(): pass\n");
        assert!(fs::symlink_metadata(project.join("data")).unwrap().is_dir());
        assert_eq!(fs::read_to_string(project.join("data/input.txt")).unwrap(), "suite data\n");
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "nothing written through the link");
    }

    #[test]
    fn a_project_whose_requirements_cannot_be_read_safely_is_left_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let (suite_root, project) = (dir.path().join("suite"), dir.path().join("p"));
        write(&suite_root, &[("tests/test_a.py", "def test_a(): pass\n"), ("requirements.txt", "pytest-mock\n")]);
        write(&project, &[("conftest.py", "# student\n")]);
        let suite = Suite::load(&suite_root).unwrap();
        std::os::unix::fs::symlink("/dev/zero", project.join("requirements.txt")).unwrap();
        let err = suite.lay_over(&project).unwrap_err().to_string();
        assert_eq!(err, "reference suite: the project's requirements.txt is a symbolic link");
        std::fs::remove_file(project.join("requirements.txt")).unwrap();
        let fifo = std::ffi::CString::new(project.join("requirements.txt").as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) on a path we own, NUL-terminated above.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let err = suite.lay_over(&project).unwrap_err().to_string();
        assert_eq!(err, "reference suite: the project's requirements.txt is not a regular file");
        assert!(project.join("conftest.py").exists() && !project.join("tests").exists(), "nothing laid over");
    }

    #[test]
    fn a_suite_fits_a_submission_only_laid_over_all_its_projects() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("tests/test_a.py", &"#".repeat(999)), ("data.txt", "x")]);
        let suite = Suite::load(dir.path()).unwrap();
        assert_eq!(suite.bytes, 1000);
        assert!(suite.fits(3, 3000).is_ok());
        let err = suite.fits(4, 3000).unwrap_err().to_string();
        assert_eq!(err, "reference suite: 1000 bytes laid over 4 projects take 4000, more than the limit of 3000");
    }

    #[test]
    fn a_suite_without_tests_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &[("helpers.py", "X = 1\n"), ("requirements.txt", "")]);
        let err = Suite::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("reference suite: it holds no test file"), "{err}");
    }
}
