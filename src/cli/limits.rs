//! `portcullis limits show` and `portcullis limits set max_connections=N`:
//! a running server's limits, read and changed through its admin port.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use crate::admin::access::Token;
use crate::admin::client::{self, DEFAULT_ADDR};

#[derive(Debug, Args, Clone)]
pub struct LimitsArgs {
    #[command(subcommand)]
    pub action: LimitsAction,

    /// The server's admin port.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_ADDR, global = true)]
    pub addr: String,

    /// The admin token file (the server's `[admin] token_file`), needed by
    /// `set` when the server has one.
    #[arg(long, value_name = "FILE", global = true)]
    pub token_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand, Clone)]
pub enum LimitsAction {
    /// Print the limits in force and the connections open.
    Show,
    /// Change a limit: `max_connections=N`, for the whole server or, with
    /// --listener, for one listener (`unlimited` lifts a listener's own).
    /// Lowering one never closes connections already open; new ones are
    /// refused until below it.
    Set {
        /// `key=value` pairs.
        #[arg(value_name = "KEY=VALUE", required = true)]
        pairs: Vec<String>,
        /// The listener to change, by index (as `portcullis stats` numbers
        /// them) or address. Default: the global limit.
        #[arg(long, value_name = "INDEX|ADDRESS")]
        listener: Option<String>,
    },
}

pub fn run(args: &LimitsArgs) -> i32 {
    let result = match &args.action {
        LimitsAction::Show => client::request(&args.addr, "GET", "/limits", "", None),
        LimitsAction::Set { pairs, listener } => {
            let mut body = pairs.join("&");
            if let Some(listener) = listener {
                body.push_str(&format!("&listener={listener}"));
            }
            if let Err(err) = crate::admin::limits::parse(&body) {
                eprintln!("portcullis limits: {err}");
                return 2;
            }
            let token = match &args.token_file {
                Some(path) => match read_token(path) {
                    Ok(token) => Some(token),
                    Err(err) => {
                        eprintln!("portcullis limits: {err}");
                        return 2;
                    }
                },
                None => None,
            };
            client::request(&args.addr, "POST", "/limits", &body, token.as_deref())
        }
    };
    match result {
        Ok(answer) if answer.status == 200 => {
            print!("{}", answer.body);
            0
        }
        Ok(answer) => {
            eprintln!(
                "portcullis limits: the server answered {}: {}",
                answer.status,
                answer.body.trim()
            );
            1
        }
        Err(err) => {
            eprintln!("portcullis limits: {err}");
            1
        }
    }
}

/// Reads the token the way the server does (same checks), returning its
/// text to send.
fn read_token(path: &std::path::Path) -> Result<String, String> {
    Token::read(path)?;
    std::fs::read_to_string(path)
        .map(|t| t.trim().to_string())
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))
}
