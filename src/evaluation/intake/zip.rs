//! Safe unpacking of a student's zip archive into an empty workspace folder.
//!
//! The archive is hostile, so unpacking runs in two passes. The first reads
//! only headers, never entry data, and rejects the whole archive if any entry is
//! unsafe (absolute, `..`, backslash or drive tricks, NUL or control
//! characters, symlinks, special files, collisions), if it lists too many
//! entries, or if its declared sizes already exceed the limit; nothing is
//! written before that pass succeeds. The second pass extracts, counting the
//! bytes really decompressed (header sizes lie in zip bombs) and stopping as
//! soon as the limit would be crossed. Files are created with `create_new`
//! and folders one level at a time, so an existing symlink is never followed,
//! and modes are fixed (0644 files, 0755 folders) whatever the archive says.
//!
//! On error the caller removes the destination; partial content may remain in
//! it, but nothing is ever written outside it.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use ::zip::result::ZipError;
use ::zip::{CompressionMethod, ZipArchive};

use super::IntakeError;
use crate::config::IntakeConfig;

/// Bounds on what one archive may unpack to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimits {
    /// Entries listed in the central directory, folders and `__MACOSX/`
    /// included; checked before anything is written.
    pub max_entries: usize,
    /// Bytes actually decompressed, summed over all files.
    pub max_unpacked_bytes: u64,
}

impl UnpackLimits {
    pub fn from_config(intake: &IntakeConfig) -> Self {
        Self { max_entries: intake.max_entries, max_unpacked_bytes: intake.max_unpacked_bytes }
    }
}

/// What an unpack wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unpacked {
    /// Regular files written.
    pub files: usize,
    /// Bytes written, summed over those files.
    pub bytes: u64,
}

const FILE_MODE: u32 = 0o644;
const DIR_MODE: u32 = 0o755;
const S_IFMT: u32 = 0o170_000;
const S_IFREG: u32 = 0o100_000;
const S_IFDIR: u32 = 0o040_000;
const S_IFLNK: u32 = 0o120_000;
const MAX_NAME_BYTES: usize = 1024;
const MAX_COMPONENT_BYTES: usize = 255;
/// macOS Finder adds resource forks under this folder; they are never code.
const MACOS_METADATA: &str = "__MACOSX";

/// Unpacks `archive` into `dest`, which must exist and be empty.
pub fn unpack(archive: &Path, dest: &Path, limits: &UnpackLimits) -> Result<Unpacked, IntakeError> {
    let file = File::open(archive).map_err(IntakeError::io(archive))?;
    let mut zip = ZipArchive::new(BufReader::new(file)).map_err(|err| match err {
        // A truncated or garbled upload shows up as these kinds; anything
        // else is our own disk failing.
        ZipError::Io(e) if !matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData) => {
            IntakeError::Io { path: archive.to_path_buf(), source: e }
        }
        other => IntakeError::NotZip { reason: describe(&other) },
    })?;

    if zip.len() > limits.max_entries {
        return Err(IntakeError::TooManyEntries { count: zip.len(), limit: limits.max_entries });
    }
    check_hidden_entries(archive, zip.central_directory_start(), zip.len())?;

    let plan = plan(&mut zip, archive)?;
    if !plan.iter().any(|p| p.kind == Kind::File) {
        return Err(IntakeError::EmptyArchive);
    }
    // Honest bombs are refused before anything is written; dishonest ones
    // are caught by the counting reader below.
    let declared: u128 = plan.iter().map(|p| u128::from(p.declared_size)).sum();
    if declared > u128::from(limits.max_unpacked_bytes) {
        return Err(IntakeError::TooLarge { limit: limits.max_unpacked_bytes });
    }

    extract(&mut zip, &plan, dest, limits)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
}

/// One entry that passed validation and will be written.
#[derive(Debug)]
struct Planned {
    index: usize,
    name: String,
    rel: PathBuf,
    kind: Kind,
    declared_size: u64,
}

/// Validates every entry and returns those to write, in archive order.
fn plan<R: Read + io::Seek>(zip: &mut ZipArchive<R>, archive: &Path) -> Result<Vec<Planned>, IntakeError> {
    let mut planned = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let label = zip.name_for_index(index).map_or_else(|| format!("#{index}"), str::to_string);
        let entry = zip.by_index_raw(index).map_err(|err| entry_error(err, &label, archive))?;
        let name = entry.name().to_string();
        let unsafe_entry = |reason: &str| IntakeError::UnsafeEntry { entry: name.clone(), reason: reason.to_string() };

        if entry.name_raw().contains(&0) {
            return Err(unsafe_entry("name contains a nul byte"));
        }
        let rel = relative_path(&name).map_err(unsafe_entry)?;

        let file_type = entry.unix_mode().map_or(0, |mode| mode & S_IFMT);
        let kind = match file_type {
            S_IFLNK => return Err(unsafe_entry("symlinks are not allowed")),
            S_IFDIR => Kind::Dir,
            _ if name.ends_with('/') => Kind::Dir,
            0 | S_IFREG => Kind::File,
            _ => return Err(unsafe_entry("special files are not allowed")),
        };

        let Some(rel) = rel else {
            // "./" and the like name the destination itself.
            if kind == Kind::Dir {
                continue;
            }
            return Err(unsafe_entry("name is empty"));
        };
        if rel.starts_with(MACOS_METADATA) {
            continue;
        }

        if kind == Kind::File {
            if entry.encrypted() {
                return Err(IntakeError::UnsupportedEntry {
                    entry: name,
                    reason: "encrypted entries are not supported".to_string(),
                });
            }
            if !matches!(entry.compression(), CompressionMethod::Stored | CompressionMethod::Deflated) {
                return Err(IntakeError::UnsupportedEntry {
                    reason: format!(
                        "compression method {} is not supported, only stored and deflate",
                        entry.compression()
                    ),
                    entry: name,
                });
            }
        }

        let declared_size = if kind == Kind::File { entry.size() } else { 0 };
        planned.push(Planned { index, name, rel, kind, declared_size });
    }
    check_collisions(&planned)?;
    Ok(planned)
}

/// Refuses an archive whose central directory holds entries that the zip
/// crate does not list: it keeps only the last of the entries sharing one
/// name, so `check_collisions` never sees the others, and which one a
/// teacher's unzip tool shows is anyone's guess. Walks the directory's records
/// from `start`, at most `listed + 1` of them.
fn check_hidden_entries(archive: &Path, start: u64, listed: usize) -> Result<(), IntakeError> {
    const SIGNATURE: [u8; 4] = *b"PK\x01\x02";
    let mut file = BufReader::new(File::open(archive).map_err(IntakeError::io(archive))?);
    file.seek(io::SeekFrom::Start(start)).map_err(IntakeError::io(archive))?;
    let mut names: HashSet<Vec<u8>> = HashSet::with_capacity(listed);
    let mut header = [0u8; 46];
    for _ in 0..=listed {
        // The zip crate read the first `listed` records already; a short read
        // or another signature past them ends the directory.
        if file.read_exact(&mut header).is_err() || header[..4] != SIGNATURE {
            return Ok(());
        }
        let field = |at: usize| u16::from_le_bytes([header[at], header[at + 1]]);
        let mut name = vec![0u8; usize::from(field(28))];
        if file.read_exact(&mut name).is_err() {
            return Ok(());
        }
        if names.contains(&name) {
            return Err(IntakeError::UnsafeEntry {
                entry: String::from_utf8_lossy(&name).into_owned(),
                reason: "another entry has the same name".to_string(),
            });
        }
        names.insert(name);
        file.seek_relative(i64::from(field(30)) + i64::from(field(32))).map_err(IntakeError::io(archive))?;
    }
    Err(IntakeError::NotZip { reason: "the central directory holds more entries than its end record declares".into() })
}

/// Turns an entry name into a relative path of plain components, or says why
/// it cannot be one. `Ok(None)` means the name denotes the destination itself.
fn relative_path(name: &str) -> Result<Option<PathBuf>, &'static str> {
    if name.contains('\0') {
        return Err("name contains a nul byte");
    }
    if name.chars().any(char::is_control) {
        return Err("name contains a control character");
    }
    // Windows tools write backslashes as separators, and `..\x` is a
    // traversal there; refuse rather than guess.
    if name.contains('\\') {
        return Err("name contains a backslash");
    }
    if name.starts_with('/') {
        return Err("name is an absolute path");
    }
    let first = name.split('/').next().unwrap_or_default();
    let bytes = first.as_bytes();
    if bytes.len() >= 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':' {
        return Err("name starts with a windows drive letter");
    }

    // Past these the filesystem answers ENAMETOOLONG, which would read as
    // our i/o failure rather than the archive's fault.
    if name.len() > MAX_NAME_BYTES {
        return Err("name is longer than 1024 bytes");
    }
    let mut rel = PathBuf::new();
    for part in name.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err("name contains a '..' component"),
            _ if part.len() > MAX_COMPONENT_BYTES => return Err("name has a component longer than 255 bytes"),
            _ => rel.push(part),
        }
    }
    // Belt and braces: whatever the split above missed, only plain
    // components may reach the filesystem.
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err("name is not a plain relative path");
    }
    Ok((!rel.as_os_str().is_empty()).then_some(rel))
}

/// Refuses two entries for one path (`a/b` and `a//b`) and a path used both
/// as a file and as a folder, which would otherwise fail half-way through.
fn check_collisions(planned: &[Planned]) -> Result<(), IntakeError> {
    let mut files: HashMap<&Path, &str> = HashMap::new();
    let mut dirs: HashSet<&Path> = HashSet::new();
    for p in planned {
        match p.kind {
            Kind::File => {
                if files.insert(&p.rel, &p.name).is_some() {
                    return Err(IntakeError::UnsafeEntry {
                        entry: p.name.clone(),
                        reason: "another entry has the same path".to_string(),
                    });
                }
            }
            Kind::Dir => {
                dirs.insert(&p.rel);
            }
        }
        dirs.extend(p.rel.ancestors().skip(1));
    }
    for p in planned.iter().filter(|p| p.kind == Kind::File) {
        if dirs.contains(p.rel.as_path()) {
            return Err(IntakeError::UnsafeEntry {
                entry: p.name.clone(),
                reason: "path is used both as a file and as a folder".to_string(),
            });
        }
    }
    Ok(())
}

fn extract<R: Read + io::Seek>(
    zip: &mut ZipArchive<R>,
    plan: &[Planned],
    dest: &Path,
    limits: &UnpackLimits,
) -> Result<Unpacked, IntakeError> {
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut written = Unpacked { files: 0, bytes: 0 };
    let mut buf = vec![0u8; 64 * 1024];

    for p in plan {
        match p.kind {
            Kind::Dir => create_dirs(dest, &p.rel, &mut created)?,
            Kind::File => {
                if let Some(parent) = p.rel.parent() {
                    create_dirs(dest, parent, &mut created)?;
                }
                let path = dest.join(&p.rel);
                let mut out = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(FILE_MODE)
                    .open(&path)
                    .map_err(IntakeError::io(&path))?;
                // The umask may have narrowed the mode; the executor relies
                // on files being readable.
                out.set_permissions(fs::Permissions::from_mode(FILE_MODE)).map_err(IntakeError::io(&path))?;

                let mut entry = zip.by_index(p.index).map_err(|err| entry_error(err, &p.name, &path))?;
                loop {
                    let n = match entry.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            return Err(IntakeError::CorruptEntry {
                                entry: p.name.clone(),
                                reason: e.to_string().to_lowercase(),
                            })
                        }
                    };
                    // n is at most the buffer size, so it fits in u64.
                    let total = written.bytes.saturating_add(n as u64);
                    if total > limits.max_unpacked_bytes {
                        return Err(IntakeError::TooLarge { limit: limits.max_unpacked_bytes });
                    }
                    out.write_all(&buf[..n]).map_err(IntakeError::io(&path))?;
                    written.bytes = total;
                }
                written.files += 1;
            }
        }
    }
    Ok(written)
}

/// Creates `dest/rel` one component at a time with mode 0755, refusing to
/// pass through anything that is not a real folder (an existing symlink).
fn create_dirs(dest: &Path, rel: &Path, created: &mut HashSet<PathBuf>) -> Result<(), IntakeError> {
    let mut path = dest.to_path_buf();
    for part in rel.components() {
        path.push(part);
        if created.contains(&path) {
            continue;
        }
        match fs::DirBuilder::new().mode(DIR_MODE).create(&path) {
            Ok(()) => {
                fs::set_permissions(&path, fs::Permissions::from_mode(DIR_MODE)).map_err(IntakeError::io(&path))?
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(&path).map_err(IntakeError::io(&path))?;
                if !meta.is_dir() {
                    return Err(IntakeError::Io {
                        source: io::Error::new(io::ErrorKind::AlreadyExists, "exists and is not a folder"),
                        path,
                    });
                }
            }
            Err(e) => return Err(IntakeError::Io { path, source: e }),
        }
        created.insert(path.clone());
    }
    Ok(())
}

/// Maps an error met while opening one entry.
fn entry_error(err: ZipError, entry: &str, path: &Path) -> IntakeError {
    match err {
        ZipError::UnsupportedArchive(_) | ZipError::InvalidPassword => {
            IntakeError::UnsupportedEntry { entry: entry.to_string(), reason: describe(&err) }
        }
        ZipError::Io(e) if !matches!(e.kind(), io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData) => {
            IntakeError::Io { path: path.to_path_buf(), source: e }
        }
        other => IntakeError::CorruptEntry { entry: entry.to_string(), reason: describe(&other) },
    }
}

/// The zip crate's text, lowercased, without its "invalid Zip archive"
/// prefix and with the i/o cause it otherwise hides.
fn describe(err: &ZipError) -> String {
    match err {
        ZipError::Io(e) => e.to_string().to_lowercase(),
        ZipError::InvalidArchive(m) => m.to_lowercase(),
        ZipError::UnsupportedArchive(m) => m.to_lowercase(),
        other => other.to_string().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::zip::write::SimpleFileOptions;
    use ::zip::ZipWriter;
    use std::io::Cursor;

    const LIMITS: UnpackLimits = UnpackLimits { max_entries: 100, max_unpacked_bytes: 1024 * 1024 };

    /// A scratch tree `root/outer/dest`, so an escape of one or two levels
    /// lands inside `root` where the test can see it.
    struct Scratch {
        _tmp: tempfile::TempDir,
        root: PathBuf,
        dest: PathBuf,
        archive: PathBuf,
    }

    fn scratch() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("root");
        let dest = root.join("outer").join("dest");
        fs::create_dir_all(&dest).unwrap();
        Scratch { archive: tmp.path().join("upload.zip"), root, dest, _tmp: tmp }
    }

    fn options() -> SimpleFileOptions {
        SimpleFileOptions::default().compression_method(CompressionMethod::Deflated)
    }

    fn build(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data) in entries {
            if name.ends_with('/') {
                w.add_directory(*name, options()).unwrap();
            } else {
                w.start_file(*name, options()).unwrap();
                w.write_all(data).unwrap();
            }
        }
        w.finish().unwrap().into_inner()
    }

    fn unpack_bytes(s: &Scratch, bytes: &[u8], limits: &UnpackLimits) -> Result<Unpacked, IntakeError> {
        fs::write(&s.archive, bytes).unwrap();
        unpack(&s.archive, &s.dest, limits)
    }

    /// Every path under `root`, relative to it, sorted.
    fn tree(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                out.push(path.strip_prefix(root).unwrap().to_string_lossy().into_owned());
                if fs::symlink_metadata(&path).unwrap().is_dir() {
                    stack.push(path);
                }
            }
        }
        out.sort();
        out
    }

    fn assert_nothing_written(s: &Scratch) {
        assert_eq!(tree(&s.root), vec!["outer", "outer/dest"]);
    }

    fn unsafe_reason(result: Result<Unpacked, IntakeError>) -> (String, String) {
        match result {
            Err(IntakeError::UnsafeEntry { entry, reason }) => (entry, reason),
            other => panic!("expected UnsafeEntry, got {other:?}"),
        }
    }

    #[test]
    fn unpacks_nested_archive_with_fixed_modes() {
        let s = scratch();
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let loose = options().unix_permissions(0o777);
        w.add_directory("proj/", options().unix_permissions(0o700)).unwrap();
        w.start_file("proj/requirements.txt", loose).unwrap();
        w.write_all(b"pytest\n").unwrap();
        w.start_file("proj/src/pkg/__init__.py", options().unix_permissions(0o600)).unwrap();
        w.start_file("proj/tests/test_a.py", loose).unwrap();
        w.write_all(b"def test_a():\n    assert True\n").unwrap();
        w.start_file("__MACOSX/proj/._requirements.txt", loose).unwrap();
        w.write_all(b"junk").unwrap();
        let bytes = w.finish().unwrap().into_inner();

        let got = unpack_bytes(&s, &bytes, &LIMITS).unwrap();
        assert_eq!(got, Unpacked { files: 3, bytes: 7 + 30 });
        assert_eq!(
            tree(&s.dest),
            vec![
                "proj",
                "proj/requirements.txt",
                "proj/src",
                "proj/src/pkg",
                "proj/src/pkg/__init__.py",
                "proj/tests",
                "proj/tests/test_a.py",
            ]
        );
        assert_eq!(
            fs::read_to_string(s.dest.join("proj/tests/test_a.py")).unwrap(),
            "def test_a():\n    assert True\n"
        );
        let mode = |p: &str| fs::metadata(s.dest.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("proj"), 0o755);
        assert_eq!(mode("proj/src/pkg"), 0o755);
        assert_eq!(mode("proj/requirements.txt"), 0o644);
        assert_eq!(mode("proj/src/pkg/__init__.py"), 0o644);
    }

    #[test]
    fn rejects_zip_slip_and_writes_nothing() {
        let s = scratch();
        let bytes = build(&[("ok.py", b"x"), ("../../x", b"pwned")]);
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!(entry, "../../x");
        assert_eq!(reason, "name contains a '..' component");
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_absolute_entry_and_writes_nothing() {
        let s = scratch();
        let target = format!("/tmp/evalmesh-intake-abs-{}", std::process::id());
        let bytes = build(&[("ok.py", b"x"), (target.as_str(), b"pwned")]);
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!(entry, target);
        assert_eq!(reason, "name is an absolute path");
        assert!(!Path::new(&target).exists());
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_backslash_and_drive_entries() {
        for (name, want) in [
            ("..\\..\\x", "name contains a backslash"),
            ("a\\b.py", "name contains a backslash"),
            ("C:/windows/x", "name starts with a windows drive letter"),
            ("c:x", "name starts with a windows drive letter"),
        ] {
            let s = scratch();
            let bytes = build(&[(name, b"x")]);
            let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
            assert_eq!((entry.as_str(), reason.as_str()), (name, want));
            assert_nothing_written(&s);
        }
    }

    #[test]
    fn relative_path_accepts_plain_names_and_refuses_tricks() {
        assert_eq!(relative_path("a/./b//c.py"), Ok(Some(PathBuf::from("a/b/c.py"))));
        assert_eq!(relative_path("./"), Ok(None));
        assert_eq!(relative_path("foo..bar/x"), Ok(Some(PathBuf::from("foo..bar/x"))));
        assert_eq!(relative_path("a/b:c"), Ok(Some(PathBuf::from("a/b:c"))));
        assert_eq!(relative_path("a/../b"), Err("name contains a '..' component"));
        assert_eq!(relative_path("a\0b"), Err("name contains a nul byte"));
        assert_eq!(relative_path("a\nb"), Err("name contains a control character"));
        assert_eq!(relative_path("/x"), Err("name is an absolute path"));
        assert_eq!(relative_path("\\\\server\\x"), Err("name contains a backslash"));
        assert_eq!(relative_path("D:\\x"), Err("name contains a backslash"));
        let long = "x".repeat(256);
        assert_eq!(relative_path(&long), Err("name has a component longer than 255 bytes"));
        assert_eq!(relative_path(&"x/".repeat(600)), Err("name is longer than 1024 bytes"));
        let fine = format!("{}/{}", "x".repeat(255), "y".repeat(255));
        assert_eq!(relative_path(&fine), Ok(Some(PathBuf::from(&fine))));
    }

    #[test]
    fn rejects_nul_in_entry_name() {
        let s = scratch();
        let bytes = build(&[("ok.py", b"x"), ("evil\0.py", b"x")]);
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!(entry, "evil\0.py");
        assert_eq!(reason, "name contains a nul byte");
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_symlink_entry_and_writes_nothing() {
        let s = scratch();
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        w.start_file("ok.py", options()).unwrap();
        w.add_symlink("link", "/etc/passwd", options()).unwrap();
        let bytes = w.finish().unwrap().into_inner();
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!(entry, "link");
        assert_eq!(reason, "symlinks are not allowed");
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_special_file_entry() {
        let s = scratch();
        let mut bytes = build(&[("fifo", b"")]);
        // ZipWriter masks modes to permissions, so write S_IFIFO | 0644 into
        // the central directory's external attributes by hand, made by unix.
        let central = bytes.windows(4).rposition(|w| w == b"PK\x01\x02").unwrap();
        bytes[central + 5] = 3;
        bytes[central + 38..central + 42].copy_from_slice(&(0o010_644u32 << 16).to_le_bytes());
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!(entry, "fifo");
        assert_eq!(reason, "special files are not allowed");
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_duplicate_and_file_folder_collisions() {
        let s = scratch();
        let bytes = build(&[("a/b.py", b"1"), ("a//b.py", b"2")]);
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!((entry.as_str(), reason.as_str()), ("a//b.py", "another entry has the same path"));
        assert_nothing_written(&s);

        let s = scratch();
        let bytes = build(&[("a", b"1"), ("a/b.py", b"2")]);
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!((entry.as_str(), reason.as_str()), ("a", "path is used both as a file and as a folder"));
        assert_nothing_written(&s);
    }

    /// The zip crate lists one entry per name, the last; the others must
    /// not slip past `check_collisions` unseen.
    #[test]
    fn rejects_entries_sharing_one_name_that_the_reader_would_hide() {
        let mut bytes = build(&[("a.py", b"assert True"), ("b.py", b"assert False"), ("c.py", b"")]);
        let renamed = bytes.windows(4).enumerate().filter(|(_, w)| w == b"b.py").map(|(at, _)| at).collect::<Vec<_>>();
        assert_eq!(renamed.len(), 2, "b.py in its local header and in the central directory");
        for at in renamed {
            bytes[at..at + 4].copy_from_slice(b"a.py");
        }
        let s = scratch();
        let (entry, reason) = unsafe_reason(unpack_bytes(&s, &bytes, &LIMITS));
        assert_eq!((entry.as_str(), reason.as_str()), ("a.py", "another entry has the same name"));
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_honest_zip_bomb_before_writing() {
        let s = scratch();
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let bytes = build(&[("bomb.bin", &zeros)]);
        assert!(bytes.len() < 100 * 1024, "zeros should compress well");
        match unpack_bytes(&s, &bytes, &LIMITS) {
            Err(IntakeError::TooLarge { limit }) => assert_eq!(limit, 1024 * 1024),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_nothing_written(&s);
    }

    /// Overwrites the uncompressed size of the only entry in both the local
    /// header and the central directory, as a zip bomb would.
    fn lie_about_size(bytes: &mut [u8], size: u32) {
        let find = |bytes: &[u8], sig: &[u8]| bytes.windows(4).rposition(|w| w == sig).unwrap();
        let local = find(bytes, b"PK\x03\x04");
        let central = find(bytes, b"PK\x01\x02");
        bytes[local + 22..local + 26].copy_from_slice(&size.to_le_bytes());
        bytes[central + 24..central + 28].copy_from_slice(&size.to_le_bytes());
    }

    #[test]
    fn stops_lying_zip_bomb_at_the_limit() {
        let s = scratch();
        let zeros = vec![0u8; 10 * 1024 * 1024];
        let mut bytes = build(&[("bomb.bin", &zeros)]);
        lie_about_size(&mut bytes, 100);
        match unpack_bytes(&s, &bytes, &LIMITS) {
            Err(IntakeError::TooLarge { limit }) => assert_eq!(limit, 1024 * 1024),
            other => panic!("expected TooLarge, got {other:?}"),
        }
        let written = fs::metadata(s.dest.join("bomb.bin")).unwrap().len();
        assert!(written <= 1024 * 1024, "wrote {written} bytes");
        assert_eq!(tree(&s.root), vec!["outer", "outer/dest", "outer/dest/bomb.bin"]);
    }

    #[test]
    fn counts_bytes_across_files_against_the_limit() {
        let s = scratch();
        let limits = UnpackLimits { max_entries: 10, max_unpacked_bytes: 10 };
        let bytes = build(&[("a.py", b"123456"), ("b.py", b"12345")]);
        assert!(matches!(unpack_bytes(&s, &bytes, &limits), Err(IntakeError::TooLarge { limit: 10 })));

        let s = scratch();
        let bytes = build(&[("a.py", b"12345"), ("b.py", b"12345")]);
        assert_eq!(unpack_bytes(&s, &bytes, &limits).unwrap(), Unpacked { files: 2, bytes: 10 });
    }

    #[test]
    fn rejects_too_many_entries_before_writing() {
        let s = scratch();
        let bytes = build(&[("a/", b""), ("a/1.py", b"1"), ("a/2.py", b"2"), ("a/3.py", b"3"), ("a/4.py", b"4")]);
        let limits = UnpackLimits { max_entries: 4, max_unpacked_bytes: 1024 };
        match unpack_bytes(&s, &bytes, &limits) {
            Err(IntakeError::TooManyEntries { count, limit }) => assert_eq!((count, limit), (5, 4)),
            other => panic!("expected TooManyEntries, got {other:?}"),
        }
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_archive_without_files() {
        let s = scratch();
        let bytes = build(&[]);
        assert!(matches!(unpack_bytes(&s, &bytes, &LIMITS), Err(IntakeError::EmptyArchive)));
        assert_nothing_written(&s);

        let s = scratch();
        let bytes = build(&[("a/", b""), ("a/b/", b""), ("__MACOSX/._a", b"junk")]);
        assert!(matches!(unpack_bytes(&s, &bytes, &LIMITS), Err(IntakeError::EmptyArchive)));
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_garbage_as_not_zip() {
        let s = scratch();
        for bytes in [&b"this is not a zip archive at all"[..], &b""[..]] {
            match unpack_bytes(&s, bytes, &LIMITS) {
                Err(IntakeError::NotZip { reason }) => assert!(!reason.is_empty()),
                other => panic!("expected NotZip, got {other:?}"),
            }
            assert_nothing_written(&s);
        }
    }

    #[test]
    fn rejects_truncated_archive_as_not_zip() {
        let s = scratch();
        let bytes = build(&[("a.py", b"print('hi')")]);
        let cut = &bytes[..bytes.len() - 10];
        assert!(matches!(unpack_bytes(&s, cut, &LIMITS), Err(IntakeError::NotZip { .. })));
        assert_nothing_written(&s);
    }

    #[test]
    fn rejects_bad_crc_found_while_extracting() {
        let s = scratch();
        let mut w = ZipWriter::new(Cursor::new(Vec::new()));
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        w.start_file("a.py", stored).unwrap();
        w.write_all(b"print('hello world')").unwrap();
        let mut bytes = w.finish().unwrap().into_inner();
        let at = bytes.windows(5).position(|w| w == b"hello").unwrap();
        bytes[at] = b'j';

        match unpack_bytes(&s, &bytes, &LIMITS) {
            Err(IntakeError::CorruptEntry { entry, reason }) => {
                assert_eq!((entry.as_str(), reason.as_str()), ("a.py", "invalid checksum"));
            }
            other => panic!("expected CorruptEntry, got {other:?}"),
        }
        assert_eq!(tree(&s.root), vec!["outer", "outer/dest", "outer/dest/a.py"]);
    }

    #[test]
    fn rejects_corrupt_deflate_stream() {
        let s = scratch();
        let mut bytes = build(&[("a.py", &[7u8; 5000])]);
        let u16_at = |at: usize| usize::from(u16::from_le_bytes([bytes[at], bytes[at + 1]]));
        let data = 30 + u16_at(26) + u16_at(28);
        for b in &mut bytes[data..data + 6] {
            *b ^= 0xff;
        }
        match unpack_bytes(&s, &bytes, &LIMITS) {
            Err(IntakeError::CorruptEntry { entry, reason }) => {
                assert_eq!((entry.as_str(), reason.as_str()), ("a.py", "corrupt deflate stream"));
            }
            other => panic!("expected CorruptEntry, got {other:?}"),
        }
    }

    #[test]
    fn missing_archive_is_an_io_error_naming_it() {
        let s = scratch();
        let err = unpack(&s.archive, &s.dest, &LIMITS).unwrap_err();
        assert!(!err.is_client_error());
        assert_eq!(
            err.to_string(),
            format!("i/o error on {}: No such file or directory (os error 2)", s.archive.display())
        );
    }

    #[test]
    fn error_text_quotes_hostile_names() {
        let err = IntakeError::UnsafeEntry {
            entry: "a\nb".to_string(),
            reason: "name contains a control character".to_string(),
        };
        assert_eq!(err.to_string(), "zip entry \"a\\nb\" is unsafe: name contains a control character");
    }
}
