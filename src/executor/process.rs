//! Runs one child process to completion or time-out with its output capped.
//! Pure helper of the executor, no actix inside.
//!
//! The child leads a new process group, so that a time-out — and the clean-up
//! after a normal exit — reaches everything it spawned, not just the child.
//!
//! A run may also have a side channel, a pipe whose write end the child
//! inherits: it is read like the output, capped and drained, and read no
//! longer than a moment after the child has gone, so that a process that
//! escaped the group and holds the pipe open cannot hold up the reader.

use std::os::fd::OwnedFd;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::watch;

/// How long the pipes are still read once the child has exited.
const GRACE: Duration = Duration::from_secs(2);

/// How a capped run ended.
#[derive(Debug)]
pub struct Finished {
    /// None when the run was killed at its time-out.
    pub status: Option<ExitStatus>,
    /// stdout then stderr, each kept up to half the cap.
    pub output: String,
    pub elapsed: Duration,
    /// What the side channel carried, up to its cap.
    pub side: Vec<u8>,
}

/// A pipe handed to the child besides its output.
pub struct Side {
    pub read: OwnedFd,
    /// Closed here once the child has it, so that the read end sees the
    /// end of the data when the child's last process exits.
    pub write: OwnedFd,
    pub cap: usize,
}

/// A pipe for [`Side`], both ends closed on exec unless passed on.
pub fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two-element array it is given.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened and are owned by nothing else.
    Ok(unsafe { (std::os::fd::FromRawFd::from_raw_fd(fds[0]), std::os::fd::FromRawFd::from_raw_fd(fds[1])) })
}

impl Finished {
    pub fn timed_out(&self) -> bool {
        self.status.is_none()
    }

    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    pub fn code(&self) -> Option<i32> {
        self.status.and_then(|s| s.code())
    }
}

struct KillGroupOnDrop(Option<u32>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        kill_group(self.0);
    }
}

/// Runs `cmd` in a new process group, kills the group at `timeout`, and keeps
/// at most `cap` bytes of its output.
pub async fn run(mut cmd: Command, timeout: Duration, cap: usize, side: Option<Side>) -> std::io::Result<Finished> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).process_group(0).kill_on_drop(true);
    let started = Instant::now();
    let mut child = cmd.spawn()?;
    let (side_read, side_cap) = match side {
        Some(Side { read, write, cap }) => {
            drop(write);
            (Some(tokio::net::unix::pipe::Receiver::from_owned_fd(read)?), cap)
        }
        None => (None, 0),
    };
    let pgid = child.id();
    // Dropped before the end (its job was stopped), the future kills the
    // whole group, not only the child that `kill_on_drop` kills.
    let mut group = KillGroupOnDrop(pgid);
    let stdout = child.stdout.take().expect("stdout is piped above");
    let stderr = child.stderr.take().expect("stderr is piped above");
    let (exited, gone) = watch::channel(false);
    let readers = async {
        tokio::join!(read_capped(stdout, cap / 2, gone.clone()), read_capped(stderr, cap / 2, gone.clone()), async {
            match side_read {
                Some(pipe) => read_bytes(pipe, side_cap, gone.clone()).await.0,
                None => Vec::new(),
            }
        })
    };
    let (status, (out, err, side)) = tokio::join!(
        async {
            let status = match tokio::time::timeout(timeout, child.wait()).await {
                Ok(status) => status.map(Some),
                Err(_) => {
                    kill_group(pgid);
                    child.wait().await.map(|_| None)
                }
            };
            // Whatever the child left behind in its group would hold the pipes open.
            kill_group(pgid);
            exited.send_replace(true);
            status
        },
        readers
    );
    // Killed above already; the group's number may be another's by now.
    group.0 = None;
    let status = status?;
    let mut output = out;
    if !err.is_empty() {
        if !output.is_empty() && !output.ends_with('\n') {
            output.push('\n');
        }
        output.push_str(&err);
    }
    Ok(Finished { status, output, elapsed: started.elapsed(), side })
}

/// Reads the output and the side channel of a process the node did not
/// spawn itself (a fork server's child) while `exit` runs, and for no more
/// than `GRACE` (2 s) once it has returned: the output capped at `cap`, the
/// side channel at `side_cap`.
pub async fn read_while<T>(
    output: OwnedFd,
    side: OwnedFd,
    cap: usize,
    side_cap: usize,
    exit: impl std::future::Future<Output = T>,
) -> std::io::Result<(T, String, Vec<u8>)> {
    let output = tokio::net::unix::pipe::Receiver::from_owned_fd(output)?;
    let side = tokio::net::unix::pipe::Receiver::from_owned_fd(side)?;
    let (exited, gone) = watch::channel(false);
    let (value, text, (side, _)) = tokio::join!(
        async {
            let value = exit.await;
            exited.send_replace(true);
            value
        },
        read_capped(output, cap, gone.clone()),
        read_bytes(side, side_cap, gone.clone()),
    );
    Ok((value, text, side))
}

/// Reads `reader` to its end, keeping the first `cap` bytes: the rest is
/// read and dropped so that the child never blocks on a full pipe. Reading
/// stops [`GRACE`] after `gone` turns true. Answers what was kept and how
/// many bytes were dropped.
async fn read_bytes<R: AsyncRead + Unpin>(
    mut reader: R,
    cap: usize,
    mut gone: watch::Receiver<bool>,
) -> (Vec<u8>, usize) {
    let mut kept = Vec::new();
    let mut dropped = 0usize;
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = async move {
        let _ = gone.wait_for(|g| *g).await;
        tokio::time::sleep(GRACE).await;
    };
    tokio::pin!(deadline);
    loop {
        let read = tokio::select! {
            read = reader.read(&mut buf) => read,
            () = &mut deadline => break,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = cap.saturating_sub(kept.len()).min(n);
                kept.extend_from_slice(&buf[..room]);
                dropped += n - room;
            }
        }
    }
    (kept, dropped)
}

/// Sends SIGKILL to the process group `pgid`, if there is one.
pub(crate) fn kill_group(pgid: Option<u32>) {
    let Some(pgid) = pgid.and_then(|p| libc::pid_t::try_from(p).ok()) else {
        return;
    };
    // SAFETY: killpg has no memory-safety preconditions; a group that is
    // already gone only makes it return ESRCH.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Reads `reader` as text, keeping the first `cap` bytes (see [`read_bytes`]).
async fn read_capped<R: AsyncRead + Unpin>(reader: R, cap: usize, gone: watch::Receiver<bool>) -> String {
    let (kept, dropped) = read_bytes(reader, cap, gone).await;
    let mut text = String::from_utf8_lossy(&kept).into_owned();
    if dropped > 0 {
        text.push_str(&format!("\n[evalmesh: {dropped} more bytes of output dropped]\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[tokio::test]
    async fn keeps_output_and_exit_status() {
        let f = run(sh("echo out; echo err >&2; exit 3"), Duration::from_secs(10), 1024, None).await.unwrap();
        assert_eq!(f.code(), Some(3));
        assert_eq!(f.output, "out\nerr\n");
        assert!(!f.timed_out());
    }

    #[tokio::test]
    async fn caps_output_but_reads_it_all() {
        let f = run(sh("head -c 1000000 /dev/zero | tr '\\0' x"), Duration::from_secs(10), 100, None).await.unwrap();
        assert!(f.success());
        assert!(f.output.starts_with(&"x".repeat(50)));
        assert!(f.output.contains("999950 more bytes of output dropped"), "{}", f.output);
    }

    /// True while `pid` is a live process (a zombie counts as gone).
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).map(|stat| !stat.contains(") Z ")).unwrap_or(false)
    }

    #[tokio::test]
    async fn kills_the_whole_group_at_timeout() {
        let f = run(sh("sleep 60 & echo $!; sleep 60"), Duration::from_millis(300), 1024, None).await.unwrap();
        assert!(f.timed_out());
        let grandchild = f.output.trim();
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert!(!alive(grandchild), "process {grandchild} of the killed group survived");
    }

    /// A run whose job was stopped is dropped mid-way: its whole group goes.
    #[tokio::test]
    async fn dropping_a_run_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        let cmd = sh(&format!("sleep 60 & echo $! > {}.tmp && mv {0}.tmp {0}; sleep 60", pid_file.display()));
        let written = async {
            loop {
                if let Ok(pid) = std::fs::read_to_string(&pid_file) {
                    return pid.trim().to_owned();
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let grandchild = tokio::select! {
            _ = run(cmd, Duration::from_secs(60), 1024, None) => panic!("the run ended on its own"),
            pid = written => pid,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(&grandchild) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!alive(&grandchild), "process {grandchild} of the dropped run's group survived");
    }

    /// A side channel as the sandbox passes one: the child gets the write end
    /// as a descriptor of its own; a process that escaped the group and keeps
    /// it open holds the reader for the grace period only.
    #[tokio::test]
    async fn reads_the_side_channel_capped_and_not_past_the_grace() {
        let (read, write) = pipe().unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&write);
        let mut cmd = sh("printf 'abcdef' >&3; setsid sleep 30 3>&3 >/dev/null 2>&1 & exit 0");
        // SAFETY: dup2 only.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(fd, 3) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let started = Instant::now();
        let f = run(cmd, Duration::from_secs(20), 64, Some(Side { read, write, cap: 4 })).await.unwrap();
        assert!(f.success());
        assert_eq!(f.side, b"abcd");
        assert!(started.elapsed() < Duration::from_secs(10), "held for {:?}", started.elapsed());
    }

    #[tokio::test]
    async fn missing_program_is_an_error() {
        let err = run(Command::new("/nonexistent/prog"), Duration::from_secs(1), 64, None).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
