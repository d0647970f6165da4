//! A small tokio echo server: what a Rust developer writes first, and so
//! the peer Portcullis is held against in `scripts/compare.sh`.
//!
//! ```text
//! tokio-echo [ADDR]     (default 127.0.0.1:0; prints "listening on ADDR")
//! ```
//!
//! One task per connection reading into a 64 KiB buffer and writing every
//! byte back, on tokio's single-threaded runtime, so it runs on one core
//! like the other servers it is compared with (one worker each, pinned to
//! the same CPU). TCP_NODELAY is set, as the other servers set it.
//!
//! The one idea: the idiomatic async loop — `read().await`, then
//! `write_all().await` — with nothing tuned, because that is the
//! alternative a user would actually pick.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn main() {
    let addr: SocketAddr = match std::env::args()
        .nth(1)
        .as_deref()
        .unwrap_or("127.0.0.1:0")
        .parse()
    {
        Ok(addr) => addr,
        Err(e) => {
            eprintln!("tokio-echo: expected ADDR:PORT, e.g. 127.0.0.1:0 ({e})");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tokio-echo: cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(addr)) {
        eprintln!("tokio-echo: {e}");
        std::process::exit(1);
    }
}

async fn serve(addr: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    println!("tokio-echo: listening on {}", listener.local_addr()?);
    let accepting = async {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    tokio::spawn(echo(stream));
                }
                Err(e) => eprintln!("tokio-echo: accept: {e}"),
            }
        }
    };
    tokio::select! {
        () = accepting => Ok(()),
        stopped = tokio::signal::ctrl_c() => stopped,
    }
}

async fn echo(mut stream: TcpStream) {
    // Best effort: an echo without it still works, only slower.
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if stream.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
