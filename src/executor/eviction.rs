//! Which environments leave the cache once it is past its size: the least
//! recently used first, until the rest fit, but never one used lately (a
//! job or a warm fork server may still be using it). Pure helper of the
//! environment cache, no actix inside.

use std::path::Path;
use std::time::{Duration, SystemTime};

/// An environment the cache holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub key: String,
    pub bytes: u64,
    pub used: SystemTime,
}

/// The keys to evict, least recently used first, until the others fit in
/// `max_bytes`; one used within `min_idle` of `now` stays, whatever the size.
pub fn to_evict(mut held: Vec<Held>, max_bytes: u64, now: SystemTime, min_idle: Duration) -> Vec<String> {
    let mut total: u64 = held.iter().map(|h| h.bytes).sum();
    held.sort_by(|a, b| (a.used, &a.key).cmp(&(b.used, &b.key)));
    let mut out = Vec::new();
    for h in held {
        if total <= max_bytes {
            break;
        }
        let idle = now.duration_since(h.used).unwrap_or(Duration::ZERO);
        if idle < min_idle {
            continue;
        }
        total -= h.bytes;
        out.push(h.key);
    }
    out
}

/// The bytes of the regular files under `dir`, links not followed.
pub fn size_of(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else { continue };
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() {
                total += meta.len();
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(key: &str, mb: u64, hours_ago: u64, now: SystemTime) -> Held {
        Held { key: key.into(), bytes: mb << 20, used: now - Duration::from_secs(hours_ago * 3600) }
    }

    #[test]
    fn the_least_recently_used_go_first_until_the_rest_fit() {
        let now = SystemTime::now();
        let all = vec![held("a", 300, 5, now), held("b", 300, 9, now), held("c", 300, 7, now), held("d", 300, 2, now)];
        let hour = Duration::from_secs(3600);
        assert_eq!(to_evict(all.clone(), 1200 << 20, now, hour), Vec::<String>::new(), "it fits");
        assert_eq!(to_evict(all.clone(), 900 << 20, now, hour), ["b"]);
        assert_eq!(to_evict(all.clone(), 500 << 20, now, hour), ["b", "c", "a"]);
        // d was used 2 hours ago: with 3 hours of grace it stays, and so
        // does the cache past its size.
        assert_eq!(to_evict(all, 0, now, hour * 3), ["b", "c", "a"]);
    }

    #[test]
    fn sizes_count_files_and_not_what_links_point_to() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("lib/site")).unwrap();
        std::fs::write(dir.path().join("lib/site/a.py"), vec![0u8; 1000]).unwrap();
        std::fs::write(dir.path().join("b"), vec![0u8; 24]).unwrap();
        std::os::unix::fs::symlink("/usr", dir.path().join("lib/usr")).unwrap();
        assert_eq!(size_of(dir.path()), 1024);
    }
}
