//! Wiring for `tsps serve`: store, directory, actors, SIP transports and HTTP.

use crate::config::Config;
use std::path::Path;

pub fn serve(_config: Config, _demo: bool) -> anyhow::Result<()> {
    anyhow::bail!("serve is not wired yet")
}

pub async fn provision_apply(_config: &Config, _file: &Path) -> anyhow::Result<()> {
    anyhow::bail!("provision apply is not wired yet")
}
