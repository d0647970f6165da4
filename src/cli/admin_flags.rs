//! `serve --admin ADDR` and `[admin]`: whether to serve the admin port, and
//! with which access rules, decided before any socket opens.

use crate::admin::config::check_apart;
use crate::admin::AdminSettings;
use crate::cli::ServeArgs;
use crate::config::{Config, ConfigError};
use crate::server::ListenerSettings;

/// The admin settings, or `None` when neither the flag nor the file asks
/// for the admin port. Errors name the flag or the file and key.
pub(super) fn settings(
    args: &ServeArgs,
    config: &Config,
    origin: &str,
    listeners: &[ListenerSettings],
) -> Result<Option<AdminSettings>, ConfigError> {
    let (address, key) = match (args.admin, config.admin.address) {
        (Some(addr), _) => (addr, "--admin".to_string()),
        (None, Some(addr)) => (addr, format!("{origin}: admin.address")),
        (None, None) => {
            if config.admin.token_file.is_some() || config.admin.allow_remote {
                log::warn!("{origin}: [admin] has settings but no address: the admin port is off");
            }
            return Ok(None);
        }
    };
    let public: Vec<_> = listeners.iter().map(|l| l.options.addr).collect();
    check_apart(address, &public, &key).map_err(ConfigError)?;
    let access = config.admin.access(origin).map_err(ConfigError)?;
    if access.allow_remote && access.token.is_none() {
        log::warn!(
            "{origin}: admin.allow_remote without admin.token_file: other hosts may read \
             metrics but not change limits"
        );
    }
    Ok(Some(AdminSettings { address, access }))
}
