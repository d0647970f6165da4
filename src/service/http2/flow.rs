//! Flow control (RFC 9113 §5.2, §6.9): windows that say how many DATA
//! octets may still be sent, one per stream and one for the connection.
//!
//! The one idea: **each side only ever shrinks the window it sends on, and
//! only the receiver grows it** (WINDOW_UPDATE). So our *send* windows are
//! spent by our DATA and grown by the peer; our *receive* windows are spent
//! by the peer's DATA — more than we granted is a FLOW_CONTROL_ERROR — and
//! grown by our WINDOW_UPDATEs. This server reads request bodies and drops
//! them at once, so it grants credit back as soon as half a window has been
//! used: one WINDOW_UPDATE per 32 KiB, not one per frame.

use super::settings::MAX_WINDOW;

/// A window we send on. May go negative when the peer shrinks the initial
/// window under a stream that already spent some (§6.9.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendWindow(i64);

/// Growing a window past 2^31-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overflow;

impl SendWindow {
    pub fn new(size: u32) -> SendWindow {
        SendWindow(i64::from(size))
    }

    /// Octets that may be sent now.
    pub fn available(&self) -> usize {
        usize::try_from(self.0).unwrap_or(0)
    }

    pub fn spend(&mut self, octets: usize) {
        self.0 -= octets as i64;
    }

    /// A WINDOW_UPDATE's increment, or a SETTINGS change's difference.
    pub fn grow(&mut self, by: i64) -> Result<(), Overflow> {
        let grown = self.0 + by;
        if grown > i64::from(MAX_WINDOW) {
            return Err(Overflow);
        }
        self.0 = grown;
        Ok(())
    }
}

/// A window the peer sends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceiveWindow {
    available: i64,
    /// Octets received and dropped whose credit has not been given back.
    unacknowledged: u32,
    size: u32,
}

/// The peer sent more than its window allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Overrun;

impl ReceiveWindow {
    pub fn new(size: u32) -> ReceiveWindow {
        ReceiveWindow {
            available: i64::from(size),
            unacknowledged: 0,
            size,
        }
    }

    /// Accounts for a DATA frame of `octets` (padding included), which is
    /// dropped at once; returns the WINDOW_UPDATE increment to send, if the
    /// credit to give back has reached half the window.
    pub fn receive(&mut self, octets: u32) -> Result<Option<u32>, Overrun> {
        self.available -= i64::from(octets);
        if self.available < 0 {
            return Err(Overrun);
        }
        self.unacknowledged += octets;
        if self.unacknowledged >= self.size / 2 && self.unacknowledged > 0 {
            let increment = self.unacknowledged;
            self.available += i64::from(increment);
            self.unacknowledged = 0;
            return Ok(Some(increment));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_windows_spend_grow_and_refuse_overflow() {
        let mut window = SendWindow::new(10);
        window.spend(10);
        assert_eq!(window.available(), 0);
        window.grow(-5).unwrap();
        assert_eq!(window.available(), 0, "a negative window allows nothing");
        window.grow(7).unwrap();
        assert_eq!(window.available(), 2);
        assert_eq!(SendWindow::new(MAX_WINDOW).grow(1), Err(Overflow));
    }

    #[test]
    fn receive_windows_give_credit_back_at_half_and_catch_overruns() {
        let mut window = ReceiveWindow::new(100);
        assert_eq!(window.receive(30), Ok(None));
        assert_eq!(window.receive(30), Ok(Some(60)));
        assert_eq!(window.receive(100), Ok(Some(100)));
        let mut small = ReceiveWindow::new(100);
        assert_eq!(small.receive(101), Err(Overrun));
    }
}
