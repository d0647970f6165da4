//! The three modes of `bench echo`, each against a fixture server that
//! watches how the client writes (see `common::bench`): the fixture holds
//! its echoes back until a batch of bytes is waiting, and records the most
//! bytes ever waiting unechoed and the data segments it received.
//!
//! * cppserver-v1 never waits for echoes (the fixture withholds all of
//!   them until the client's whole share has arrived) and writes one
//!   message per write: the bench counts its write calls, and the fixture
//!   sees the messages arrive in many segments, not a few large ones;
//! * cppserver-v2 never has more than `--window` messages in flight, and
//!   reaches it;
//! * pingpong has exactly one message in flight.

mod common;

use common::bench::{bench, EchoFixture};

const SIZE: u64 = 32;

fn echo_against(fixture: &EchoFixture, flags: &[&str]) -> common::bench::Outcome {
    let addr = fixture.addr.to_string();
    let mut args = vec!["echo", "--addr", &addr, "--timeout", "20"];
    args.extend_from_slice(flags);
    bench(&args)
}

#[test]
fn cppserver_v1_writes_one_message_per_write_and_never_waits_for_echoes() {
    let share = 400;
    let fixture = EchoFixture::start(share * SIZE);
    let outcome = echo_against(
        &fixture,
        &[
            "--mode",
            "cppserver-v1",
            "--clients",
            "2",
            "--messages",
            "800",
        ],
    );
    outcome.assert_clean("echo");
    assert_eq!(outcome.get("ended_by"), "messages");
    assert_eq!(outcome.number("messages"), 800.0);
    // The bench's own count: one write call per message.
    assert_eq!(outcome.number("writes"), 800.0, "{}", outcome.stdout);
    let seen = fixture.seen(2);
    assert_eq!(seen.len(), 2, "{seen:?}");
    for conn in seen {
        // Every message arrived before the first echo left.
        assert_eq!(conn.most_unechoed, share * SIZE, "{conn:?}");
        // In many segments: the kernel merges a small write into one not
        // yet transmitted (while the congestion window is full, or with
        // autocorking), so the count of segments is a lower bound on the
        // writes, not the count; measured here, 137 to 400 for 400 writes.
        // A client batching its share would arrive in a handful.
        assert!(
            conn.data_segments * 20 >= share,
            "{} data segments for {share} messages: {conn:?}",
            conn.data_segments
        );
    }
}

#[test]
fn cppserver_v2_keeps_exactly_the_window_in_flight() {
    let window = 50;
    let fixture = EchoFixture::start(window * SIZE);
    let outcome = echo_against(
        &fixture,
        &[
            "--mode",
            "cppserver-v2",
            "--window",
            "50",
            "--clients",
            "2",
            "--messages",
            "400",
        ],
    );
    outcome.assert_clean("echo");
    assert_eq!(outcome.number("window"), 50.0);
    assert_eq!(outcome.number("messages"), 400.0);
    // Replacements for a batch of echoes leave together.
    assert!(outcome.number("msgs_per_write") > 1.0, "{}", outcome.stdout);
    let seen = fixture.seen(2);
    assert_eq!(seen.len(), 2, "{seen:?}");
    for conn in seen {
        assert_eq!(conn.received, 200 * SIZE, "{conn:?}");
        assert_eq!(conn.most_unechoed, window * SIZE, "{conn:?}");
    }
}

#[test]
fn the_window_fixture_catches_a_client_that_does_not_wait() {
    // The same fixture as above, against cppserver-v1: the overrun shows,
    // so the window check above can fail.
    let fixture = EchoFixture::start(50 * SIZE);
    let outcome = echo_against(
        &fixture,
        &[
            "--mode",
            "cppserver-v1",
            "--clients",
            "1",
            "--messages",
            "400",
        ],
    );
    outcome.assert_clean("echo");
    let seen = fixture.seen(1);
    assert!(seen[0].most_unechoed > 50 * SIZE, "{seen:?}");
}

#[test]
fn pingpong_has_one_message_in_flight() {
    let fixture = EchoFixture::start(SIZE);
    let outcome = echo_against(
        &fixture,
        &["--mode", "pingpong", "--clients", "2", "--messages", "100"],
    );
    outcome.assert_clean("echo");
    assert_eq!(outcome.number("messages"), 100.0);
    assert!(outcome.number("p50_us") > 0.0, "{}", outcome.stdout);
    for conn in fixture.seen(2) {
        assert_eq!(conn.most_unechoed, SIZE, "{conn:?}");
    }
}
