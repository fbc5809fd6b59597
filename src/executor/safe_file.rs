//! Reading a file that untrusted code may have placed: the last component is
//! never followed if it is a link, only a regular file is read, the open
//! never blocks (a FIFO would otherwise hang the reader), and at most a cap
//! is read. Pure helper of the executor, no actix inside.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum SafeReadError {
    #[error("{name} is a symbolic link")]
    Link { name: String },
    #[error("{name} is not a regular file")]
    NotRegular { name: String },
    #[error("{name} is larger than {cap} bytes")]
    TooLarge { name: String, cap: u64 },
    #[error("reading {name}: {source}")]
    Io { name: String, source: std::io::Error },
}

/// Reads `path`, answering `None` when nothing is there. `name` is how
/// errors call the file.
pub fn read_capped(path: &Path, name: &str, cap: u64) -> Result<Option<Vec<u8>>, SafeReadError> {
    let io = |source| SafeReadError::Io { name: name.to_owned(), source };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path);
    let file: File = match file {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(SafeReadError::Link { name: name.to_owned() }),
        Err(e) => return Err(io(e)),
    };
    let meta = file.metadata().map_err(io)?;
    let kind = meta.file_type();
    if !kind.is_file() || kind.is_fifo() || kind.is_socket() {
        return Err(SafeReadError::NotRegular { name: name.to_owned() });
    }
    if meta.len() > cap {
        return Err(SafeReadError::TooLarge { name: name.to_owned(), cap });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    // The file may grow after the fstat: the cap holds for what is read.
    file.take(cap + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > cap {
        return Err(SafeReadError::TooLarge { name: name.to_owned(), cap });
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_regular_file_and_answers_none_when_absent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.txt");
        assert!(read_capped(&path, "r.txt", 10).unwrap().is_none());
        std::fs::write(&path, b"pytest\n").unwrap();
        assert_eq!(read_capped(&path, "r.txt", 10).unwrap().unwrap(), b"pytest\n");
    }

    #[test]
    fn refuses_links_fifos_folders_and_large_files() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("secret");
        std::fs::write(&target, b"secret").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(matches!(read_capped(&link, "link", 100), Err(SafeReadError::Link { .. })));

        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads the NUL-terminated path it is given.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_capped(&fifo, "fifo", 100), Err(SafeReadError::NotRegular { .. })));
        assert!(matches!(read_capped(dir.path(), "dir", 100), Err(SafeReadError::NotRegular { .. })));

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 101]).unwrap();
        let err = read_capped(&big, "big", 100).unwrap_err();
        assert_eq!(err.to_string(), "big is larger than 100 bytes");
    }
}
