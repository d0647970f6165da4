//! Which I/O driver runs the connections, by the name `--backend` takes.
//!
//! The engine's connections do no I/O (see [`crate::engine`]), so the same
//! connection core runs under different I/O models, and one flag picks the
//! model and its mechanism:
//!
//! | name | model | what waits |
//! |---|---|---|
//! | `epoll`, `uring`, `kqueue`, `mio`, `poll` | `readiness` | one event loop per worker over a [`backends::Selector`] |
//! | `uring-completion` | `completion` | one io_uring per worker: the kernel does the I/O and reports it done (`engine::completion`) |
//! | `threads` | `threads` | one OS thread per connection, in blocking reads and writes |
//!
//! The one idea: **a name is a driver plus, for the readiness model, a
//! backend**, and whether it can run on this machine is asked of the
//! driver, so `portcullis backends`, `--backend` and the default all give
//! the same answer.

use std::fmt;

use backends::BackendKind;

/// An I/O driver for the connection core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// The event loop of `engine::readiness` over this backend.
    Readiness(BackendKind),
    /// The io_uring completion driver (`engine::completion`).
    Completion,
    /// A blocking thread per connection (`engine::threads`): the baseline
    /// that shows what an event loop saves.
    Threads,
}

impl Driver {
    pub const COMPLETION_NAME: &'static str = "uring-completion";

    /// Every driver this build contains, best first: the readiness backends
    /// in their own order, the completion driver, then the
    /// thread-per-connection baseline.
    pub fn compiled() -> Vec<Driver> {
        let mut all: Vec<Driver> = BackendKind::compiled()
            .into_iter()
            .map(Driver::Readiness)
            .collect();
        all.push(Driver::Completion);
        all.push(Driver::Threads);
        all
    }

    /// The default: the best readiness backend that can run here.
    pub fn best() -> Driver {
        Driver::Readiness(BackendKind::best())
    }

    /// The name `--backend` takes.
    pub fn name(self) -> &'static str {
        match self {
            Driver::Readiness(kind) => kind.name(),
            Driver::Completion => Self::COMPLETION_NAME,
            Driver::Threads => "threads",
        }
    }

    /// `readiness`, `completion` or `threads`, as `portcullis backends`
    /// prints it.
    pub fn model(self) -> &'static str {
        match self {
            Driver::Readiness(_) => "readiness",
            Driver::Completion => "completion",
            Driver::Threads => "threads",
        }
    }

    /// Whether this driver can run on this machine, and if not, why.
    pub fn availability(self) -> Result<(), String> {
        match self {
            Driver::Readiness(kind) => kind.availability(),
            #[cfg(target_os = "linux")]
            Driver::Completion => super::completion::probe(),
            #[cfg(not(target_os = "linux"))]
            Driver::Completion => Err("io_uring exists on Linux only".into()),
            Driver::Threads if cfg!(target_os = "linux") => Ok(()),
            Driver::Threads => {
                Err("the threads driver waits with ppoll(2), which it uses on Linux only".into())
            }
        }
    }

    /// The drivers that can run here, for error messages.
    pub fn available_names() -> String {
        Driver::compiled()
            .into_iter()
            .filter(|d| d.availability().is_ok())
            .map(Driver::name)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Parses a `--backend` name, refusing one that is unknown, not built in
    /// or unable to run here, with the reason and the names that would work.
    pub fn parse(name: &str) -> Result<Driver, String> {
        if name == Driver::Threads.name() {
            return Ok(Driver::Threads);
        }
        if name == Self::COMPLETION_NAME {
            return match Driver::Completion.availability() {
                Ok(()) => Ok(Driver::Completion),
                Err(why) => Err(format!(
                    "backend `{name}` cannot run on this machine: {why}; available: {}",
                    Driver::available_names()
                )),
            };
        }
        match BackendKind::from_name(name) {
            Some(_) => backends::parse_backend(name)
                .map(Driver::Readiness)
                .map_err(|err| match err.rsplit_once("; available: ") {
                    Some((why, _)) => format!("{why}; available: {}", Driver::available_names()),
                    None => err,
                }),
            None => Err(format!(
                "unknown backend `{name}`; available: {}",
                Driver::available_names()
            )),
        }
    }

    /// One line of `portcullis backends`: name, model, and whether it runs
    /// here (with the reason when not). Columns are padded for people and
    /// split on whitespace by scripts (`awk '$3 == "yes" { print $1 }'`).
    pub fn describe(self) -> String {
        let runs = match self.availability() {
            Ok(()) => "yes".to_string(),
            Err(why) => format!("no ({why})"),
        };
        format!("{:<18} {:<10} {runs}", self.name(), self.model())
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
    fn every_name_parses_back_to_its_driver() {
        for driver in Driver::compiled() {
            if driver.availability().is_ok() {
                assert_eq!(Driver::parse(driver.name()), Ok(driver));
            }
        }
        assert_eq!(Driver::parse("threads"), Ok(Driver::Threads));
        assert_eq!(Driver::Completion.model(), "completion");
    }

    #[test]
    fn an_unknown_name_lists_every_driver_that_runs() {
        let err = Driver::parse("nosuch").unwrap_err();
        assert!(err.contains("unknown backend `nosuch`"), "{err}");
        assert!(err.contains("threads") && err.contains(BackendKind::best().name()));
    }

    #[test]
    fn a_line_of_the_listing_says_name_model_and_whether_it_runs() {
        let line = Driver::Threads.describe();
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields, ["threads", "threads", "yes"]);
        let best = Driver::best().describe();
        assert!(best.ends_with(" yes"), "{best}");
        assert!(best.contains(" readiness "), "{best}");
    }

    #[test]
    fn the_default_is_a_readiness_backend_that_runs() {
        assert!(matches!(Driver::best(), Driver::Readiness(_)));
        assert!(Driver::best().availability().is_ok());
    }
}
