//! Intake: turns what a client submits (a zip upload or git urls) into a
//! workspace on disk and finds the Python projects in it. Pure helpers with no
//! actors: the evaluation supervisor calls them before it plans modules.
//!
//! - [`zip::unpack`] unpacks a hostile archive into an empty folder, refusing
//!   path tricks, symlinks, special files and zip bombs before they touch disk.
//! - [`git::validate_url`], [`git::repo_names`] and [`git::clone`] check a
//!   client's url against the allowed schemes and shallow-clone it with the
//!   system `git`, keeping any token off the command line and out of errors,
//!   within a time and a size on disk ([`git::CloneLimits`]).
//! - [`discover::discover`] walks an unpacked or cloned workspace, without
//!   following symlinks, and names the projects pytest should run in.
//! - [`students::labels`] reads who each project of an archive is from its
//!   `students.csv`.
//! - [`suite::Suite`] lays a teacher's reference suite over each project.
//!
//! Every failure is an [`IntakeError`] whose text can go back to the client
//! as is, except [`IntakeError::Io`] which names server paths (see
//! [`IntakeError::is_client_error`]).

pub mod discover;
pub mod git;
pub mod students;
pub mod suite;
pub mod zip;

use std::path::PathBuf;
use std::time::Duration;

pub use self::discover::{discover, Project};
pub use self::git::{clone, repo_names, validate_url, CloneLimits};
pub use self::zip::{unpack, UnpackLimits, Unpacked};

/// Why a submission could not be taken in. Client-supplied strings (entry
/// names, urls) are printed quoted and escaped so a hostile name cannot forge
/// log lines; urls have any password replaced by `***`.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// The upload is not a zip archive, or its central directory is unreadable.
    #[error("not a valid zip archive: {reason}")]
    NotZip { reason: String },

    /// An entry's data could not be read back: bad deflate stream, truncated
    /// data or a crc mismatch found while extracting.
    #[error("zip entry {entry:?} is corrupt: {reason}")]
    CorruptEntry { entry: String, reason: String },

    /// An entry is encrypted or uses a compression method other than stored or
    /// deflate.
    #[error("zip entry {entry:?} is not supported: {reason}")]
    UnsupportedEntry { entry: String, reason: String },

    /// The archive holds no regular file once folders and `__MACOSX/` are
    /// set aside.
    #[error("zip archive holds no files")]
    EmptyArchive,

    /// The archive lists more entries (files and folders) than allowed.
    #[error("zip archive holds {count} entries, more than the limit of {limit}")]
    TooManyEntries { count: usize, limit: usize },

    /// An entry would land outside the destination, is a symlink or special
    /// file, or collides with another entry.
    #[error("zip entry {entry:?} is unsafe: {reason}")]
    UnsafeEntry { entry: String, reason: String },

    /// The archive unpacks, or claims to unpack, to more bytes than allowed.
    #[error("zip archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },

    /// The git url is malformed or dangerous (option injection, transport
    /// helper syntax, no scheme).
    #[error("git url {url:?} is invalid: {reason}")]
    InvalidUrl { url: String, reason: String },

    /// The git url's scheme is well formed but not in the configured list.
    #[error("git url {url:?} uses scheme {scheme:?}, which is not allowed")]
    SchemeNotAllowed { url: String, scheme: String },

    /// `git clone` ran past its deadline and was killed.
    #[error("git clone of {url:?} timed out after {}s", timeout.as_secs_f64())]
    CloneTimeout { url: String, timeout: Duration },

    /// The clone grew past its bound on disk and was killed.
    #[error("git clone of {url:?} grew past the limit of {limit} bytes")]
    CloneTooLarge { url: String, limit: u64 },

    /// `git clone` exited unsuccessfully; `stderr` is its tail, at most 2 KiB,
    /// with the token scrubbed.
    #[error("git clone of {url:?} failed: {stderr}")]
    CloneFailed { url: String, stderr: String },

    /// The reference suite cannot grade anything.
    #[error("reference suite: {reason}")]
    Suite { reason: String },

    /// The archive's `students.csv` is malformed or names no project.
    #[error("students.csv: {reason}")]
    Students { reason: String },

    /// A local file operation failed; `path` is the file or program involved.
    /// This is the server's fault, not the client's.
    #[error("i/o error on {}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
}

impl IntakeError {
    /// Tells whether the client caused the error (HTTP 400 material) rather
    /// than the server (HTTP 500, and the text names server paths).
    pub fn is_client_error(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}
