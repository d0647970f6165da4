//! The ring: setting it up, queueing submissions, and the one wait.
//!
//! Every operation the driver starts during a loop turn is only queued in
//! the submission queue; the single `io_uring_enter` at the top of the next
//! turn both submits them and waits for completions, with the next timer
//! deadline as its timeout (`IORING_ENTER_EXT_ARG`), so a turn costs one
//! system call however many connections it served. The one idea: **queue
//! now, enter once**. The queue is flushed early only when it is full.
//!
//! Completions are never lost: the ring is refused unless the kernel keeps
//! completions that do not fit in the completion queue (`FEAT_NODROP`);
//! when it had to, it says so with the CQ-overflow flag, and the next enter
//! (made without blocking) hands them over.

use std::io;
use std::time::Duration;

use io_uring::{squeue, types, IoUring};

/// A worker's ring and what it counted.
pub struct Ring {
    pub uring: IoUring,
    /// Submissions flushed early because the queue was full.
    pub early_flushes: u64,
    /// Turns that found completions waiting in the kernel's overflow list.
    pub overflows: u64,
}

impl Ring {
    /// A ring with `entries` submission slots and four times as many
    /// completion slots (every connection may have a receive and a send in
    /// flight at once). Single issuer with deferred task work: completions
    /// are produced only when this thread enters, which is when it is ready
    /// for them.
    pub fn new(entries: u32) -> io::Result<Ring> {
        let mut builder = IoUring::builder();
        builder.setup_cqsize(entries.saturating_mul(4));
        builder.setup_single_issuer().setup_defer_taskrun();
        let uring = builder.build(entries).or_else(|_| {
            // Older kernels (before 6.1) lack deferred task work.
            IoUring::builder()
                .setup_cqsize(entries.saturating_mul(4))
                .build(entries)
        })?;
        if !uring.params().is_feature_nodrop() {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "the kernel's io_uring may drop completions (no FEAT_NODROP; needs Linux 5.5)",
            ));
        }
        Ok(Ring {
            uring,
            early_flushes: 0,
            overflows: 0,
        })
    }

    /// Queues `sqe`; flushes the queue first if it is full.
    ///
    /// # Safety
    /// Any memory `sqe` points at must stay valid, and unmoved, until its
    /// completion (or last completion, for a multishot operation) arrives.
    pub unsafe fn push(&mut self, sqe: &squeue::Entry) {
        loop {
            // SAFETY: the caller keeps the entry's memory valid (see above).
            if unsafe { self.uring.submission().push(sqe) }.is_ok() {
                return;
            }
            self.early_flushes += 1;
            if let Err(err) = self.uring.submit() {
                // EBUSY: completions must be reaped first; the caller's turn
                // does so, and this entry waits for room in the meantime.
                log::warn!("io_uring submit failed: {err}");
                if err.raw_os_error() != Some(libc::EBUSY)
                    && err.raw_os_error() != Some(libc::EINTR)
                {
                    return;
                }
                let _ = self.uring.submitter().submit_and_wait(0);
            }
        }
    }

    /// Submits what is queued and waits for at least `want` completions, or
    /// until `timeout`. One system call. (With deferred task work the kernel
    /// also runs at most about `want` pieces of pending work, so a larger
    /// `want` with a zero timeout collects everything that is ready.)
    pub fn enter(&mut self, timeout: Option<Duration>, want: usize) -> io::Result<()> {
        let result = match timeout {
            None => self.uring.submitter().submit_and_wait(want),
            Some(timeout) => {
                let ts = types::Timespec::from(timeout);
                let args = types::SubmitArgs::new().timespec(&ts);
                self.uring.submitter().submit_with_args(want, &args)
            }
        };
        match result {
            Ok(_) => Ok(()),
            // The timeout passed, a signal came, or completions must be
            // reaped before more can be submitted: all mean "go on".
            Err(err)
                if matches!(
                    err.raw_os_error(),
                    Some(libc::ETIME) | Some(libc::EINTR) | Some(libc::EBUSY)
                ) =>
            {
                Ok(())
            }
            Err(err) => Err(err),
        }
    }

    /// Whether completions wait in the kernel's overflow list (counted).
    pub fn check_overflow(&mut self) -> bool {
        let overflowed = self.uring.submission().cq_overflow();
        if overflowed {
            self.overflows += 1;
        }
        overflowed
    }
}

/// Whether this machine can run the completion driver; the reason if not.
pub fn probe() -> Result<(), String> {
    let ring = IoUring::new(8).map_err(|err| match err.raw_os_error() {
        Some(libc::ENOSYS) => "this kernel has no io_uring (ENOSYS)".to_string(),
        Some(libc::EPERM) => format!(
            "io_uring is not permitted here (EPERM: kernel.io_uring_disabled is {} or a seccomp filter forbids it)",
            std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown".into())
        ),
        _ => format!("io_uring_setup failed: {err}"),
    })?;
    if !ring.params().is_feature_nodrop() {
        return Err("the kernel's io_uring may drop completions (needs Linux 5.5)".into());
    }
    let mut probe = io_uring::Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("cannot probe io_uring operations: {e}"))?;
    use io_uring::opcode;
    for (code, name) in [
        (opcode::AcceptMulti::CODE, "accept"),
        (opcode::RecvMulti::CODE, "recv"),
        (opcode::Send::CODE, "send"),
        (opcode::AsyncCancel2::CODE, "async cancel"),
        (opcode::PollAdd::CODE, "poll"),
    ] {
        if !probe.is_supported(code) {
            return Err(format!("io_uring lacks the {name} operation"));
        }
    }
    // Provided-buffer rings (and with them multishot receive) need 5.19/6.0.
    super::buf_ring::BufRing::register(&ring, 2, 64)
        .map(drop)
        .map_err(|e| {
            format!("io_uring cannot register a provided-buffer ring (needs Linux 6.0): {e}")
        })
}
