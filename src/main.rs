//! The `portcullis` binary: parse the command line and run a command.

use clap::Parser;
use portcullis::cli::{Cli, Command};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let command = cli.command.unwrap_or_else(|| {
        // No subcommand: `serve` with every flag at its default.
        let Cli { command } = Cli::parse_from(["portcullis", "serve"]);
        command.expect("`serve` parses")
    });
    let code = match command {
        Command::Serve(args) => portcullis::cli::serve::run(&args),
        Command::Bench(args) => portcullis::bench::run(&args),
        Command::Backends => {
            for driver in portcullis::engine::Driver::all() {
                println!("{}", driver.listing());
            }
            0
        }
    };
    std::process::exit(code);
}
