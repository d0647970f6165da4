//! SETTINGS (RFC 9113 §6.5): what each side tells the other about itself.
//!
//! Ours are fixed when the connection starts (`Http2Limits`); the peer's
//! arrive at any time, and each SETTINGS frame is acknowledged after all of
//! it is applied. The one idea: **a setting the peer sends changes what we
//! may send, never what it may send us** — INITIAL_WINDOW_SIZE resizes our
//! send windows on every open stream at once (by the difference, so a window
//! can go negative), MAX_FRAME_SIZE caps our frames. Values outside the
//! RFC's ranges end the connection.

use super::counters::Http2Event;
use super::error::{connection_error, protocol_error, ConnectionError, ErrorCode};

pub const HEADER_TABLE_SIZE: u16 = 0x1;
pub const ENABLE_PUSH: u16 = 0x2;
pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
pub const MAX_FRAME_SIZE: u16 = 0x5;
pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;

/// The initial window of every stream and of the connection (§6.9.2).
pub const DEFAULT_WINDOW: u32 = 65_535;
/// The largest window flow control allows (§6.9.1).
pub const MAX_WINDOW: u32 = (1 << 31) - 1;
/// SETTINGS_MAX_FRAME_SIZE's initial value and its allowed maximum.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 16_384;
pub const LARGEST_MAX_FRAME_SIZE: usize = (1 << 24) - 1;
/// Our SETTINGS_HEADER_TABLE_SIZE: the default, so no setting is sent.
pub const OUR_HEADER_TABLE_SIZE: usize = 4096;

/// What the peer has told us, as far as it concerns what we send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerSettings {
    pub initial_window_size: u32,
    pub max_frame_size: usize,
}

impl Default for PeerSettings {
    fn default() -> PeerSettings {
        PeerSettings {
            initial_window_size: DEFAULT_WINDOW,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

impl PeerSettings {
    /// Applies one SETTINGS frame's parameters (six octets each) in order.
    /// Returns how much the initial stream window grew (negative: shrank).
    pub fn apply(&mut self, params: &[u8]) -> Result<i64, ConnectionError> {
        let before = self.initial_window_size;
        for param in params.chunks_exact(6) {
            let id = u16::from_be_bytes([param[0], param[1]]);
            let value = u32::from_be_bytes([param[2], param[3], param[4], param[5]]);
            match id {
                ENABLE_PUSH if value > 1 => {
                    return Err(protocol_error("SETTINGS_ENABLE_PUSH other than 0 or 1"))
                }
                INITIAL_WINDOW_SIZE if value > MAX_WINDOW => {
                    return Err(connection_error(
                        ErrorCode::FlowControlError,
                        Http2Event::FlowControlError,
                        "SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1",
                    ))
                }
                INITIAL_WINDOW_SIZE => self.initial_window_size = value,
                MAX_FRAME_SIZE => {
                    let size = value as usize;
                    if !(DEFAULT_MAX_FRAME_SIZE..=LARGEST_MAX_FRAME_SIZE).contains(&size) {
                        return Err(protocol_error(
                            "SETTINGS_MAX_FRAME_SIZE outside 2^14..2^24-1",
                        ));
                    }
                    self.max_frame_size = size;
                }
                // The header table size limits an encoder that indexes; ours
                // never does. Push is never used; concurrency and header
                // list size limit requests, which we never send.
                HEADER_TABLE_SIZE | ENABLE_PUSH | MAX_CONCURRENT_STREAMS | MAX_HEADER_LIST_SIZE => {
                }
                // Unknown ids are ignored (§6.5.2).
                _ => {}
            }
        }
        Ok(i64::from(self.initial_window_size) - i64::from(before))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(u16, u32)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|(id, value)| id.to_be_bytes().into_iter().chain(value.to_be_bytes()))
            .collect()
    }

    #[test]
    fn the_last_window_size_wins_and_the_change_is_reported() {
        let mut settings = PeerSettings::default();
        let delta = settings
            .apply(&params(&[
                (INITIAL_WINDOW_SIZE, 100),
                (INITIAL_WINDOW_SIZE, 10),
                (0x99, 7),
            ]))
            .unwrap();
        assert_eq!(settings.initial_window_size, 10);
        assert_eq!(delta, 10 - 65_535);
    }

    #[test]
    fn out_of_range_values_are_connection_errors() {
        let code = |pairs: &[(u16, u32)]| {
            PeerSettings::default()
                .apply(&params(pairs))
                .unwrap_err()
                .code
        };
        assert_eq!(code(&[(ENABLE_PUSH, 2)]), ErrorCode::ProtocolError);
        assert_eq!(
            code(&[(INITIAL_WINDOW_SIZE, 1 << 31)]),
            ErrorCode::FlowControlError
        );
        assert_eq!(code(&[(MAX_FRAME_SIZE, 16_383)]), ErrorCode::ProtocolError);
        assert_eq!(code(&[(MAX_FRAME_SIZE, 1 << 24)]), ErrorCode::ProtocolError);
        let mut settings = PeerSettings::default();
        settings
            .apply(&params(&[(MAX_FRAME_SIZE, 1 << 20)]))
            .unwrap();
        assert_eq!(settings.max_frame_size, 1 << 20);
    }
}
