//! Azure Front Door purges: `POST …/afdEndpoints/{endpoint}/purge` with an Entra ID
//! token, and the long-running operation it starts.
//!
//! Front Door answers 202 with `Azure-AsyncOperation` (and/or `Location`); the purge is
//! done when a GET of that URL says `Succeeded` (or, for `Location`, answers 200/204).
//! The operation URL is the receipt id, so a purge job polls it through
//! `purge_status`; only URLs on the configured ARM endpoint are ever fetched.

use std::sync::Arc;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use super::FrontDoorSettings;
use super::entra::{ARM_SCOPE, TokenError, Tokens};
use crate::error::{ProviderError, Result};
use crate::object::{PurgeReceipt, PurgeStatus};

/// The purge body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PurgeBody<'a> {
    content_paths: &'a [String],
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    domains: &'a [String],
}

/// ARM's error envelope.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArmError {
    error: ArmErrorDetail,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ArmErrorDetail {
    code: String,
    message: String,
}

/// An async operation's state.
#[derive(Debug, Deserialize)]
struct Operation {
    status: String,
    #[serde(default)]
    error: Option<ArmErrorDetail>,
}

/// Which kind of operation URL a receipt holds.
const ASYNC: &str = "async:";
const LOCATION: &str = "location:";

/// The Front Door endpoint of a site.
#[derive(Debug)]
pub(crate) struct FrontDoor {
    name: String,
    settings: FrontDoorSettings,
    http: reqwest::Client,
    /// The ARM token source, or why there is none (every purge says so).
    tokens: std::result::Result<Arc<Tokens>, String>,
}

impl FrontDoor {
    pub(crate) fn new(
        name: &str,
        settings: FrontDoorSettings,
        http: reqwest::Client,
        tokens: std::result::Result<Arc<Tokens>, String>,
    ) -> Self {
        Self {
            name: name.to_string(),
            settings,
            http,
            tokens,
        }
    }

    /// The settings (for capabilities).
    pub(crate) fn settings(&self) -> &FrontDoorSettings {
        &self.settings
    }

    fn target(&self) -> String {
        format!(
            "Front Door endpoint `{}` of profile `{}` (resource group `{}`, subscription {})",
            self.settings.endpoint,
            self.settings.profile,
            self.settings.resource_group,
            self.settings.subscription_id
        )
    }

    async fn bearer(&self) -> Result<String> {
        let tokens = self
            .tokens
            .as_ref()
            .map_err(|message| ProviderError::Unauthenticated {
                provider: self.name.clone(),
                message: message.clone(),
            })?;
        match tokens.token(ARM_SCOPE).await {
            Ok(token) => Ok(format!("Bearer {}", token.expose_secret())),
            Err(TokenError::Refused(message)) => Err(ProviderError::Unauthenticated {
                provider: self.name.clone(),
                message,
            }),
            Err(TokenError::Misconfigured(message)) => Err(ProviderError::Misconfigured {
                provider: self.name.clone(),
                message,
            }),
            Err(TokenError::Transient(message)) => Err(ProviderError::Retryable {
                provider: self.name.clone(),
                message,
            }),
        }
    }

    /// Sends one purge of `paths` (at most `max_paths_per_call`, each starting with `/`).
    pub(crate) async fn purge(&self, paths: &[String]) -> Result<PurgeReceipt> {
        let bearer = self.bearer().await?;
        let url = self.settings.purge_url();
        let response = self
            .http
            .post(&url)
            .header(reqwest::header::AUTHORIZATION, bearer)
            .json(&PurgeBody {
                content_paths: paths,
                domains: &self.settings.domains,
            })
            .send()
            .await
            .map_err(|err| self.transport(&err))?;
        let status = response.status();
        if status.as_u16() == 200 || status.as_u16() == 204 {
            return Ok(PurgeReceipt {
                id: String::new(),
                status: PurgeStatus::Done,
            });
        }
        if status.as_u16() == 202 {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let id = match (header("azure-asyncoperation"), header("location")) {
                (Some(url), _) => format!("{ASYNC}{url}"),
                (None, Some(url)) => format!("{LOCATION}{url}"),
                (None, None) => {
                    return Ok(PurgeReceipt {
                        id: String::new(),
                        status: PurgeStatus::Done,
                    });
                }
            };
            self.check_operation_url(&id)?;
            return Ok(PurgeReceipt {
                id,
                status: PurgeStatus::InProgress,
            });
        }
        Err(self.refusal(response).await)
    }

    /// Reads a purge's long-running operation.
    pub(crate) async fn status(&self, id: &str) -> Result<PurgeStatus> {
        if id.is_empty() {
            return Ok(PurgeStatus::Done);
        }
        let url = self.check_operation_url(id)?;
        let bearer = self.bearer().await?;
        let response = self
            .http
            .get(url)
            .header(reqwest::header::AUTHORIZATION, bearer)
            .send()
            .await
            .map_err(|err| self.transport(&err))?;
        let status = response.status().as_u16();
        if id.starts_with(LOCATION) {
            return match status {
                202 => Ok(PurgeStatus::InProgress),
                200 | 204 => Ok(PurgeStatus::Done),
                _ => Err(self.refusal(response).await),
            };
        }
        if status != 200 {
            return Err(self.refusal(response).await);
        }
        let body = response.bytes().await.map_err(|err| self.transport(&err))?;
        let operation: Operation =
            serde_json::from_slice(&body).map_err(|err| ProviderError::Retryable {
                provider: self.name.clone(),
                message: format!("unreadable purge operation: {err}"),
            })?;
        match operation.status.as_str() {
            "Succeeded" => Ok(PurgeStatus::Done),
            "Failed" | "Canceled" | "Cancelled" => {
                let detail = operation.error.unwrap_or_default();
                Err(ProviderError::OperationFailed {
                    provider: self.name.clone(),
                    operation: "purge",
                    message: format!(
                        "{} reports the purge {}: {} {}",
                        self.target(),
                        operation.status.to_lowercase(),
                        detail.code,
                        detail.message
                    )
                    .trim_end()
                    .to_string(),
                })
            }
            _ => Ok(PurgeStatus::InProgress),
        }
    }

    /// The operation URL of a receipt, refused unless it is on the ARM endpoint (a
    /// tampered job must not make us send our token elsewhere).
    fn check_operation_url<'a>(&self, id: &'a str) -> Result<&'a str> {
        let url = id
            .strip_prefix(ASYNC)
            .or_else(|| id.strip_prefix(LOCATION))
            .unwrap_or(id);
        let base = self.settings.management_url();
        if url.starts_with(&format!("{base}/")) {
            Ok(url)
        } else {
            Err(ProviderError::Invalid {
                provider: self.name.clone(),
                message: format!("the purge operation `{url}` is not on {base}"),
            })
        }
    }

    fn transport(&self, err: &reqwest::Error) -> ProviderError {
        ProviderError::Retryable {
            provider: self.name.clone(),
            message: format!("Front Door API: {err}"),
        }
    }

    /// Maps an ARM error answer onto our classes.
    async fn refusal(&self, response: reqwest::Response) -> ProviderError {
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = response.bytes().await.unwrap_or_default();
        let detail = serde_json::from_slice::<ArmError>(&body)
            .unwrap_or_default()
            .error;
        let provider = self.name.clone();
        let said = format!("{} {}", detail.code, detail.message)
            .trim()
            .to_string();
        match status {
            401 => ProviderError::Unauthenticated {
                provider,
                message: format!("ARM refused the token for {}: {said}", self.target()),
            },
            403 => ProviderError::PermissionDenied {
                provider,
                message: format!(
                    "the credential may not purge {} (it needs Microsoft.Cdn/profiles/afdendpoints/purge/action, e.g. the CDN Endpoint Contributor role): {said}",
                    self.target()
                ),
            },
            404 => ProviderError::Misconfigured {
                provider,
                message: format!(
                    "{} does not exist (sites.NAME.azure.front_door): {said}",
                    self.target()
                ),
            },
            429 => ProviderError::Throttled {
                provider,
                retry_after,
            },
            500..=599 => ProviderError::Retryable {
                provider,
                message: format!("Front Door API answered {status}: {said}"),
            },
            _ => ProviderError::Invalid {
                provider,
                message: format!("Front Door refused the purge ({status}): {said}"),
            },
        }
    }
}
