//! In-memory tests of the gate and the engine, client and server wired back
//! to back (see `test_support`), grouped by what they prove.

mod engine;
mod hostile;
mod memory;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod memory_sites;
mod policies;
mod profiles;
mod reload;
mod specs;
mod tickets;
