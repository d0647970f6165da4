//! Pairing sockets handed over at start-up (`LISTEN_FDS`) with the
//! configured listeners.
//!
//! The one idea: **the configuration still says what each listener
//! admits; the socket only says where**. Each inherited socket takes the
//! place of the first configured listener at its address (a configured port
//! 0 matches any port on that address), which then is not bound. A socket
//! that matches no listener is an error naming it, since serving it with a
//! guessed policy could serve plaintext where TLS was meant. Listeners no
//! socket matches are bound as usual.

use std::sync::Arc;

use crate::config::ConfigError;
use crate::net::socket_activation::{serves, Inherited};
use crate::server::ListenerSettings;

pub(super) fn attach(
    mut listeners: Vec<ListenerSettings>,
    inherited: &[Inherited],
) -> Result<Vec<ListenerSettings>, ConfigError> {
    for socket in inherited {
        let spec = listeners
            .iter_mut()
            .find(|l| l.inherited.is_none() && serves(l.options.addr, socket.local));
        let Some(spec) = spec else {
            let configured: Vec<String> = listeners
                .iter()
                .map(|l| l.options.addr.to_string())
                .collect();
            return Err(ConfigError(format!(
                "LISTEN_FDS: descriptor {}{} is bound to {}, which no listener is configured for \
                 (listeners: {}); add it to [[listeners]] or --listen",
                socket.fd,
                socket
                    .name
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default(),
                socket.local,
                configured.join(", ")
            )));
        };
        spec.inherited = Some(Arc::clone(&socket.socket));
    }
    Ok(listeners)
}
