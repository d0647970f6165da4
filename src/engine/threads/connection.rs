//! One connection's thread: blocking reads and writes, the connection core
//! in between.
//!
//! The loop is the readiness driver's `settle` written as straight-line
//! code, because a thread has nothing else to do:
//!
//! ```text
//!   deliver the inbox (broadcasts), start the shutdown if asked
//!   write what the connection has queued      blocking write()
//!   ask next():  Wait → sleep until the socket is ready, the deadline,
//!                       or a wake                 ppoll()
//!                       then one read, fed in     blocking read()
//!                ShutdownWrite → FIN, linger;  Close → one last try, end
//! ```
//!
//! The one idea: **the same connection core, a different owner of the
//! clock and the socket**. Bytes, end of input, written counts and
//! timeouts go in through the same `handle_*` calls as under the readiness
//! driver, and `next()` decides, so close reasons, limits and counters are
//! the same; what changes is that the waiting happens in this thread's own
//! system calls, with the deadline as their timeout.
//!
//! A blocking `write` can stall on a peer that does not read. Its send
//! timeout is a slice ([`WRITE_SLICE`]), not the whole deadline, so that a
//! stuck thread still looks at its inbox, the shutdown and the deadline a
//! few times a second; while it writes, it does not read, which is this
//! model's back-pressure.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::room::{Member, Room};
use super::wake::{self, WaitMask, Woken};
use super::Setup;
use crate::engine::connection::{Connection, Next, Stage};
use crate::engine::readiness::socket_io::failure_reason;
use crate::engine::stats::CloseReason;
use crate::engine::worker::{Admitted, Env};

/// Longest a single blocking write may wait for the peer to make room.
pub const WRITE_SLICE: Duration = Duration::from_millis(250);
/// Writes per turn before the thread looks at its inbox and deadline again
/// (a streaming service refills as fast as the socket drains).
const WRITES_PER_TURN: usize = 16;
/// The thread's read buffer, allocated on the first read: an idle
/// connection holds none.
const READ_BUFFER_SIZE: usize = 16 * 1024;

/// What a connection thread owns.
pub struct ConnectionThread {
    pub setup: Arc<Setup>,
    /// A number for the thread's environment (its session ids).
    pub id: usize,
    /// What `Env::admit` counted for this connection, until the connection
    /// exists to say it.
    pub admitted: Admitted,
    pub stream: TcpStream,
    pub listener: usize,
    pub peer: SocketAddr,
    pub room: Arc<Room>,
}

struct State {
    env: Env,
    stream: TcpStream,
    conn: Connection,
    room: Arc<Room>,
    key: usize,
    member: Arc<Member>,
    read_buf: Vec<u8>,
}

impl ConnectionThread {
    /// Runs the connection to its end, then counts and releases it.
    pub fn run(self) {
        let ConnectionThread {
            setup,
            id,
            admitted,
            stream,
            listener,
            peer,
            room,
        } = self;
        let mut env = setup.env(id);
        let mask = match prepare(&stream) {
            Ok(mask) => mask,
            Err(err) => {
                log::warn!("dropped {peer}: cannot prepare its thread: {err}");
                env.shared.stats.count_closed(CloseReason::SocketError);
                env.release(admitted, Instant::now());
                return;
            }
        };
        let (key, member) = room.join();
        let id = env.next_session_id();
        let conn = Connection::new(id, listener, peer, &mut env.context(Instant::now()));
        let mut state = State {
            env,
            stream,
            conn,
            room,
            key,
            member,
            read_buf: Vec::new(),
        };
        state.after_call();
        let reason = state.serve(&mask);
        let State {
            mut env,
            conn,
            room,
            key,
            stream,
            ..
        } = state;
        room.leave(key);
        drop(stream);
        let admitted = conn.admitted();
        conn.finish(reason, &mut env.context(Instant::now()));
        env.release(admitted, Instant::now());
    }
}

/// A blocking socket with a bounded write, and the wake signal blocked.
fn prepare(stream: &TcpStream) -> io::Result<WaitMask> {
    stream.set_nonblocking(false)?;
    stream.set_write_timeout(Some(WRITE_SLICE))?;
    WaitMask::block_in_this_thread()
}

impl State {
    fn serve(&mut self, mask: &WaitMask) -> CloseReason {
        loop {
            let now = Instant::now();
            if self.conn.stage() == Stage::Open {
                self.member.set_open();
            }
            // The inbox first: what was posted before a stop is still this
            // connection's (and may show it to be a slow consumer).
            for message in self.member.take() {
                self.conn
                    .handle_broadcast(&message, &mut self.env.context(now));
            }
            if self.env.stop_requested() && self.env.shutdown_by.is_none() {
                self.env.shutdown_by = Some(now + self.env.shutdown_grace);
                self.conn.begin_shutdown(&mut self.env.context(now));
                self.after_call();
            }
            self.write_queued();
            match self.conn.next(&self.env.limits) {
                Next::Close(reason) => {
                    // One try for the last bytes (a TLS alert); no waiting.
                    let last = self.conn.transmit();
                    if !last.is_empty() {
                        let _ = send_dontwait(&self.stream, last);
                    }
                    return reason;
                }
                Next::ShutdownWrite => {
                    let quiet =
                        crate::net::queues::queues(&self.stream).is_ok_and(|q| q.is_quiet());
                    if quiet || self.stream.shutdown(Shutdown::Write).is_err() {
                        return self.conn.closing_reason();
                    }
                    self.conn.handle_write_shut(Instant::now());
                }
                Next::Wait(interest) => {
                    let mut events = 0;
                    if interest.is_readable() {
                        events |= libc::POLLIN | libc::POLLRDHUP;
                    }
                    if interest.is_writable() {
                        events |= libc::POLLOUT;
                    }
                    self.wait_then(events, mask);
                }
                Next::Parked => self.wait_then(0, mask),
            }
        }
    }

    /// Sleeps until the socket has `events`, the deadline, or a wake; then
    /// does what woke it.
    fn wait_then(&mut self, events: libc::c_short, mask: &WaitMask) {
        let deadline = self.conn.deadline(&self.env.context(Instant::now()));
        let timeout = deadline.map(|at| at.saturating_duration_since(Instant::now()));
        match wake::wait(self.stream.as_raw_fd(), events, timeout, mask) {
            Ok(Woken::Ready(revents)) => {
                let failed = revents & (libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
                let readable = revents & (libc::POLLIN | libc::POLLRDHUP) != 0;
                if (readable || failed) && events & libc::POLLIN != 0 {
                    self.read_once();
                }
                // Writable: the loop writes next.
            }
            Ok(Woken::TimedOut) => {
                let mut cx = self.env.context(Instant::now());
                self.conn.handle_timeout(&mut cx);
                self.after_call();
            }
            Ok(Woken::Signalled) => {} // the loop looks at the inbox and the stop flag
            Err(err) => {
                log::warn!("waiting on {} failed: {err}", self.conn.peer());
                let mut cx = self.env.context(Instant::now());
                self.conn
                    .handle_socket_error(CloseReason::SocketError, &mut cx);
            }
        }
    }

    /// One blocking read (the socket is readable, so it returns at once),
    /// fed to the connection.
    fn read_once(&mut self) {
        if !self.conn.wants_read(&self.env.limits) {
            return;
        }
        if self.read_buf.is_empty() {
            self.read_buf = vec![0; READ_BUFFER_SIZE];
        }
        let result = loop {
            match (&self.stream).read(&mut self.read_buf) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        let mut cx = self.env.context(Instant::now());
        match result {
            Ok(0) => self.conn.handle_eof(&mut cx),
            Ok(n) => self.conn.handle_input(&self.read_buf[..n], &mut cx),
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
            Err(err) => {
                let reason = failure_reason(&err, self.conn.exchange_complete());
                log::debug!("read from {} failed: {err}", self.conn.peer());
                self.conn.handle_socket_error(reason, &mut cx);
                return;
            }
        }
        self.after_call();
    }

    /// After a connection call: write what it queued, carry out its
    /// broadcasts.
    fn after_call(&mut self) {
        // Admitted members hear broadcasts from the moment they are open,
        // before the greeting leaves: a peer that has read the greeting
        // must be in the room.
        if self.conn.stage() == Stage::Open {
            self.member.set_open();
        }
        self.write_queued();
        self.run_broadcasts();
    }

    /// Blocking writes of what is queued, each bounded by [`WRITE_SLICE`].
    fn write_queued(&mut self) {
        for _ in 0..WRITES_PER_TURN {
            if matches!(self.conn.next(&self.env.limits), Next::Close(_)) {
                return; // closing at once: one try without blocking, in `serve`
            }
            let pending = self.conn.transmit();
            if pending.is_empty() {
                return;
            }
            match (&self.stream).write(pending) {
                Ok(n) => {
                    let mut cx = self.env.context(Instant::now());
                    self.conn.handle_sent(n, &mut cx);
                    // A refill (on_drained) or re-offered input may broadcast.
                    self.run_broadcasts();
                }
                // The slice ran out: the peer is not reading. The wait that
                // follows watches the deadline.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    log::debug!("write to {} failed: {err}", self.conn.peer());
                    let mut cx = self.env.context(Instant::now());
                    self.conn
                        .handle_socket_error(failure_reason(&err, false), &mut cx);
                    return;
                }
            }
        }
    }

    /// Delivers the broadcasts the last callback asked for: to this
    /// connection at once, to the others through their inboxes.
    fn run_broadcasts(&mut self) {
        while !self.env.work.requests.broadcasts.is_empty() {
            let messages = std::mem::take(&mut self.env.work.requests.broadcasts);
            for message in &messages {
                self.room.broadcast(self.key, message);
                let mut cx = self.env.context(Instant::now());
                self.conn.handle_broadcast(message, &mut cx);
            }
        }
    }
}

/// One write that does not block, whatever the socket's mode.
fn send_dontwait(stream: &TcpStream, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: `bytes` is a valid buffer of `bytes.len()` bytes for the call.
    let n = unsafe {
        libc::send(
            stream.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
