//! Wiring for `tsps serve`: store, directory, actors, SIP transports and HTTP.

use crate::config::Config;
use std::path::Path;

pub fn serve(_config: Config, _demo: bool) -> anyhow::Result<()> {
    anyhow::bail!("serve is not wired yet")
}

pub async fn provision_apply(config: &Config, file: &Path) -> anyhow::Result<()> {
    use anyhow::Context as _;
    // Parse and validate before touching the database, so a typo costs no connection.
    let doc = crate::provision::load_file(file)?;
    crate::provision::validate(&doc)?;
    let store = crate::store::open(
        config.database.url.expose(),
        config.database.max_connections,
    )
    .await
    .context("cannot open the database")?;
    let summary = crate::provision::apply(&*store, &doc).await?;
    println!("applied {}\n{summary}", file.display());
    Ok(())
}
