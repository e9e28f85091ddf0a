//! `edgeship keys create|list|revoke`.

use anyhow::Context;

use super::{EXIT_OK, EXIT_USAGE, KeysCommand};
use crate::api_keys::{KeyError, KeyStore};
use crate::audit::{AuditLog, event};
use crate::config::Config;

/// Runs `edgeship keys …`.
pub(super) fn run(config: &Config, command: &KeysCommand) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let sites = crate::site::Sites::new(config)?;
        let store = KeyStore::new(sites.home(), &config.data_dir);
        let audit = AuditLog::new(&config.data_dir);
        match command {
            KeysCommand::Create(args) => {
                let expires_at = args
                    .expires_in_days
                    .map(|days| crate::jobs::unix_now() + days * 86_400);
                let created = match store
                    .create(&args.name, args.scopes.clone(), expires_at, args.allow_ips.clone())
                    .await
                {
                    Ok(created) => created,
                    Err(err @ KeyError::BadName(_)) => {
                        eprintln!("error: --name: {err}");
                        return Ok(EXIT_USAGE);
                    }
                    Err(err) => return Err(err.into()),
                };
                audit.record(&event(
                    "key.create",
                    "cli",
                    serde_json::json!({ "id": created.key.id, "name": created.key.name, "scopes": created.key.scopes }),
                ));
                if args.json {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&serde_json::json!({
                            "token": created.token,
                            "key": created.key,
                        }))?
                    );
                } else {
                    println!("{}", created.token);
                    eprintln!(
                        "created key `{}` (id {}); it is shown only now: store it in your secret manager",
                        created.key.name, created.key.id
                    );
                }
                Ok(EXIT_OK)
            }
            KeysCommand::List { json } => {
                let keys = store.list().await?;
                if *json {
                    println!("{}", serde_json::to_string_pretty(&keys)?);
                    return Ok(EXIT_OK);
                }
                let now = crate::jobs::unix_now();
                println!("{:<14} {:<20} {:<24} STATE", "ID", "NAME", "SCOPES");
                for key in keys {
                    let scopes: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
                    let state = match key.unusable(now) {
                        Some(reason) => reason.trim_start_matches("the key ").to_string(),
                        None => match key.expires_at {
                            Some(at) => format!("active, expires in {} days", (at - now) / 86_400),
                            None => "active".into(),
                        },
                    };
                    println!("{:<14} {:<20} {:<24} {state}", key.id, key.name, scopes.join(","));
                }
                Ok(EXIT_OK)
            }
            KeysCommand::Revoke { id } => match store.revoke(id).await {
                Ok(key) => {
                    audit.record(&event("key.revoke", "cli", serde_json::json!({ "id": key.id, "name": key.name })));
                    println!("revoked key `{}` ({})", key.name, key.id);
                    Ok(EXIT_OK)
                }
                Err(KeyError::NotFound(id)) => {
                    eprintln!("error: no API key `{id}` (see `edgeship keys list`)");
                    Ok(EXIT_USAGE)
                }
                Err(err) => Err(err.into()),
            },
        }
    })
}
