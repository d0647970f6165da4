//! The batch calls against real sockets on loopback, in both modes.

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use super::*;

const MODES: [IoMode; 2] = [IoMode::Batched, IoMode::PerDatagram];

fn pair() -> (UdpSocket, UdpSocket) {
    let a = UdpSocket::bind("127.0.0.1:0").unwrap();
    let b = UdpSocket::bind("127.0.0.1:0").unwrap();
    a.set_nonblocking(true).unwrap();
    b.set_nonblocking(true).unwrap();
    (a, b)
}

/// Receives until `want` datagrams arrived or a second passed.
fn receive_all(
    socket: &UdpSocket,
    batch: &mut RecvBatch,
    mode: IoMode,
    want: usize,
) -> Vec<(Vec<u8>, bool, SocketAddr)> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(1);
    while got.len() < want && Instant::now() < deadline {
        let pass = batch.receive(socket.as_raw_fd(), mode);
        for i in 0..pass.datagrams {
            let d = batch.get(i);
            got.push((d.bytes.to_vec(), d.truncated, d.peer.unwrap()));
        }
        if pass.datagrams == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    got
}

#[test]
fn a_batch_goes_out_and_comes_back_whole_in_order_in_both_modes() {
    for mode in MODES {
        let (a, b) = pair();
        let mut send = SendBatch::new(8);
        let messages: Vec<Vec<u8>> = (0..20u8).map(|i| vec![i; i as usize * 3]).collect();
        for m in &messages {
            if send.is_full() {
                let report = send.flush(a.as_raw_fd(), mode);
                assert_eq!(report.failed + report.dropped_full, 0);
            }
            send.push(b.local_addr().unwrap(), m);
        }
        send.flush(a.as_raw_fd(), mode);
        let mut recv = RecvBatch::new(8, 1024);
        let got = receive_all(&b, &mut recv, mode, messages.len());
        let bytes: Vec<Vec<u8>> = got.iter().map(|g| g.0.clone()).collect();
        assert_eq!(bytes, messages, "{mode:?}");
        assert!(got.iter().all(|g| !g.1 && g.2 == a.local_addr().unwrap()));
    }
}

#[test]
fn batching_takes_one_call_for_many_datagrams() {
    let (a, b) = pair();
    let mut send = SendBatch::new(16);
    for _ in 0..16 {
        send.push(b.local_addr().unwrap(), b"x");
    }
    let report = send.flush(a.as_raw_fd(), IoMode::Batched);
    assert_eq!(report.sent, 16);
    let expected_calls = if IoMode::batches_here() { 1 } else { 16 };
    assert_eq!(report.system_calls, expected_calls);
    std::thread::sleep(Duration::from_millis(20));
    let mut recv = RecvBatch::new(16, 64);
    let pass = recv.receive(b.as_raw_fd(), IoMode::Batched);
    assert_eq!(pass.datagrams, 16);
    assert!(matches!(pass.stop, RecvStop::Full));
    if IoMode::batches_here() {
        assert_eq!(pass.system_calls, 1);
    }
}

#[test]
fn a_datagram_larger_than_its_slot_is_flagged_truncated_and_the_next_is_whole() {
    for mode in MODES {
        let (a, b) = pair();
        let target = b.local_addr().unwrap();
        a.send_to(&[7u8; 300], target).unwrap();
        a.send_to(&[8u8; 100], target).unwrap();
        a.send_to(&[], target).unwrap();
        let mut recv = RecvBatch::new(4, 100);
        let got = receive_all(&b, &mut recv, mode, 3);
        assert_eq!(got.len(), 3, "{mode:?}");
        assert!(got[0].1, "the 300-byte datagram must be flagged");
        assert_eq!(
            (got[1].0.len(), got[1].1),
            (100, false),
            "exactly a slot fits"
        );
        assert_eq!(
            (got[2].0.len(), got[2].1),
            (0, false),
            "zero-length datagrams exist"
        );
    }
}

#[test]
fn an_empty_socket_is_drained_not_failed() {
    for mode in MODES {
        let (_a, b) = pair();
        let mut recv = RecvBatch::new(4, 64);
        let pass = recv.receive(b.as_raw_fd(), mode);
        assert_eq!(pass.datagrams, 0);
        assert!(
            matches!(pass.stop, RecvStop::Drained),
            "{mode:?}: {:?}",
            pass.stop
        );
    }
}

/// Loopback UDP never fills a send buffer (the kernel releases each
/// datagram's memory as it is handed to the receiver), so the full-buffer
/// path is driven through a Unix datagram socket whose reader never reads:
/// the same `sendmmsg`/`sendmsg` code, a buffer that really fills.
#[test]
fn a_full_send_buffer_drops_the_rest_of_the_batch_at_once_and_counts_it() {
    use socket2::{Domain, SockAddr, Socket, Type};
    for mode in MODES {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-udp-full-{}-{}",
            std::process::id(),
            mode.name()
        ));
        let _ = std::fs::remove_file(&dir);
        let reader = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        let path = SockAddr::unix(&dir).unwrap();
        reader.bind(&path).unwrap();
        let writer = Socket::new(Domain::UNIX, Type::DGRAM, None).unwrap();
        writer.set_nonblocking(true).unwrap();
        let mut send = SendBatch::new(4096);
        for _ in 0..4096 {
            send.push(path.clone(), &[0u8; 256]);
        }
        let started = Instant::now();
        let report = send.flush(writer.as_raw_fd(), mode);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "a full buffer must not block"
        );
        assert!(report.dropped_full > 0, "{mode:?}: {report:?}");
        assert_eq!(report.sent + report.dropped_full, 4096, "{report:?}");
        assert!(
            send.is_empty(),
            "dropped datagrams are not kept for a retry"
        );
        let _ = std::fs::remove_file(&dir);
    }
}

#[test]
fn a_reply_to_a_closed_port_comes_back_as_an_unreachable_report_that_drains() {
    let server = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    server
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    server.set_nonblocking(true).unwrap();
    errors::report_icmp_errors(&server, false).unwrap();
    let gone = UdpSocket::bind("127.0.0.1:0").unwrap();
    let gone_addr = gone.local_addr().unwrap();
    drop(gone);
    let mut send = SendBatch::new(1);
    send.push(gone_addr, b"hello?");
    assert_eq!(send.flush(server.as_raw_fd(), IoMode::Batched).sent, 1);
    std::thread::sleep(Duration::from_millis(50));
    let mut recv = RecvBatch::new(4, 64);
    let pass = recv.receive(server.as_raw_fd(), IoMode::Batched);
    if !cfg!(any(target_os = "linux", target_os = "android")) {
        return; // other systems report nothing to unconnected sockets
    }
    match pass.stop {
        RecvStop::Failed(err) => assert!(errors::is_unreachable(&err), "{err}"),
        other => panic!("expected ECONNREFUSED, got {other:?}"),
    }
    let drained = errors::drain(server.as_raw_fd());
    assert_eq!(drained.reports, 1);
    assert_eq!(drained.first_destination, Some(gone_addr));
    assert_eq!(
        errors::drain(server.as_raw_fd()),
        errors::Drained::default()
    );
    let again = recv.receive(server.as_raw_fd(), IoMode::Batched);
    assert!(matches!(again.stop, RecvStop::Drained), "{:?}", again.stop);
}
