//! Entra ID (Azure AD) access tokens: for ARM (Front Door purges) and, when the site
//! authenticates with Entra ID, for Blob storage.
//!
//! A small client of the documented token endpoints, so tests can point it at a fake on
//! loopback: a service principal's client-credentials grant, App Service's and the
//! instance metadata service's managed identity, and `az account get-access-token`.
//! Tokens are cached per scope until five minutes before they expire.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The scope of ARM tokens.
pub(crate) const ARM_SCOPE: &str = "https://management.azure.com/.default";
/// The scope of Blob storage tokens.
pub(crate) const STORAGE_SCOPE: &str = "https://storage.azure.com/.default";
/// The instance metadata service's token endpoint.
pub(crate) const IMDS_ENDPOINT: &str = "http://169.254.169.254/metadata/identity/oauth2/token";

/// Where tokens come from.
pub(crate) enum Source {
    /// A service principal and its secret.
    ClientSecret {
        /// The authority (`https://login.microsoftonline.com`), without a trailing `/`.
        authority: String,
        /// The tenant (directory) id.
        tenant: String,
        /// The application (client) id.
        client_id: String,
        /// The client secret.
        secret: SecretString,
    },
    /// App Service / Functions managed identity (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).
    AppService {
        endpoint: String,
        header: SecretString,
        client_id: Option<String>,
    },
    /// A VM's managed identity through the instance metadata service.
    Imds {
        endpoint: String,
        client_id: Option<String>,
    },
    /// The Azure CLI's logged-in account.
    AzureCli,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ClientSecret {
                authority,
                tenant,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("authority", authority)
                .field("tenant", tenant)
                .field("client_id", client_id)
                .finish_non_exhaustive(),
            Self::AppService { endpoint, .. } => f
                .debug_struct("AppService")
                .field("endpoint", endpoint)
                .finish_non_exhaustive(),
            Self::Imds { endpoint, .. } => {
                f.debug_struct("Imds").field("endpoint", endpoint).finish()
            }
            Self::AzureCli => f.write_str("AzureCli"),
        }
    }
}

impl Source {
    /// What the credential is, for error messages (no secrets).
    pub(crate) fn describe(&self) -> String {
        match self {
            Self::ClientSecret {
                tenant, client_id, ..
            } => format!(
                "the service principal {client_id} of tenant {tenant} (AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, AZURE_TENANT_ID)"
            ),
            Self::AppService { .. } => {
                "the App Service managed identity (IDENTITY_ENDPOINT)".into()
            }
            Self::Imds { .. } => {
                "the machine's managed identity (instance metadata service)".into()
            }
            Self::AzureCli => "the Azure CLI's account (az login)".into(),
        }
    }
}

/// Why no token was had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenError {
    /// The credential was refused (wrong secret, unknown client).
    #[error("{0}")]
    Refused(String),
    /// The credential names something that does not exist (unknown tenant), or cannot
    /// be used here (no `az` installed).
    #[error("{0}")]
    Misconfigured(String),
    /// The endpoint failed or could not be reached; trying again may work.
    #[error("{0}")]
    Transient(String),
}

/// Tokens of one credential, cached per scope.
pub(crate) struct Tokens {
    source: Source,
    http: reqwest::Client,
    cache: Mutex<HashMap<&'static str, (Arc<SecretString>, Instant)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

/// What the client-credentials grant answers.
#[derive(Deserialize)]
struct GrantAnswer {
    access_token: String,
    expires_in: u64,
}

/// What a token endpoint answers when it refuses.
#[derive(Deserialize, Default)]
#[serde(default)]
struct GrantError {
    error: String,
    error_description: String,
}

/// What the managed identity endpoints answer (numbers as strings).
#[derive(Deserialize)]
struct IdentityAnswer {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    expires_on: Option<serde_json::Value>,
}

/// What `az account get-access-token` prints.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CliAnswer {
    access_token: String,
    #[serde(default, rename = "expires_on")]
    expires_on: Option<u64>,
}

fn number(value: &serde_json::Value) -> Option<u64> {
    match value {
        serde_json::Value::Number(n) => n.as_u64(),
        serde_json::Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The first line of an Entra error description (`AADSTS7000215: Invalid client secret…`).
fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default().trim()
}

impl Tokens {
    /// Tokens from `source`, fetched with `http`.
    pub(crate) fn new(source: Source, http: reqwest::Client) -> Self {
        Self {
            source,
            http,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The credential, for messages.
    pub(crate) fn source(&self) -> &Source {
        &self.source
    }

    /// A token for `scope`, from the cache while it has five minutes left.
    pub(crate) async fn token(&self, scope: &'static str) -> Result<Arc<SecretString>, TokenError> {
        if let Some((token, until)) = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(scope)
            && *until > Instant::now()
        {
            return Ok(Arc::clone(token));
        }
        let (token, lifetime) = self.fetch(scope).await?;
        let token = Arc::new(token);
        let usable = lifetime
            .saturating_sub(Duration::from_secs(300))
            .max(Duration::from_secs(30));
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(scope, (Arc::clone(&token), Instant::now() + usable));
        Ok(token)
    }

    async fn fetch(&self, scope: &'static str) -> Result<(SecretString, Duration), TokenError> {
        let resource = scope.trim_end_matches(".default").trim_end_matches('/');
        match &self.source {
            Source::ClientSecret {
                authority,
                tenant,
                client_id,
                secret,
            } => {
                let url = format!("{authority}/{tenant}/oauth2/v2.0/token");
                let form = [
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", secret.expose_secret()),
                    ("scope", scope),
                ];
                let response = self
                    .http
                    .post(&url)
                    .form(&form)
                    .send()
                    .await
                    .map_err(|err| transport(&url, &err))?;
                let status = response.status();
                let body = response
                    .bytes()
                    .await
                    .map_err(|err| transport(&url, &err))?;
                if status.is_success() {
                    let answer: GrantAnswer = serde_json::from_slice(&body).map_err(|err| {
                        TokenError::Transient(format!("unreadable token answer from {url}: {err}"))
                    })?;
                    return Ok((
                        SecretString::from(answer.access_token),
                        Duration::from_secs(answer.expires_in),
                    ));
                }
                let refusal: GrantError = serde_json::from_slice(&body).unwrap_or_default();
                let detail = first_line(&refusal.error_description);
                let who = self.source.describe();
                Err(match (status.as_u16(), refusal.error.as_str()) {
                    (429 | 500..=599, _) => {
                        TokenError::Transient(format!("the token endpoint answered {status}"))
                    }
                    (_, "invalid_client" | "unauthorized_client") => TokenError::Refused(format!(
                        "Entra ID refused {who}: {detail} (check AZURE_CLIENT_SECRET)"
                    )),
                    _ if detail.starts_with("AADSTS90002") => TokenError::Misconfigured(format!(
                        "no tenant {tenant} (AZURE_TENANT_ID): {detail}"
                    )),
                    _ if detail.starts_with("AADSTS700016") => TokenError::Misconfigured(format!(
                        "no application {client_id} in tenant {tenant} (AZURE_CLIENT_ID): {detail}"
                    )),
                    _ => TokenError::Refused(format!(
                        "Entra ID refused {who} ({status} {}): {detail}",
                        refusal.error
                    )),
                })
            }
            Source::AppService {
                endpoint,
                header,
                client_id,
            } => {
                let header = ("X-IDENTITY-HEADER", header.expose_secret());
                self.identity(endpoint, "2019-08-01", client_id, resource, header)
                    .await
            }
            Source::Imds {
                endpoint,
                client_id,
            } => {
                let header = ("Metadata", "true");
                self.identity(endpoint, "2018-02-01", client_id, resource, header)
                    .await
            }
            Source::AzureCli => azure_cli(resource).await,
        }
    }

    /// A managed identity's token for `resource` from `endpoint` (App Service's or the
    /// instance metadata service's, which differ only in api-version and header).
    async fn identity(
        &self,
        endpoint: &str,
        api_version: &str,
        client_id: &Option<String>,
        resource: &str,
        (header, value): (&str, &str),
    ) -> Result<(SecretString, Duration), TokenError> {
        let mut query = vec![("resource", resource), ("api-version", api_version)];
        if let Some(id) = client_id {
            query.push(("client_id", id));
        }
        let response = self
            .http
            .get(endpoint)
            .query(&query)
            .header(header, value)
            .send()
            .await
            .map_err(|err| transport(endpoint, &err))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|err| transport(endpoint, &err))?;
        if !status.is_success() {
            let who = self.source.describe();
            return Err(match status.as_u16() {
                429 | 500..=599 => TokenError::Transient(format!("{who} answered {status}")),
                _ => TokenError::Refused(format!(
                    "{who} gave no token ({status}): {}",
                    String::from_utf8_lossy(&body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                )),
            });
        }
        let answer: IdentityAnswer = serde_json::from_slice(&body).map_err(|err| {
            TokenError::Transient(format!("unreadable token answer from {endpoint}: {err}"))
        })?;
        let lifetime = answer
            .expires_in
            .as_ref()
            .and_then(number)
            .or_else(|| {
                let on = answer.expires_on.as_ref().and_then(number)?;
                Some(on.saturating_sub(unix_now()))
            })
            .unwrap_or(300);
        Ok((
            SecretString::from(answer.access_token),
            Duration::from_secs(lifetime),
        ))
    }
}

fn transport(url: &str, err: &reqwest::Error) -> TokenError {
    let host = url.split('/').take(3).collect::<Vec<_>>().join("/");
    TokenError::Transient(format!("cannot reach {host} for a token: {err}"))
}

async fn azure_cli(resource: &str) -> Result<(SecretString, Duration), TokenError> {
    let resource = resource.to_string();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("az")
            .args([
                "account",
                "get-access-token",
                "--output",
                "json",
                "--resource",
            ])
            .arg(&resource)
            .output()
    })
    .await
    .map_err(|err| TokenError::Transient(err.to_string()))?
    .map_err(|err| {
        TokenError::Misconfigured(format!(
            "credential = \"azure_cli\" needs the Azure CLI (`az`): {err}"
        ))
    })?;
    if !output.status.success() {
        return Err(TokenError::Refused(format!(
            "`az account get-access-token` failed (run `az login`): {}",
            first_line(&String::from_utf8_lossy(&output.stderr))
        )));
    }
    let answer: CliAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|err| TokenError::Transient(format!("unreadable `az` output: {err}")))?;
    let lifetime = answer
        .expires_on
        .map_or(300, |on| on.saturating_sub(unix_now()));
    Ok((
        SecretString::from(answer.access_token),
        Duration::from_secs(lifetime),
    ))
}

/// Blob storage credentials from Entra ID tokens, for `object_store`.
#[derive(Debug)]
pub(crate) struct StorageTokens(pub(crate) Arc<Tokens>);

#[async_trait::async_trait]
impl object_store::CredentialProvider for StorageTokens {
    type Credential = object_store::azure::AzureCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<Self::Credential>> {
        match self.0.token(STORAGE_SCOPE).await {
            Ok(token) => Ok(Arc::new(object_store::azure::AzureCredential::BearerToken(
                token.expose_secret().to_owned(),
            ))),
            Err(err @ TokenError::Transient(_)) => Err(object_store::Error::Generic {
                store: "MicrosoftAzure",
                source: Box::new(err),
            }),
            Err(err) => Err(object_store::Error::Unauthenticated {
                path: String::new(),
                source: Box::new(err),
            }),
        }
    }
}
