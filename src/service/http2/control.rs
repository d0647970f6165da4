//! The control frames that change what a connection may send: SETTINGS,
//! WINDOW_UPDATE and RST_STREAM (PING and GOAWAY need a line each and stay in
//! `connection.rs`).
//!
//! The one idea: **every frame a peer can send for free is rationed**.
//! Answering a SETTINGS or forgetting a reset stream costs the server more
//! than the peer spent on the frame, so both are counted against a rate
//! (`limits.rs`); a WINDOW_UPDATE is free to handle but may not grow a window
//! past 2^31-1, and any window that opens lets blocked responses go on.

use super::connection::{calm, flow_control, Env, Fault, Http2Connection};
use super::counters::Http2Event;
use super::error::{protocol_error, stream_error, ErrorCode};
use super::write;
use crate::service::Session;

impl Http2Connection {
    pub(super) fn on_settings(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        params: &[u8],
    ) -> Result<(), Fault> {
        if self
            .settings_frames
            .over(env.limits.settings, session.now())
        {
            return Err(calm(Http2Event::SettingsFlood, "too many SETTINGS frames").into());
        }
        let delta = self.peer.apply(params)?;
        if delta != 0 {
            for stream in self.streams.values_mut() {
                stream.send.grow(delta).map_err(|_| {
                    flow_control("SETTINGS_INITIAL_WINDOW_SIZE overflows a stream window")
                })?;
            }
        }
        write::settings_ack(&mut self.out);
        self.send_blocked(session);
        Ok(())
    }

    pub(super) fn on_window_update(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
        increment: u32,
    ) -> Result<(), Fault> {
        let _ = env;
        if stream == 0 {
            if increment == 0 {
                return Err(protocol_error("WINDOW_UPDATE of 0 on the connection").into());
            }
            self.send_window
                .grow(i64::from(increment))
                .map_err(|_| flow_control("connection window above 2^31-1"))?;
        } else {
            if stream > self.highest_stream {
                return Err(protocol_error("WINDOW_UPDATE on an idle stream").into());
            }
            if increment == 0 {
                return Err(stream_error(
                    stream,
                    ErrorCode::ProtocolError,
                    Http2Event::ProtocolError,
                    "WINDOW_UPDATE of 0",
                )
                .into());
            }
            // A closed stream's update may cross our last frame: ignored.
            if let Some(open) = self.streams.get_mut(&stream) {
                open.send.grow(i64::from(increment)).map_err(|_| {
                    stream_error(
                        stream,
                        ErrorCode::FlowControlError,
                        Http2Event::FlowControlError,
                        "stream window above 2^31-1",
                    )
                })?;
            }
        }
        self.send_blocked(session);
        Ok(())
    }

    pub(super) fn on_reset(
        &mut self,
        env: &Env<'_>,
        session: &mut Session<'_>,
        stream: u32,
    ) -> Result<(), Fault> {
        if stream > self.highest_stream {
            return Err(protocol_error("RST_STREAM on an idle stream").into());
        }
        if self.resets.over(env.limits.resets, session.now()) {
            return Err(calm(Http2Event::RapidReset, "too many streams reset").into());
        }
        self.forget(stream);
        Ok(())
    }
}
