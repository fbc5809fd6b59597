//! Zips folders for `evalmesh submit`, in memory, leaving out what is not
//! the projects' own: version control, virtual environments and caches.

use std::io::{Cursor, Write};
use std::path::Path;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::CliError;

/// Folders never sent: a repository's history, caches, and virtual
/// environments by their usual names (any folder holding `pyvenv.cfg` is
/// one too).
const LEFT_OUT: [&str; 10] =
    [".git", ".hg", ".svn", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", ".venv", "venv"];

/// What went into an archive.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Packed {
    pub files: usize,
    /// Links and other files that are not regular, which a node refuses.
    pub skipped: Vec<String>,
}

/// Zips each of `folders`: one folder's content at the archive's root, or,
/// for several, each under its own name.
pub fn zip_folders(folders: &[&Path]) -> Result<(Vec<u8>, Packed), CliError> {
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    let mut packed = Packed::default();
    for folder in folders {
        let prefix = match folders.len() {
            1 => String::new(),
            _ => {
                let name =
                    folder.canonicalize().ok().and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
                format!("{}/", name.ok_or_else(|| CliError::Usage(format!("{} has no name", folder.display())))?)
            }
        };
        add(&mut zip, folder, folder, &prefix, &mut packed)?;
    }
    let bytes = zip.finish().map_err(|e| CliError::Local(format!("zipping: {e}")))?.into_inner();
    Ok((bytes, packed))
}

fn add(
    zip: &mut ZipWriter<Cursor<Vec<u8>>>,
    root: &Path,
    dir: &Path,
    prefix: &str,
    packed: &mut Packed,
) -> Result<(), CliError> {
    let read = |e: std::io::Error| CliError::Local(format!("reading {}: {e}", dir.display()));
    let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
    entries.sort_by_key(|e| e.file_name());
    let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
    for entry in entries {
        let path = entry.path();
        let relative = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
        let kind = entry.file_type().map_err(read)?;
        if kind.is_dir() {
            let name = entry.file_name();
            if LEFT_OUT.iter().any(|n| name == *n) || path.join("pyvenv.cfg").exists() {
                continue;
            }
            add(zip, root, &path, prefix, packed)?;
        } else if kind.is_file() {
            if relative.ends_with(".pyc") {
                continue;
            }
            let bytes =
                std::fs::read(&path).map_err(|e| CliError::Local(format!("reading {}: {e}", path.display())))?;
            zip.start_file(format!("{prefix}{relative}"), options)
                .and_then(|()| zip.write_all(&bytes).map_err(Into::into))
                .map_err(|e| CliError::Local(format!("zipping {}: {e}", path.display())))?;
            packed.files += 1;
        } else {
            packed.skipped.push(format!("{prefix}{relative}"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(bytes: &[u8]) -> Vec<String> {
        let zip = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
        let mut names: Vec<String> = zip.file_names().map(str::to_owned).collect();
        names.sort();
        names
    }

    #[test]
    fn leaves_out_history_environments_and_caches() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("alice");
        for (file, text) in [
            ("calc.py", "x = 1\n"),
            ("tests/test_calc.py", "def test(): pass\n"),
            (".git/HEAD", "ref\n"),
            ("__pycache__/calc.cpython-311.pyc", ""),
            ("tests/calc.cpython-311.pyc", ""),
            (".venv/lib/site.py", ""),
            ("env/pyvenv.cfg", "home = /usr\n"),
            ("env/lib/test_in_env.py", ""),
            (".pytest_cache/v", ""),
            (".gitignore", "*.pyc\n"),
        ] {
            std::fs::create_dir_all(p.join(file).parent().unwrap()).unwrap();
            std::fs::write(p.join(file), text).unwrap();
        }
        std::os::unix::fs::symlink("/etc/passwd", p.join("passwd")).unwrap();
        let (bytes, packed) = zip_folders(&[&p]).unwrap();
        assert_eq!(names(&bytes), [".gitignore", "calc.py", "tests/test_calc.py"]);
        assert_eq!(packed, Packed { files: 3, skipped: vec!["passwd".into()] });

        let q = dir.path().join("bob");
        std::fs::create_dir_all(&q).unwrap();
        std::fs::write(q.join("b.py"), "").unwrap();
        let (bytes, _) = zip_folders(&[&p, &q]).unwrap();
        assert_eq!(names(&bytes), ["alice/.gitignore", "alice/calc.py", "alice/tests/test_calc.py", "bob/b.py"]);
    }
}
