//! Fuzzes the configuration parser: any text must give a configuration or an
//! error that names the file, never a panic. An operator's typo must be
//! caught at start-up.

#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::config::Config;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(config) => {
            // Derived settings must not panic either.
            let _ = config.connection_limits();
            let _ = config.socket_options();
            let _ = config.shutdown_grace();
        }
        Err(err) => assert!(
            err.0.starts_with("fuzz.toml"),
            "error without the file name: {err}"
        ),
    }
});
