//! Azure Blob Storage through `object_store`'s Azure backend: how objects map onto block
//! blobs, and how its errors map onto ours (one `classify`).
//!
//! - Content type, encoding and cache control are the blob's own properties (served as
//!   real headers).
//! - User metadata becomes `x-ms-meta-*`. Azure takes only C# identifiers as metadata
//!   names, so `-` is stored as `_` (`edgeship-hash` ↔ `edgeship_hash`); names must be
//!   lowercase letters, digits and `-`, so the mapping is exact both ways.
//! - Extra headers are kept as JSON in one metadata entry, so `head` returns them
//!   exactly; Azure serves only its own properties, so put other headers on the Front
//!   Door route (a rule set).
//! - Bodies of `multipart_threshold` bytes or more go up as blocks, `block_concurrency`
//!   at a time, committed with one block list (readers never see a partial blob).
//! - `object_store`'s own retries are off: the provider stack retries.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;
use object_store::{
    Attribute, AttributeValue, Attributes, ClientOptions, GetOptions, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, RetryConfig, WriteMultipart,
};
use tokio::io::AsyncReadExt;

use super::AzureSettings;
use super::entra::{StorageTokens, Tokens};
use crate::error::{ProviderError, Rejected, Result};
use crate::object::{Body, ListPage, ObjectMeta, PutRequest, check_header_value};
use crate::provider::validate_key;

/// The metadata entry holding an object's extra headers as JSON.
const HEADERS_META: &str = "edgeship_headers";

/// How the Blob service is authenticated.
pub(crate) enum BlobAuth {
    /// The account key (base64).
    Key(secrecy::SecretString),
    /// A SAS token (`sv=…&sig=…`).
    Sas(secrecy::SecretString),
    /// Entra ID bearer tokens.
    Entra(Arc<Tokens>),
}

impl BlobAuth {
    /// The setting a refusal points at.
    pub(crate) fn describe(
        &self,
        settings: &AzureSettings,
        from_connection_string: bool,
    ) -> String {
        if from_connection_string {
            return format!(
                "the connection string in {} (its AccountKey or SharedAccessSignature)",
                settings.connection_string_env
            );
        }
        match self {
            Self::Key(_) => format!("the account key in {}", settings.account_key_env),
            Self::Sas(_) => format!("the SAS token in {}", settings.sas_token_env),
            Self::Entra(tokens) => tokens.source().describe(),
        }
    }
}

/// One container (under the site's prefix), with its pooled client.
#[derive(Debug)]
pub(crate) struct BlobStore {
    name: String,
    store: MicrosoftAzure,
    prefix: String,
    account: String,
    container: String,
    /// Which credential, for errors.
    credential: String,
    multipart_threshold: u64,
    block_size: usize,
    block_concurrency: usize,
    page_size: usize,
}

/// A stored blob name as `object_store` takes it (already checked by `validate_key`).
fn path(key: &str) -> Result<Path, Rejected> {
    Path::parse(key).map_err(|err| Rejected::new(err.to_string()))
}

impl BlobStore {
    /// The store of `settings`' container at `endpoint` (the Blob service URL with the
    /// account), as account `account`, authenticated by `auth`.
    pub(crate) fn new(
        name: &str,
        settings: &AzureSettings,
        account: &str,
        endpoint: &str,
        auth: BlobAuth,
        credential: String,
        pool: usize,
    ) -> Result<Self, String> {
        let options = ClientOptions::new()
            .with_connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .with_timeout(Duration::from_millis(settings.request_timeout_ms))
            .with_pool_max_idle_per_host(pool.max(1))
            .with_allow_http(endpoint.starts_with("http://"));
        let no_retries = RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..RetryConfig::default()
        };
        let mut builder = MicrosoftAzureBuilder::new()
            .with_account(account)
            .with_container_name(&settings.container)
            .with_endpoint(endpoint.trim_end_matches('/').to_string())
            .with_allow_http(endpoint.starts_with("http://"))
            .with_retry(no_retries)
            .with_client_options(options)
            .with_disable_tagging(true);
        builder = match auth {
            BlobAuth::Key(key) => {
                builder.with_access_key(secrecy::ExposeSecret::expose_secret(&key).to_string())
            }
            BlobAuth::Sas(sas) => builder.with_config(
                AzureConfigKey::SasKey,
                secrecy::ExposeSecret::expose_secret(&sas).to_string(),
            ),
            BlobAuth::Entra(tokens) => builder.with_credentials(Arc::new(StorageTokens(tokens))),
        };
        let store = builder.build().map_err(|err| err.to_string())?;
        Ok(Self {
            name: name.to_string(),
            store,
            prefix: settings.key_prefix(),
            account: account.to_string(),
            container: settings.container.clone(),
            credential,
            multipart_threshold: settings.multipart_threshold,
            block_size: usize::try_from(settings.block_size).unwrap_or(usize::MAX),
            block_concurrency: settings.block_concurrency.max(1),
            page_size: settings.list_page_size,
        })
    }

    fn invalid(&self, err: Rejected) -> ProviderError {
        ProviderError::Invalid {
            provider: self.name.clone(),
            message: err.reason().to_string(),
        }
    }

    fn blob(&self, key: &str) -> Result<Path> {
        validate_key(key).map_err(|err| self.invalid(err))?;
        path(&format!("{}{key}", self.prefix)).map_err(|err| self.invalid(err))
    }

    /// Stores one object: a single Put Blob, or blocks for a large body.
    pub(crate) async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        let location = self.blob(&request.key)?;
        let attributes = attributes(&request).map_err(|err| self.invalid(err))?;
        let size = request.body.size();
        let fail = |err| self.classify(&request.key, Operation::Put, err);
        if size >= self.multipart_threshold
            && let Body::File { path: file, .. } = &request.body
        {
            let upload = self
                .store
                .put_multipart_opts(
                    &location,
                    PutMultipartOptions {
                        attributes,
                        ..PutMultipartOptions::default()
                    },
                )
                .await
                .map_err(fail)?;
            let mut writer = WriteMultipart::new_with_chunk_size(upload, self.block_size);
            let mut source = tokio::fs::File::open(file)
                .await
                .map_err(|err| ProviderError::from_io(&self.name, &request.key, err))?;
            let mut buffer = vec![0u8; self.block_size.min(8 * 1024 * 1024)];
            loop {
                let read = source
                    .read(&mut buffer)
                    .await
                    .map_err(|err| ProviderError::from_io(&self.name, &request.key, err))?;
                if read == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(self.block_concurrency)
                    .await
                    .map_err(fail)?;
                writer.write(&buffer[..read]);
            }
            writer.finish().await.map_err(fail)?;
        } else {
            let bytes = request
                .body
                .read_all()
                .await
                .map_err(|err| ProviderError::from_io(&self.name, &request.key, err))?;
            self.store
                .put_opts(
                    &location,
                    PutPayload::from(bytes),
                    PutOptions {
                        attributes,
                        ..PutOptions::default()
                    },
                )
                .await
                .map_err(fail)?;
        }
        Ok(request.meta())
    }

    /// An object's properties and metadata (a real HEAD).
    pub(crate) async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let location = self.blob(key)?;
        let result = self
            .store
            .get_opts(&location, GetOptions::new().with_head(true))
            .await
            .map_err(|err| self.classify(key, Operation::Head, err))?;
        Ok(object_meta(key, result.meta.size, &result.attributes))
    }

    /// An object's properties, metadata and bytes.
    pub(crate) async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        let location = self.blob(key)?;
        let result = self
            .store
            .get_opts(&location, GetOptions::new())
            .await
            .map_err(|err| self.classify(key, Operation::Get, err))?;
        let meta = object_meta(key, result.meta.size, &result.attributes);
        let bytes = result
            .bytes()
            .await
            .map_err(|err| self.classify(key, Operation::Get, err))?;
        Ok((meta, bytes))
    }

    /// One page of blobs under the site's prefix and `prefix` (names and sizes).
    pub(crate) async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        let full = format!("{}{prefix}", self.prefix);
        let page = self
            .store
            .list_paginated(
                (!full.is_empty()).then_some(full.as_str()),
                PaginatedListOptions {
                    max_keys: Some(self.page_size),
                    page_token: cursor,
                    ..PaginatedListOptions::default()
                },
            )
            .await
            .map_err(|err| self.classify(prefix, Operation::List, err))?;
        let objects = page
            .result
            .objects
            .into_iter()
            .filter_map(|object| {
                let key = object.location.as_ref().strip_prefix(&self.prefix)?;
                Some(ObjectMeta {
                    key: key.to_string(),
                    size: object.size,
                    ..ObjectMeta::default()
                })
            })
            .collect();
        Ok(ListPage {
            objects,
            next: page.page_token.filter(|token| !token.is_empty()),
        })
    }

    /// Deletes blobs through the Blob Batch API; missing ones count as deleted.
    pub(crate) async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let locations: Vec<(String, Path)> = keys
            .iter()
            .map(|key| Ok((key.clone(), self.blob(key)?)))
            .collect::<Result<_>>()?;
        if locations.is_empty() {
            return Ok(());
        }
        let first = locations[0].0.clone();
        let stream = futures_util::stream::iter(
            locations
                .into_iter()
                .map(|(_, location)| Ok(location))
                .collect::<Vec<_>>(),
        )
        .boxed();
        let mut results = self.store.delete_stream(stream);
        while let Some(result) = results.next().await {
            match result {
                Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(self.classify(&first, Operation::Delete, err)),
            }
        }
        Ok(())
    }

    /// Maps an `object_store` error onto our classes, naming the account, container and
    /// setting where that is what a user must fix.
    fn classify(&self, key: &str, operation: Operation, err: object_store::Error) -> ProviderError {
        let provider = self.name.clone();
        let text = err.to_string();
        let status = status_of(&text);
        let target = format!(
            "storage account `{}`, container `{}`",
            self.account, self.container
        );
        match err {
            object_store::Error::NotFound { .. } => match operation {
                // A missing container answers every call with 404.
                Operation::Head | Operation::Get if !text.contains("ContainerNotFound") => {
                    ProviderError::NotFound {
                        provider,
                        key: key.to_string(),
                    }
                }
                _ => ProviderError::Misconfigured {
                    provider,
                    message: format!(
                        "{target} does not exist (sites.NAME.azure.container, sites.NAME.azure.account)"
                    ),
                },
            },
            object_store::Error::Unauthenticated { .. } => ProviderError::Unauthenticated {
                provider,
                message: format!(
                    "{target}: {} was refused: {}",
                    self.credential,
                    short(&text)
                ),
            },
            object_store::Error::PermissionDenied { .. } => {
                // A wrong key or an expired SAS is a 403 too (AuthenticationFailed; a HEAD
                // has no body to say which, so a 403 on one is taken as the credential).
                let authentication = text.contains("AuthenticationFailed")
                    || text.contains("Signature")
                    || text.contains("AuthorizationFailure")
                    || matches!(operation, Operation::Head);
                if authentication {
                    ProviderError::Unauthenticated {
                        provider,
                        message: format!(
                            "{target}: {} was refused (wrong key, expired SAS token, or a network rule that blocks this machine)",
                            self.credential
                        ),
                    }
                } else if text.contains("KeyBasedAuthenticationNotPermitted") {
                    ProviderError::Misconfigured {
                        provider,
                        message: format!(
                            "{target} does not allow shared-key access: use a SAS token or Entra ID (sites.NAME.azure.credential)"
                        ),
                    }
                } else {
                    ProviderError::PermissionDenied {
                        provider,
                        message: format!(
                            "{target}: {} may not {} blobs (give it the Storage Blob Data Contributor role): {}",
                            self.credential,
                            operation.verb(),
                            short(&text)
                        ),
                    }
                }
            }
            object_store::Error::InvalidPath { .. } => ProviderError::Invalid {
                provider,
                message: short(&text),
            },
            object_store::Error::Generic { ref source, .. } => {
                if transport_failure(source.as_ref()) {
                    return ProviderError::Retryable {
                        provider,
                        message: format!("{} `{key}`: {}", operation.verb(), short(&text)),
                    };
                }
                match status {
                    // A list of a missing container (404 ContainerNotFound).
                    Some(404) => ProviderError::Misconfigured {
                        provider,
                        message: format!(
                            "{target} does not exist (sites.NAME.azure.container, sites.NAME.azure.account)"
                        ),
                    },
                    Some(429) => ProviderError::Throttled {
                        provider,
                        retry_after: None,
                    },
                    Some(503) if text.contains("ServerBusy") => ProviderError::Throttled {
                        provider,
                        retry_after: None,
                    },
                    Some(408 | 500..=599) => ProviderError::Retryable {
                        provider,
                        message: format!("{} `{key}`: {}", operation.verb(), short(&text)),
                    },
                    Some(400) if text.contains("InvalidMetadata") => ProviderError::Invalid {
                        provider,
                        message: format!("`{key}`: Azure refused the metadata names"),
                    },
                    Some(400 | 413 | 414) => ProviderError::Invalid {
                        provider,
                        message: format!("{} `{key}`: {}", operation.verb(), short(&text)),
                    },
                    Some(_) | None if text.contains("token") || text.contains("Token") => {
                        ProviderError::Unauthenticated {
                            provider,
                            message: format!("{target}: {}: {}", self.credential, short(&text)),
                        }
                    }
                    _ => ProviderError::Retryable {
                        provider,
                        message: format!("{} `{key}`: {}", operation.verb(), short(&text)),
                    },
                }
            }
            other => ProviderError::Generic {
                provider,
                source: Box::new(other),
            },
        }
    }
}

/// What a call was doing, for errors.
#[derive(Debug, Clone, Copy)]
enum Operation {
    Put,
    Head,
    Get,
    List,
    Delete,
}

impl Operation {
    fn verb(self) -> &'static str {
        match self {
            Self::Put => "write",
            Self::Head | Self::Get => "read",
            Self::List => "list",
            Self::Delete => "delete",
        }
    }
}

/// The HTTP status in an `object_store` error text ("…status code: 503 Service…").
fn status_of(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text.get(at..at + 3)?.parse().ok()
}

/// Whether the error chain holds a connection, request or timeout failure.
fn transport_failure(mut err: &(dyn std::error::Error + 'static)) -> bool {
    loop {
        if let Some(http) = err.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            return matches!(
                http.kind(),
                K::Connect | K::Request | K::Timeout | K::Interrupted
            );
        }
        match err.source() {
            Some(next) => err = next,
            None => return false,
        }
    }
}

/// An error text cut to its first line and 300 characters (service bodies are XML).
fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(300).collect()
}

/// Metadata names as Azure stores them (`-` → `_`), or why one cannot be stored.
fn azure_name(name: &str) -> Result<String, Rejected> {
    let ok = !name.is_empty()
        && name.as_bytes()[0].is_ascii_lowercase()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(Rejected::new(format!(
            "metadata key `{}`: Azure keeps only names of lowercase letters, digits and `-` (starting with a letter) exactly",
            name.escape_debug()
        )));
    }
    Ok(name.replace('-', "_"))
}

/// The blob properties and metadata of a put.
fn attributes(request: &PutRequest) -> Result<Attributes, Rejected> {
    let mut out = Attributes::new();
    for (attribute, value) in [
        (Attribute::ContentType, &request.content_type),
        (Attribute::ContentEncoding, &request.content_encoding),
        (Attribute::CacheControl, &request.cache_control),
    ] {
        if let Some(value) = value {
            check_header_value("property", value)?;
            out.insert(attribute, AttributeValue::from(value.clone()));
        }
    }
    for (name, value) in &request.metadata {
        let stored = azure_name(name)?;
        if stored == HEADERS_META {
            return Err(Rejected::new(format!("metadata key `{name}` is reserved")));
        }
        check_header_value(name, value)?;
        out.insert(
            Attribute::Metadata(stored.into()),
            AttributeValue::from(value.clone()),
        );
    }
    if !request.headers.is_empty() {
        request.check_headers()?;
        let json =
            serde_json::to_string(&request.headers).map_err(|e| Rejected::new(e.to_string()))?;
        out.insert(
            Attribute::Metadata(HEADERS_META.into()),
            AttributeValue::from(json),
        );
    }
    Ok(out)
}

/// What Azure says about a blob, as [`ObjectMeta`] (the inverse of [`attributes`]).
fn object_meta(key: &str, size: u64, attributes: &Attributes) -> ObjectMeta {
    let mut meta = ObjectMeta {
        key: key.to_string(),
        size,
        ..ObjectMeta::default()
    };
    for (attribute, value) in attributes.iter() {
        let value: &str = value.as_ref();
        match attribute {
            Attribute::ContentType => meta.content_type = Some(value.to_string()),
            Attribute::ContentEncoding => meta.content_encoding = Some(value.to_string()),
            Attribute::CacheControl => meta.cache_control = Some(value.to_string()),
            Attribute::Metadata(name) => {
                let name = name.to_ascii_lowercase();
                if name == HEADERS_META {
                    meta.headers =
                        serde_json::from_str::<BTreeMap<String, String>>(value).unwrap_or_default();
                } else {
                    meta.metadata
                        .insert(name.replace('_', "-"), value.to_string());
                }
            }
            _ => {}
        }
    }
    meta
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_names_map_to_azure_identifiers_and_back_exactly() {
        let mut request = PutRequest::bytes("a.js", Bytes::from_static(b"x"));
        request.metadata = BTreeMap::from([
            ("edgeship-hash".to_string(), "ab".repeat(32)),
            ("edgeship-encoding".to_string(), "br".to_string()),
        ]);
        request.headers = BTreeMap::from([("X-Robots-Tag".to_string(), "noindex".to_string())]);
        request.content_type = Some("text/javascript".into());
        let stored = attributes(&request).unwrap();
        assert!(
            stored
                .get(&Attribute::Metadata("edgeship_hash".into()))
                .is_some()
        );
        let meta = object_meta("a.js", 1, &stored);
        assert_eq!(meta, request.meta());
        for bad in ["Edgeship", "a_b", "1a", ""] {
            let mut request = request.clone();
            request.metadata = BTreeMap::from([(bad.to_string(), "v".to_string())]);
            assert!(attributes(&request).is_err(), "{bad}");
        }
    }

    #[test]
    fn statuses_are_read_from_error_texts() {
        assert_eq!(
            status_of("Server returned non-2xx status code: 503 Service Unavailable: <Error>"),
            Some(503)
        );
        assert_eq!(status_of("Error performing request"), None);
    }
}
