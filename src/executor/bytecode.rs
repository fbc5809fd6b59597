//! The bytecode of a project's sources, compiled once per project on each
//! node and shared by the children of all its runs there. Pure helper of the
//! executor, no actix inside.
//!
//! Without it every forked child compiles again every module it imports —
//! its package, its conftests, its test module through pytest's assertion
//! rewriter — which plain pytest does once per project; for a package such
//! as click that is most of a child's life. The launcher's `compile` mode
//! (a child of a fork server, running no project code) compiles the sources
//! as a run at `/project` would import them and sends each pyc; [`store`]
//! checks each against the node's copy of the project and puts it where
//! Python and pytest look for it, `__pycache__` beside its source. Each
//! child's copy of the project then carries them, and Python takes one only
//! while its source is unchanged (size and time for importlib's, a hash of
//! the source for pytest's), exactly as under plain pytest in a folder where
//! it ran before.
//!
//! Nothing a run writes is ever taken: the pycs come from a child that ran
//! no code of the project, and only over its results pipe, capped.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use base64::Engine;
use serde::Deserialize;

/// The most a project's bytecode may take on its way from the child.
pub const CAP: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum BytecodeError {
    #[error("the compile run sent more than {0} bytes")]
    TooLarge(usize),
    #[error("the compile run ended before its end record")]
    Unfinished,
    #[error("the compile run sent a line that is not bytecode: {0}")]
    Malformed(String),
    #[error("the compile run sent bytecode for {0}, which is not a source of the project")]
    NotASource(String),
    #[error("the compile run named {path} for {file}, which is not where Python looks")]
    Misplaced { file: String, path: String },
    #[error("{context}: {source}")]
    Io { context: String, source: std::io::Error },
}

#[derive(Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Record {
    Bytecode { source: String, path: String, data: String },
    End {},
}

/// Puts the pycs of `stream` (the compile run's results) into `root`, the
/// node's copy of the project; answers how many. A pyc whose file exists is
/// left as it is. All or nothing on a bad stream; each pyc appears whole
/// (linked into place once written), since a server may mirror `root` while
/// they land.
pub fn store(root: &Path, stream: &[u8]) -> Result<usize, BytecodeError> {
    if stream.len() > CAP {
        return Err(BytecodeError::TooLarge(CAP));
    }
    let mut pycs = BTreeMap::new();
    let mut ended = false;
    for line in stream.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        if ended {
            return Err(BytecodeError::Malformed("a line after the end".into()));
        }
        match serde_json::from_slice::<Record>(line) {
            Ok(Record::Bytecode { source, path, data }) => {
                let target = place(root, &source, &path)?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .map_err(|e| BytecodeError::Malformed(e.to_string()))?;
                pycs.insert(target, bytes);
            }
            Ok(Record::End {}) => ended = true,
            Err(e) => return Err(BytecodeError::Malformed(e.to_string())),
        }
    }
    if !ended {
        return Err(BytecodeError::Unfinished);
    }
    let io = |context: String| move |source| BytecodeError::Io { context, source };
    let parent = root.parent().unwrap_or(root);
    let staging = tempfile::Builder::new()
        .prefix(".bytecode-")
        .tempdir_in(parent)
        .map_err(io(format!("making a staging folder in {}", parent.display())))?;
    let mut stored = 0;
    for (i, (target, bytes)) in pycs.into_iter().enumerate() {
        let staged = staging.path().join(i.to_string());
        std::fs::write(&staged, bytes).map_err(io(format!("writing {}", staged.display())))?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(0o644))
            .map_err(io(format!("opening {} to every reader", staged.display())))?;
        let cache = target.parent().expect("a pyc has a folder");
        match std::fs::DirBuilder::new().mode(0o755).create(cache) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(format!("making {}", cache.display()))(e)),
        }
        if !std::fs::symlink_metadata(cache).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        match std::fs::hard_link(&staged, &target) {
            Ok(()) => stored += 1,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(format!("placing {}", target.display()))(e)),
        }
    }
    Ok(stored)
}

/// Where the pyc named `path` for `source` (both relative to the project)
/// goes under `root`: `source` must be a regular file of it, reached
/// without a link, and `path` its `__pycache__/<stem>.<tag>.pyc`.
fn place(root: &Path, source: &str, path: &str) -> Result<PathBuf, BytecodeError> {
    let not_a_source = || BytecodeError::NotASource(source.to_owned());
    let misplaced = || BytecodeError::Misplaced { file: source.to_owned(), path: path.to_owned() };
    let source_path = relative(source).filter(|p| p.extension().is_some_and(|e| e == "py")).ok_or_else(not_a_source)?;
    let mut at = root.to_owned();
    for component in source_path.components() {
        at.push(component);
        if std::fs::symlink_metadata(&at).map_or(true, |m| m.file_type().is_symlink()) {
            return Err(not_a_source());
        }
    }
    if !std::fs::symlink_metadata(&at).is_ok_and(|m| m.is_file()) {
        return Err(not_a_source());
    }
    let pyc = relative(path).ok_or_else(misplaced)?;
    let folder = source_path.parent().unwrap_or(Path::new("")).join("__pycache__");
    let stem = source_path.file_stem().and_then(|s| s.to_str()).ok_or_else(not_a_source)?;
    let name = pyc.file_name().and_then(|n| n.to_str()).ok_or_else(misplaced)?;
    let tag =
        name.strip_prefix(stem).and_then(|rest| rest.strip_prefix('.')).and_then(|rest| rest.strip_suffix(".pyc"));
    let tag_ok =
        tag.is_some_and(|t| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c)));
    if pyc.parent() != Some(folder.as_path()) || !tag_ok {
        return Err(misplaced());
    }
    Ok(root.join(pyc))
}

/// `path` as a relative path of plain names only.
fn relative(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(path);
    (!path.is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))).then_some(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("p");
        std::fs::create_dir_all(root.join("pkg")).unwrap();
        std::fs::write(root.join("pkg/mod.py"), "X = 1\n").unwrap();
        std::fs::write(root.join("top.py"), "Y = 2\n").unwrap();
        dir
    }

    fn line(source: &str, path: &str, data: &[u8]) -> String {
        let data = base64::engine::general_purpose::STANDARD.encode(data);
        serde_json::json!({"event": "bytecode", "source": source, "path": path, "data": data}).to_string() + "\n"
    }

    const END: &str = "{\"event\": \"end\", \"exitstatus\": 0}\n";

    #[test]
    fn pycs_land_beside_their_sources() {
        let dir = project();
        let root = dir.path().join("p");
        let stream = line("pkg/mod.py", "pkg/__pycache__/mod.cpython-311.pyc", b"one")
            + &line("top.py", "__pycache__/top.cpython-311-pytest-9.2.0.pyc", b"two")
            + END;
        assert_eq!(store(&root, stream.as_bytes()).unwrap(), 2);
        assert_eq!(std::fs::read(root.join("pkg/__pycache__/mod.cpython-311.pyc")).unwrap(), b"one");
        assert_eq!(std::fs::read(root.join("__pycache__/top.cpython-311-pytest-9.2.0.pyc")).unwrap(), b"two");
        let mode = std::fs::metadata(root.join("pkg/__pycache__")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        // Nothing of the staging is left beside the project.
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from("p")]);
        // A second store leaves the first pycs as they are.
        let again = line("top.py", "__pycache__/top.cpython-311-pytest-9.2.0.pyc", b"other") + END;
        assert_eq!(store(&root, again.as_bytes()).unwrap(), 0);
        assert_eq!(std::fs::read(root.join("__pycache__/top.cpython-311-pytest-9.2.0.pyc")).unwrap(), b"two");
    }

    #[test]
    fn a_pyc_goes_only_where_python_looks_for_its_source() {
        let dir = project();
        let root = dir.path().join("p");
        std::os::unix::fs::symlink(root.join("pkg"), root.join("link")).unwrap();
        let refused = [
            ("../p/top.py", "../p/__pycache__/top.x.pyc"),
            ("/etc/passwd.py", "__pycache__/passwd.x.pyc"),
            ("missing.py", "__pycache__/missing.x.pyc"),
            ("pkg", "__pycache__/pkg.x.pyc"),
            ("link/mod.py", "link/__pycache__/mod.x.pyc"),
            ("top.py", "pkg/__pycache__/top.x.pyc"),
            ("top.py", "__pycache__/top.pyc"),
            ("top.py", "__pycache__/other.x.pyc"),
            ("top.py", "__pycache__/top.x/y.pyc"),
            ("top.py", "__pycache__/../top.x.pyc"),
            ("top.py", "__pycache__/top.x y.pyc"),
        ];
        for (source, path) in refused {
            let stream = line(source, path, b"x") + END;
            assert!(store(&root, stream.as_bytes()).is_err(), "{source} {path}");
        }
        let left: Vec<_> = walk(&root);
        assert_eq!(left, vec!["link", "pkg", "pkg/mod.py", "top.py"]);
    }

    #[test]
    fn a_bad_stream_stores_nothing() {
        let dir = project();
        let root = dir.path().join("p");
        let good = line("top.py", "__pycache__/top.x.pyc", b"x");
        let streams = [
            good.clone(),
            good.clone() + "{\"event\": \"report\"}\n" + END,
            good.clone() + END + &good,
            line("top.py", "__pycache__/top.x.pyc", b"x").replace("\"data\":\"", "\"data\":\"!") + END,
        ];
        for stream in streams {
            assert!(store(&root, stream.as_bytes()).is_err(), "{stream}");
        }
        let too_large = vec![b' '; CAP + 1];
        assert!(matches!(store(&root, &too_large), Err(BytecodeError::TooLarge(_))));
        assert!(!root.join("__pycache__").exists());
    }

    fn walk(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_owned()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if std::fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }
}
