//! `edgeship deploys list`: a site's deploy history, newest first.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{EXIT_OK, size as human_bytes};
use crate::config::Config;
use crate::deploy::history;

/// `edgeship deploys …`
#[derive(Debug, Subcommand)]
pub enum DeploysCommand {
    /// List the deploys kept in a site's history, newest first.
    ///
    /// Each deploy that changed the site stores the manifest of what it published under
    /// `.edgeship/history/` on the site (the last `deploy.history`, default 10). Delta
    /// variants for returning visitors are made from the versions these deploys published.
    List(ListArgs),
}

/// `edgeship deploys list` arguments.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// The site (default: `default`, or the only configured site).
    #[arg(long)]
    pub site: Option<String>,
    /// Print the history as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs `edgeship deploys …`.
pub(super) fn run(config: &Config, command: &DeploysCommand) -> anyhow::Result<u8> {
    let DeploysCommand::List(args) = command;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let sites = crate::site::Sites::new(config)?;
    let name = config.site_or_default(args.site.as_deref())?;
    let index = runtime.block_on(async {
        let site = sites.get(&name)?;
        history::load_index(site.provider())
            .await
            .with_context(|| format!("reading the deploy history of site `{name}`"))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&index.deploys)?);
        return Ok(EXIT_OK);
    }
    if index.deploys.is_empty() {
        println!("site `{name}` has no deploys in its history yet");
        return Ok(EXIT_OK);
    }
    println!(
        "{:<20} {:<20} {:>7} {:>11} {:>9} {:>11} {:>7}",
        "id", "finished", "files", "size", "uploaded", "sent", "deltas"
    );
    for record in &index.deploys {
        println!(
            "{:<20} {:<20} {:>7} {:>11} {:>9} {:>11} {:>7}",
            record.id,
            utc(record.time),
            record.files,
            human_bytes(record.bytes),
            record.uploaded,
            human_bytes(record.uploaded_bytes),
            record.deltas
        );
    }
    Ok(EXIT_OK)
}

fn utc(unix: u64) -> String {
    let Ok(time) = time::OffsetDateTime::from_unix_timestamp(unix as i64) else {
        return unix.to_string();
    };
    time.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| unix.to_string())
}
