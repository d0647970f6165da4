//! Thin helpers shared by the libc backends.
//!
//! The one idea: a C call signals failure with -1 and `errno`; `syscall!`
//! turns that into an `io::Result`, so every backend's error handling reads
//! as ordinary Rust and no backend repeats the `errno` dance.

/// Calls a libc function and turns a -1 return into `Err(last_os_error)`.
///
/// The caller still writes `unsafe` around the macro, with a `// SAFETY:`
/// comment about the arguments, because only the caller knows why they are
/// valid.
#[allow(unused_macros)]
macro_rules! syscall {
    ($fn: ident ( $($arg: expr),* $(,)? ) ) => {{
        let res = libc::$fn($($arg, )*);
        if res == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(res)
        }
    }};
}

/// Closes a descriptor this crate owns, ignoring errors: there is nothing
/// useful to do about a failed close of an eventfd or a selector fd.
#[allow(dead_code)]
pub(crate) fn close_quietly(fd: std::os::fd::RawFd) {
    // SAFETY: callers pass a descriptor they own and never use it again.
    unsafe {
        libc::close(fd);
    }
}
