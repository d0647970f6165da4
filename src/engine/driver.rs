//! Which driver runs the workers, by the name `--backend` gives it.
//!
//! A readiness driver runs over any [`BackendKind`] (epoll, poll, kqueue,
//! mio); the completion driver (`engine::completion`) brings its own
//! mechanism, io_uring, and is a model of its own. The one idea: **one name
//! space for every way of doing I/O**, each listed with its model and
//! whether this machine can run it, so that asking for one that cannot run
//! fails at start-up with the reason instead of falling back silently.

use std::fmt;

use backends::BackendKind;

/// A way to run a worker's I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// The readiness driver over one of the reactor backends.
    Readiness(BackendKind),
    /// The io_uring completion driver.
    Completion,
}

impl Driver {
    pub const COMPLETION_NAME: &'static str = "uring-completion";

    /// Every driver this build knows, best readiness backend first.
    pub fn all() -> Vec<Driver> {
        let mut all: Vec<Driver> = BackendKind::compiled()
            .into_iter()
            .map(Driver::Readiness)
            .collect();
        all.push(Driver::Completion);
        all
    }

    pub fn name(self) -> &'static str {
        match self {
            Driver::Readiness(kind) => kind.name(),
            Driver::Completion => Self::COMPLETION_NAME,
        }
    }

    /// The I/O model: `readiness` or `completion`.
    pub fn model(self) -> &'static str {
        match self {
            Driver::Readiness(_) => "readiness",
            Driver::Completion => "completion",
        }
    }

    /// Whether this machine can run it, and if not, why not.
    pub fn availability(self) -> Result<(), String> {
        match self {
            Driver::Readiness(kind) => kind.open().map(drop).map_err(|e| e.to_string()),
            #[cfg(target_os = "linux")]
            Driver::Completion => super::completion::probe(),
            #[cfg(not(target_os = "linux"))]
            Driver::Completion => Err("io_uring exists on Linux only".into()),
        }
    }

    /// Parses a `--backend` name. A known driver that cannot run here is
    /// refused with the reason and the names that can.
    pub fn parse(name: &str) -> Result<Driver, String> {
        if name == Self::COMPLETION_NAME {
            return match Driver::Completion.availability() {
                Ok(()) => Ok(Driver::Completion),
                Err(why) => Err(format!(
                    "backend `{name}` cannot run on this machine: {why}; available: {}",
                    Self::available_names()
                )),
            };
        }
        backends::parse_backend(name)
            .map(Driver::Readiness)
            .map_err(|e| format!("{e}, {}", Self::COMPLETION_NAME))
    }

    fn available_names() -> String {
        Self::all()
            .into_iter()
            .filter(|d| d.availability().is_ok())
            .map(Driver::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The line `portcullis backends` prints: name, model, availability.
    pub fn listing(self) -> String {
        match self.availability() {
            Ok(()) => format!("{} {} available", self.name(), self.model()),
            Err(why) => format!("{} {} unavailable: {why}", self.name(), self.model()),
        }
    }
}

impl Default for Driver {
    fn default() -> Driver {
        Driver::Readiness(BackendKind::best())
    }
}

impl fmt::Display for Driver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The ring and buffer sizes of a completion worker.
#[derive(Clone, Copy, Debug)]
pub struct CompletionOptions {
    /// Submission-queue entries (the completion queue has four times as many).
    pub entries: u32,
    /// Buffers in the provided-buffer ring (a power of two).
    pub buffers: u16,
    /// Bytes per buffer.
    pub buffer_size: usize,
}

impl Default for CompletionOptions {
    fn default() -> CompletionOptions {
        CompletionOptions {
            entries: 1024,
            // 4 MiB per worker. Large buffers matter for streams (a 16 KiB
            // buffer cost half as much again per message as a 64 KiB one
            // in the stream bench); small messages waste most of a buffer,
            // but only for the moment until it is given back.
            buffers: 64,
            buffer_size: 64 * 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_completion_driver() {
        for driver in Driver::all() {
            if driver.availability().is_ok() {
                assert_eq!(Driver::parse(driver.name()), Ok(driver));
            }
        }
        let err = Driver::parse("nosuch").unwrap_err();
        assert!(err.contains("uring-completion"), "{err}");
        assert_eq!(Driver::Completion.model(), "completion");
    }
}
