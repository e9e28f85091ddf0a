//! The `azure` provider: a Blob container for storage, a Front Door endpoint for purges.

use std::fmt;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};
use secrecy::SecretString;

use super::blob::{BlobAuth, BlobStore};
use super::entra::{IMDS_ENDPOINT, Source, Tokens};
use super::front_door::FrontDoor;
use super::{AUTHORITY_HOST, AzureSettings, ConnectionString, Credential};
use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::Provider;

/// Reads an environment variable. The provider takes its credentials through one of
/// these, so tests can give a site its own without touching the process environment.
pub type Env = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Characters a Front Door content path must carry percent-encoded.
const UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// A site in an Azure Blob container behind a Front Door endpoint.
pub struct AzureProvider {
    name: String,
    settings: AzureSettings,
    env: Env,
    pool: usize,
    /// Built on first use (it reads credentials), then kept for the process.
    clients: OnceLock<std::result::Result<Clients, ProviderError>>,
}

/// What the provider talks through.
#[derive(Debug)]
struct Clients {
    blob: BlobStore,
    front_door: Option<FrontDoor>,
}

impl fmt::Debug for AzureProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureProvider")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AzureProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Whether `url` is on this machine (where plain http is allowed for a token endpoint).
fn is_loopback(url: &str) -> bool {
    let rest = url.strip_prefix("http://").unwrap_or_default();
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    matches!(host, "127.0.0.1" | "localhost" | "[::1]")
}

impl AzureProvider {
    /// The provider of `settings`' container, reading credentials from the process
    /// environment on first use.
    pub fn new(settings: AzureSettings) -> Self {
        let account = if settings.account.is_empty() {
            "(connection string)"
        } else {
            &settings.account
        };
        let name = format!(
            "azure:{account}/{}/{}",
            settings.container,
            settings.key_prefix()
        );
        Self {
            name,
            settings,
            env: Arc::new(|key| std::env::var(key).ok().filter(|v| !v.is_empty())),
            pool: 16,
            clients: OnceLock::new(),
        }
    }

    /// Reads credentials through `env` instead of the process environment.
    pub fn with_env(mut self, env: Env) -> Self {
        self.env = env;
        self
    }

    /// Keeps up to `connections` idle storage connections (the deploy's concurrency).
    pub fn with_pool_size(mut self, connections: usize) -> Self {
        self.pool = connections.max(1);
        self
    }

    fn var(&self, key: &str) -> Option<String> {
        (self.env)(key)
    }

    fn unauthenticated(&self, message: String) -> ProviderError {
        ProviderError::Unauthenticated {
            provider: self.name.clone(),
            message,
        }
    }

    fn clients(&self) -> Result<&Clients> {
        match self.clients.get_or_init(|| self.build()) {
            Ok(clients) => Ok(clients),
            Err(err) => Err(clone_error(err)),
        }
    }

    /// The Entra ID token source the environment (and `credential`) describe, if any.
    fn entra_source(&self, http: &reqwest::Client) -> std::result::Result<Option<Tokens>, String> {
        let credential = self.settings.credential;
        let client_secret = || -> std::result::Result<Option<Source>, String> {
            let (Some(tenant), Some(client_id), Some(secret)) = (
                self.var("AZURE_TENANT_ID"),
                self.var("AZURE_CLIENT_ID"),
                self.var("AZURE_CLIENT_SECRET"),
            ) else {
                return Ok(None);
            };
            let authority = self
                .var("AZURE_AUTHORITY_HOST")
                .unwrap_or_else(|| AUTHORITY_HOST.into())
                .trim_end_matches('/')
                .to_string();
            if !(authority.starts_with("https://") || is_loopback(&authority)) {
                return Err(format!(
                    "AZURE_AUTHORITY_HOST `{authority}` is not an https:// URL"
                ));
            }
            Ok(Some(Source::ClientSecret {
                authority,
                tenant,
                client_id,
                secret: SecretString::from(secret),
            }))
        };
        let app_service = || {
            let (Some(endpoint), Some(header)) =
                (self.var("IDENTITY_ENDPOINT"), self.var("IDENTITY_HEADER"))
            else {
                return None;
            };
            Some(Source::AppService {
                endpoint,
                header: SecretString::from(header),
                client_id: self.var("AZURE_CLIENT_ID"),
            })
        };
        let source = match credential {
            Credential::ClientSecret => Some(client_secret()?.ok_or_else(|| {
                "credential = \"client_secret\" needs AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET".to_string()
            })?),
            Credential::ManagedIdentity => Some(app_service().unwrap_or_else(|| Source::Imds {
                endpoint: IMDS_ENDPOINT.into(),
                client_id: self.var("AZURE_CLIENT_ID"),
            })),
            Credential::AzureCli => Some(Source::AzureCli),
            _ => match client_secret()? {
                Some(source) => Some(source),
                None => app_service(),
            },
        };
        Ok(source.map(|source| Tokens::new(source, http.clone())))
    }

    /// Reads the credentials and builds the clients (no request is sent).
    fn build(&self) -> std::result::Result<Clients, ProviderError> {
        metrics::counter!(crate::metrics::CLIENTS_BUILT, "provider" => self.name.clone())
            .increment(1);
        let settings = &self.settings;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_millis(
                settings.connect_timeout_ms,
            ))
            .timeout(std::time::Duration::from_millis(
                settings.request_timeout_ms,
            ))
            .build()
            .map_err(|err| ProviderError::Misconfigured {
                provider: self.name.clone(),
                message: format!("cannot make an HTTPS client: {err}"),
            })?;
        let entra = self
            .entra_source(&http)
            .map_err(|message| self.unauthenticated(message))?
            .map(Arc::new);
        let mut account = settings.account.clone();
        let mut endpoint = settings.endpoint.clone();
        let mut from_connection_string = false;
        let env_secret = |name: &str| self.var(name).map(SecretString::from);
        let connection_string = match settings.credential {
            Credential::Auto | Credential::ConnectionString => {
                self.var(&settings.connection_string_env)
            }
            _ => None,
        };
        let auth = if let Some(text) = connection_string {
            let parsed = ConnectionString::parse(&text).map_err(|reason| {
                self.unauthenticated(format!(
                    "the connection string in {} is not usable: {reason}",
                    settings.connection_string_env
                ))
            })?;
            if account.is_empty() {
                account = parsed.account.clone().unwrap_or_default();
            }
            if endpoint.is_none() {
                endpoint = parsed.blob_endpoint.clone();
            }
            from_connection_string = true;
            match (parsed.account_key, parsed.sas) {
                (Some(key), _) => BlobAuth::Key(SecretString::from(key)),
                (None, Some(sas)) => BlobAuth::Sas(SecretString::from(sas)),
                (None, None) => {
                    return Err(self.unauthenticated(format!(
                        "the connection string in {} has neither AccountKey nor SharedAccessSignature",
                        settings.connection_string_env
                    )));
                }
            }
        } else {
            let key = matches!(
                settings.credential,
                Credential::Auto | Credential::AccountKey
            )
            .then(|| env_secret(&settings.account_key_env))
            .flatten();
            let sas = matches!(settings.credential, Credential::Auto | Credential::Sas)
                .then(|| env_secret(&settings.sas_token_env))
                .flatten();
            match (key, sas, &entra) {
                (Some(key), _, _) => BlobAuth::Key(key),
                (None, Some(sas), _) => BlobAuth::Sas(sas),
                (None, None, Some(tokens)) => BlobAuth::Entra(Arc::clone(tokens)),
                (None, None, None) => {
                    let asked = match settings.credential {
                        Credential::ConnectionString => {
                            format!("{} is not set", settings.connection_string_env)
                        }
                        Credential::AccountKey => {
                            format!("{} is not set", settings.account_key_env)
                        }
                        Credential::Sas => format!("{} is not set", settings.sas_token_env),
                        _ => format!(
                            "no credentials: set {} (a connection string), {} (the account key) or {} (a SAS token); or AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (a service principal); or sites.NAME.azure.credential = \"managed_identity\" or \"azure_cli\"",
                            settings.connection_string_env,
                            settings.account_key_env,
                            settings.sas_token_env
                        ),
                    };
                    return Err(self.unauthenticated(format!(
                        "storage account `{}`: {asked}",
                        if account.is_empty() { "?" } else { &account }
                    )));
                }
            }
        };
        if account.is_empty() {
            return Err(ProviderError::Misconfigured {
                provider: self.name.clone(),
                message: "no storage account: set sites.NAME.azure.account".into(),
            });
        }
        let endpoint =
            endpoint.unwrap_or_else(|| format!("https://{account}.blob.core.windows.net"));
        let credential = auth.describe(settings, from_connection_string);
        let blob = BlobStore::new(
            &self.name, settings, &account, &endpoint, auth, credential, self.pool,
        )
        .map_err(|message| ProviderError::Misconfigured {
            provider: self.name.clone(),
            message: format!("storage account `{account}`: {message}"),
        })?;
        let front_door = settings.front_door.clone().map(|front_door| {
            let tokens = entra.clone().ok_or_else(|| {
                "Front Door purges need an Entra ID token (an account key or SAS cannot purge): set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET for a service principal with the CDN Endpoint Contributor role on the profile, or set sites.NAME.azure.credential = \"managed_identity\" or \"azure_cli\"".to_string()
            });
            FrontDoor::new(&self.name, front_door, http.clone(), tokens)
        });
        Ok(Clients { blob, front_door })
    }
}

/// Build errors are kept and returned on every call; `ProviderError` is not `Clone`.
fn clone_error(err: &ProviderError) -> ProviderError {
    match err {
        ProviderError::Unauthenticated { provider, message } => ProviderError::Unauthenticated {
            provider: provider.clone(),
            message: message.clone(),
        },
        ProviderError::Misconfigured { provider, message } => ProviderError::Misconfigured {
            provider: provider.clone(),
            message: message.clone(),
        },
        other => ProviderError::Misconfigured {
            provider: String::new(),
            message: other.to_string(),
        },
    }
}

/// The content paths of a purge: `/*` for everything, else each path percent-encoded,
/// duplicates dropped — case-insensitively, as Front Door matches — order kept.
fn content_paths(request: &PurgeRequest) -> Vec<String> {
    if request.everything {
        return vec!["/*".to_string()];
    }
    let mut seen = std::collections::HashSet::new();
    request
        .paths
        .iter()
        .map(|path| utf8_percent_encode(path, UNSAFE).to_string())
        .filter(|path| seen.insert(path.to_lowercase()))
        .collect()
}

#[async_trait]
impl Provider for AzureProvider {
    /// Blob limits (5,000 per listing page, 256 per batch delete); Front Door purges
    /// single paths and directory wildcards (`/a/*`, `/*`), 100 per call, no tags.
    fn capabilities(&self) -> Capabilities {
        let storage = Capabilities {
            max_delete_batch: 256,
            list_page_size: self.settings.list_page_size,
            multipart_threshold: Some(self.settings.multipart_threshold),
            ..Capabilities::default()
        };
        match &self.settings.front_door {
            None => Capabilities {
                purge_is_noop: true,
                ..storage
            },
            Some(front_door) => Capabilities {
                purge_paths: true,
                purge_tags: false,
                purge_prefixes: false,
                purge_everything: true,
                trailing_wildcards: true,
                max_purge_items_per_call: front_door.max_paths_per_call,
                max_purge_wildcards_per_call: front_door.max_paths_per_call,
                max_purge_path_len: 2000,
                purge_is_noop: false,
                ..storage
            },
        }
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        self.clients()?.blob.put(request).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.clients()?.blob.head(key).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        self.clients()?.blob.get(key).await
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        self.clients()?.blob.list_page(prefix, cursor).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.clients()?.blob.delete_many(keys).await
    }

    /// One purge call; the receipt is the long-running operation to follow.
    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.capabilities().validate_purge(&self.name, request)?;
        let Some(front_door) = &self.clients()?.front_door else {
            return Ok(PurgeReceipt {
                id: String::new(),
                status: PurgeStatus::Done,
            });
        };
        let paths = content_paths(request);
        if paths.len() > front_door.settings().max_paths_per_call {
            return Err(ProviderError::Invalid {
                provider: self.name.clone(),
                message: format!(
                    "{} paths in one purge; Front Door takes at most {}",
                    paths.len(),
                    front_door.settings().max_paths_per_call
                ),
            });
        }
        front_door.purge(&paths).await
    }

    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        match &self.clients()?.front_door {
            Some(front_door) => front_door.status(id).await,
            None => Ok(PurgeStatus::Done),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_paths_are_encoded_deduplicated_without_case_and_everything_is_one_wildcard() {
        let request =
            PurgeRequest::of_paths(["/A.css", "/a.css", "/caf\u{e9} menu.html", "/img/*"]);
        assert_eq!(
            content_paths(&request),
            ["/A.css", "/caf%C3%A9%20menu.html", "/img/*"]
        );
        let everything = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        assert_eq!(content_paths(&everything), ["/*"]);
    }

    #[test]
    fn no_credentials_is_one_error_naming_the_account_and_the_settings() {
        let provider = AzureProvider::new(AzureSettings {
            account: "wwwassets".into(),
            container: "site".into(),
            ..AzureSettings::default()
        })
        .with_env(Arc::new(|_| None));
        let err = provider.clients().unwrap_err().to_string();
        assert!(err.contains("wwwassets"), "{err}");
        assert!(err.contains("AZURE_STORAGE_CONNECTION_STRING"), "{err}");
        assert!(err.contains("managed_identity"), "{err}");
    }
}
