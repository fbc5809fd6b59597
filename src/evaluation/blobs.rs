//! Project blobs: a project's folder packed as a zip and named by the SHA-256
//! of its bytes, so that a worker fetches a project once and two evaluations
//! of the same content share it. Pure helpers, no actix inside.
//!
//! Packing is deterministic — entries sorted, timestamps and permissions
//! fixed — so that the same files always give the same name.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Folders that hold no part of the project: caches and version control.
const SKIPPED: [&str; 4] = [".git", "__pycache__", ".pytest_cache", ".mypy_cache"];

/// The path of blob `sha` under `dir`.
pub fn path(dir: &Path, sha: &str) -> PathBuf {
    dir.join(format!("{sha}.zip"))
}

/// True for 64 lowercase hex digits: the only names a blob route serves.
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Packs the folder `root` into `dir`, answering the blob's SHA-256. A blob
/// already there is kept as it is.
pub fn pack(root: &Path, dir: &Path) -> io::Result<String> {
    fs::create_dir_all(dir)?;
    let mut files = Vec::new();
    walk(root, root, &mut files)?;
    files.sort();
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    let mut zip = ZipWriter::new(tmp.reopen()?);
    let options = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .last_modified_time(DateTime::default())
        .unix_permissions(0o644);
    for rel in &files {
        zip.start_file(rel.as_str(), options)?;
        let mut file = fs::File::open(root.join(rel))?;
        io::copy(&mut file, &mut zip)?;
    }
    zip.finish()?.flush()?;
    let mut hash = Sha256::new();
    io::copy(&mut fs::File::open(tmp.path())?, &mut hash)?;
    let sha = format!("{:x}", hash.finalize());
    let dest = path(dir, &sha);
    if !dest.exists() {
        tmp.persist(&dest).map_err(|e| e.error)?;
    }
    Ok(sha)
}

/// Regular files below `dir`, as '/'-separated paths relative to `root`.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if !SKIPPED.iter().any(|s| entry.file_name() == *s) {
                walk(root, &path, out)?;
            }
        } else if kind.is_file() {
            let rel = path.strip_prefix(root).map_err(|e| io::Error::other(e.to_string()))?;
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluation::intake::{unpack, UnpackLimits};

    fn project(dir: &Path) {
        fs::create_dir_all(dir.join("tests/__pycache__")).unwrap();
        fs::create_dir_all(dir.join(".git")).unwrap();
        fs::write(dir.join("requirements.txt"), "six\n").unwrap();
        fs::write(dir.join("tests/test_a.py"), "def test_a(): pass\n").unwrap();
        fs::write(dir.join("tests/__pycache__/x.pyc"), "junk").unwrap();
        fs::write(dir.join(".git/HEAD"), "ref").unwrap();
    }

    #[test]
    fn same_content_gives_the_same_blob() {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b, blobs) = (tmp.path().join("a"), tmp.path().join("b"), tmp.path().join("blobs"));
        project(&a);
        project(&b);
        let sha_a = pack(&a, &blobs).unwrap();
        let sha_b = pack(&b, &blobs).unwrap();
        assert_eq!(sha_a, sha_b);
        assert!(is_sha256(&sha_a));
        assert_eq!(fs::read_dir(&blobs).unwrap().count(), 1, "no temporary file is left");
        fs::write(b.join("tests/test_a.py"), "def test_a(): assert 0\n").unwrap();
        assert_ne!(pack(&b, &blobs).unwrap(), sha_a);
    }

    #[test]
    fn a_blob_unpacks_to_the_project_without_caches() {
        let tmp = tempfile::tempdir().unwrap();
        let (src, blobs, out) = (tmp.path().join("src"), tmp.path().join("blobs"), tmp.path().join("out"));
        project(&src);
        let sha = pack(&src, &blobs).unwrap();
        fs::create_dir(&out).unwrap();
        let limits = UnpackLimits { max_entries: 100, max_unpacked_bytes: 1 << 20 };
        let unpacked = unpack(&path(&blobs, &sha), &out, &limits).unwrap();
        assert_eq!(unpacked.files, 2);
        assert_eq!(fs::read_to_string(out.join("tests/test_a.py")).unwrap(), "def test_a(): pass\n");
        assert!(!out.join(".git").exists() && !out.join("tests/__pycache__").exists());
    }

    #[test]
    fn only_hex_digests_are_blob_names() {
        assert!(!is_sha256("../etc/passwd"));
        assert!(!is_sha256(&"A".repeat(64)));
        assert!(is_sha256(&"0f".repeat(32)));
    }
}
