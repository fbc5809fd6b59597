//! `intake::unpack` against hostile archives and random bytes.
//!
//! Each case unpacks into `root/outer/dest` of a fresh scratch folder whose
//! surroundings hold a file, a folder and a symlink leading out of `dest`'s
//! parent. The properties, whatever the archive:
//! - `unpack` returns, without panicking, `Ok` or an `IntakeError` that blames
//!   the archive (`is_client_error`), never one that would read as the
//!   server's own failure;
//! - nothing outside `dest` changes;
//! - inside `dest` there are only regular files (mode 0644) and folders (mode
//!   0755): no symlink, no special file; at most `max_entries` files, whose
//!   sizes add up to at most `max_unpacked_bytes`, on success and on error;
//! - on success, the files are exactly the archive's files, at their
//!   normalized paths, with their content, and `Unpacked` counts them;
//! - on error, `dest` can be removed whole. Callers unpack into a folder of
//!   their own (`.{id}.partial`, `.partial-*`) and rename it into place only
//!   on success; on error they remove it, and a node that died before it
//!   could removes any `*.partial` at start. So whatever an error leaves in
//!   `dest` is never taken for an accepted workspace, provided it stays
//!   inside `dest` and `dest` can be removed, which is what is checked here.
//!   `uploads` checks the same through `POST /evaluation`.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use evalmesh::evaluation::intake::{unpack, UnpackLimits};
use proptest::prelude::*;
use proptest::test_runner::TestCaseResult;

use crate::zips::{self, Entry, S_IFDIR, S_IFREG};

/// What one path is, symlinks not followed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir { mode: u32 },
    File { mode: u32, content: Vec<u8> },
    Link(PathBuf),
    Other,
}

/// Every path under `root`, except those under `skip`.
fn snapshot(root: &Path, skip: &Path) -> BTreeMap<PathBuf, Node> {
    let mut seen = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("reading a scratch folder") {
            let path = entry.expect("listing a scratch folder").path();
            let meta = std::fs::symlink_metadata(&path).expect("reading a scratch entry");
            let mode = meta.permissions().mode() & 0o7777;
            let node = if meta.is_dir() {
                if path != skip {
                    stack.push(path.clone());
                }
                Node::Dir { mode }
            } else if meta.is_file() {
                Node::File { mode, content: std::fs::read(&path).expect("reading a scratch file") }
            } else if meta.file_type().is_symlink() {
                Node::Link(std::fs::read_link(&path).expect("reading a scratch symlink"))
            } else {
                Node::Other
            };
            seen.insert(path.strip_prefix(root).expect("under the root").to_path_buf(), node);
        }
    }
    seen
}

/// A scratch folder: `tmp/upload.zip`, `tmp/root/outer/dest` (empty),
/// `tmp/root/outer/sibling.txt`, `tmp/root/victim/` and the symlink
/// `tmp/root/outer/link -> ../victim`.
struct Scratch {
    tmp: tempfile::TempDir,
    dest: PathBuf,
    archive: PathBuf,
}

fn scratch(archive: &[u8]) -> Scratch {
    let tmp = tempfile::tempdir().expect("a scratch folder");
    let outer = tmp.path().join("root/outer");
    let dest = outer.join("dest");
    std::fs::create_dir_all(&dest).expect("creating dest");
    std::fs::create_dir_all(tmp.path().join("root/victim")).expect("creating a victim folder");
    std::fs::write(outer.join("sibling.txt"), "keep").expect("writing a sibling");
    std::os::unix::fs::symlink("../victim", outer.join("link")).expect("linking out");
    let path = tmp.path().join("upload.zip");
    std::fs::write(&path, archive).expect("writing the archive");
    Scratch { archive: path, dest, tmp }
}

/// Unpacks `archive` and checks every property above; `expected` is the
/// archive's files by normalized path when the archive is honest enough for
/// them to be known.
fn check(archive: &[u8], limits: &UnpackLimits, expected: Option<BTreeMap<PathBuf, Vec<u8>>>) -> TestCaseResult {
    let s = scratch(archive);
    let before = snapshot(s.tmp.path(), &s.dest);
    let result = unpack(&s.archive, &s.dest, limits);
    prop_assert_eq!(&snapshot(s.tmp.path(), &s.dest), &before, "something outside dest changed ({:?})", result);

    let inside = snapshot(&s.dest, &s.dest);
    let mut files = BTreeMap::new();
    for (path, node) in &inside {
        match node {
            Node::Dir { mode } => prop_assert_eq!(*mode, 0o755, "folder {:?}", path),
            Node::File { mode, content } => {
                prop_assert_eq!(*mode, 0o644, "file {:?}", path);
                files.insert(path.clone(), content.clone());
            }
            other => prop_assert!(false, "unpack left {:?} at {:?} ({:?})", other, path, result),
        }
    }
    let bytes: u64 = files.values().map(|c| c.len() as u64).sum();
    prop_assert!(files.len() <= limits.max_entries, "{} files over {:?} ({:?})", files.len(), limits, result);
    prop_assert!(bytes <= limits.max_unpacked_bytes, "{bytes} bytes over {:?} ({:?})", limits, result);

    match result {
        Ok(unpacked) => {
            prop_assert_eq!((unpacked.files, unpacked.bytes), (files.len(), bytes));
            if let Some(expected) = expected {
                prop_assert_eq!(files, expected);
            }
        }
        Err(e) => {
            prop_assert!(e.is_client_error(), "a hostile archive reads as the server's failure: {e}");
            prop_assert!(std::fs::remove_dir_all(&s.dest).is_ok(), "dest cannot be removed after {e}");
        }
    }
    Ok(())
}

/// The files an honest archive holds, by normalized path: `""` and `"."`
/// components dropped, folders (a unix folder mode or a trailing `/`) and
/// `__MACOSX/` left out. `None` when some entry is not honest or its name
/// is not UTF-8, where only the other properties hold.
fn expected_files(entries: &[Entry]) -> Option<BTreeMap<PathBuf, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for e in entries {
        let name = std::str::from_utf8(&e.name).ok()?;
        let file_type = e.mode.map_or(0, |m| m & 0o170_000);
        let honest = e.crc_ok && e.declared_size.is_none() && e.flags & 1 == 0 && matches!(e.method, 0 | 8);
        if !honest || !matches!(file_type, 0 | S_IFREG | S_IFDIR) {
            return None;
        }
        let parts: Vec<&str> = name.split('/').filter(|p| !p.is_empty() && *p != ".").collect();
        if file_type == S_IFDIR || name.ends_with('/') || parts.first() == Some(&"__MACOSX") {
            continue;
        }
        files.insert(parts.iter().collect::<PathBuf>(), e.plain.clone());
    }
    Some(files)
}

fn limits() -> impl Strategy<Value = UnpackLimits> {
    let entries = prop_oneof![1usize..8, 8usize..64, Just(10_000)];
    let bytes = prop::sample::select(vec![0u64, 1, 64, 4096, 65_536, 1 << 20, 2 << 20, 100 << 20]);
    (entries, bytes).prop_map(|(max_entries, max_unpacked_bytes)| UnpackLimits { max_entries, max_unpacked_bytes })
}

/// Tiny files, some of them sharing a name, to meet `max_entries`.
fn many_entries() -> impl Strategy<Value = Vec<Entry>> {
    (1usize..1500, 1usize..4).prop_map(|(n, spread)| {
        (0..n).map(|i| Entry::stored(format!("d{}/f{}", i % spread, i / spread), vec![b'x'; i % 3])).collect()
    })
}

/// One file under many folders, around the 1024-byte name limit.
fn deep() -> impl Strategy<Value = Vec<Entry>> {
    (1usize..530, any::<bool>()).prop_map(|(depth, with_dirs)| {
        let mut entries = Vec::new();
        if with_dirs {
            entries.extend(
                (1..=depth.min(40))
                    .map(|d| Entry { mode: Some(S_IFDIR | 0o755), ..Entry::stored("d/".repeat(d), Vec::new()) }),
            );
        }
        entries.push(Entry::stored(format!("{}f", "d/".repeat(depth)), b"deep".to_vec()));
        entries
    })
}

/// An honest archive with some bytes overwritten and maybe cut short.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let honest = prop::collection::vec(zips::honest_entry(), 1..5).prop_map(|entries| zips::write(&entries));
    (
        honest,
        prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        any::<prop::sample::Index>(),
        any::<bool>(),
    )
        .prop_map(|(mut bytes, edits, cut, truncate)| {
            for (at, byte) in edits {
                let at = at.index(bytes.len());
                bytes[at] = byte;
            }
            if truncate {
                bytes.truncate(cut.index(bytes.len()));
            }
            bytes
        })
}

/// Bytes with no structure, or that start or end the way a zip does.
fn random_bytes() -> impl Strategy<Value = Vec<u8>> {
    let noise = prop::collection::vec(any::<u8>(), 0..2048);
    prop_oneof![
        noise.clone(),
        noise.clone().prop_map(|b| [b"PK\x03\x04".as_slice(), &b].concat()),
        (noise, prop::collection::vec(any::<u8>(), 18))
            .prop_map(|(b, eocd)| [b.as_slice(), b"PK\x05\x06", &eocd].concat()),
    ]
}

proptest! {
    #![proptest_config(crate::config(128, 10_000))]

    #[test]
    fn hostile_entries_stay_inside_dest(entries in prop::collection::vec(zips::entry(), 0..16), limits in limits()) {
        check(&zips::write(&entries), &limits, expected_files(&entries))?;
    }

    #[test]
    fn honest_archives_unpack_exactly_and_hostile_entries_spoil_them(
        entries in zips::mostly_honest(),
        limits in limits(),
    ) {
        check(&zips::write(&entries), &limits, expected_files(&entries))?;
    }

}

proptest! {
    #![proptest_config(crate::config(256, 10_000))]

    #[test]
    fn random_bytes_are_refused_cleanly(bytes in random_bytes(), limits in limits()) {
        check(&bytes, &limits, None)?;
    }

    #[test]
    fn damaged_archives_are_refused_cleanly(bytes in mutated(), limits in limits()) {
        check(&bytes, &limits, None)?;
    }
}

proptest! {
    #![proptest_config(crate::config(32, 20_000))]

    #[test]
    fn many_entries_respect_the_entry_limit(entries in many_entries(), limits in limits()) {
        check(&zips::write(&entries), &limits, expected_files(&entries))?;
    }

    #[test]
    fn deep_nesting_stays_inside_dest(entries in deep(), limits in limits()) {
        check(&zips::write(&entries), &limits, expected_files(&entries))?;
    }
}
