//! `azure`: Azure Blob Storage for storage, Azure Front Door (Standard/Premium) for purges.
//!
//! - [`AzureSettings`] is the `[sites.NAME.azure]` table (with an optional
//!   `[sites.NAME.azure.front_door]`): plain data, so configuration parses (and says "not
//!   available in this build") without the `azure` cargo feature.
//! - `AzureProvider` (feature `azure`) stores block blobs through `object_store`'s Azure
//!   backend (shared key, SAS or Entra ID bearer tokens; parallel block uploads above
//!   `multipart_threshold`; paginated listing; Blob Batch deletes), and purges through
//!   the ARM operation `POST …/afdEndpoints/{endpoint}/purge`, following its long-running
//!   operation to `Succeeded` or `Failed`.
//!
//! Credentials, as users have them, in this order when `credential = "auto"`: a
//! connection string (`AZURE_STORAGE_CONNECTION_STRING`), an account key
//! (`AZURE_STORAGE_KEY`), a SAS token (`AZURE_STORAGE_SAS_TOKEN`), a service principal
//! (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`), a managed identity
//! (App Service's `IDENTITY_ENDPOINT`). The instance metadata endpoint and the Azure CLI
//! are used only when `credential` names them, so a machine without credentials gets
//! one clear error instead of a request to a link-local address. Front Door purges need
//! an Entra ID token for `https://management.azure.com/` (a key or SAS cannot purge).
//!
//! Front Door facts (learn.microsoft.com, api-version 2025-06-01): at most 100 content
//! paths per purge call; a path is a single file (`/a/b.css`) or a directory wildcard
//! (`/a/*`, `/*` for everything); matching is case-insensitive and ignores query
//! strings; a purge takes up to 10 minutes to reach every edge.

#[cfg(feature = "azure")]
mod blob;
#[cfg(feature = "azure")]
mod entra;
#[cfg(feature = "azure")]
mod front_door;
#[cfg(feature = "azure")]
mod provider;
#[cfg(all(feature = "azure", feature = "test-util"))]
pub mod testing;

#[cfg(feature = "azure")]
pub use provider::{AzureProvider, Env};

use serde::{Deserialize, Serialize};

use crate::error::SettingError;
use crate::provider::validate_key;

/// The ARM endpoint Front Door purges go to.
pub const MANAGEMENT_URL: &str = "https://management.azure.com";

/// The Entra ID authority tokens come from (unless `AZURE_AUTHORITY_HOST` names another).
pub const AUTHORITY_HOST: &str = "https://login.microsoftonline.com";

/// The ARM api-version of the purge operation.
pub const API_VERSION: &str = "2025-06-01";

/// Azurite's well-known account (`devstoreaccount1`) key, for tests and local development.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";

/// Azurite's well-known account key.
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How the provider authenticates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Credential {
    /// The first of: connection string, account key, SAS token, service principal,
    /// App Service managed identity (see the module docs).
    #[default]
    Auto,
    /// `AZURE_STORAGE_CONNECTION_STRING` (or `connection_string_env`).
    ConnectionString,
    /// `AZURE_STORAGE_KEY` (or `account_key_env`).
    AccountKey,
    /// `AZURE_STORAGE_SAS_TOKEN` (or `sas_token_env`).
    Sas,
    /// A service principal: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`.
    ClientSecret,
    /// The machine's managed identity (App Service's `IDENTITY_ENDPOINT`, else the
    /// instance metadata endpoint); `AZURE_CLIENT_ID` picks a user-assigned identity.
    ManagedIdentity,
    /// `az account get-access-token` (a developer machine logged in with `az login`).
    AzureCli,
}

impl Credential {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::ConnectionString => "connection_string",
            Self::AccountKey => "account_key",
            Self::Sas => "sas",
            Self::ClientSecret => "client_secret",
            Self::ManagedIdentity => "managed_identity",
            Self::AzureCli => "azure_cli",
        }
    }
}

/// The `[sites.NAME.azure.front_door]` table: the Front Door endpoint in front of the
/// container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FrontDoorSettings {
    /// The subscription holding the profile (a GUID).
    pub subscription_id: String,
    /// The profile's resource group.
    pub resource_group: String,
    /// The Front Door (Standard/Premium) profile.
    pub profile: String,
    /// The endpoint (its name in the profile, not its hostname).
    pub endpoint: String,
    /// Domains to purge (`www.example.com`); empty purges every domain of the endpoint.
    pub domains: Vec<String>,
    /// The ARM endpoint (tests, sovereign clouds). Default `https://management.azure.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub management_url: Option<String>,
    /// The ARM api-version of the purge operation. Default `2025-06-01`.
    pub api_version: String,
    /// Most content paths in one purge call. Default (and Front Door's limit) 100.
    pub max_paths_per_call: usize,
}

impl Default for FrontDoorSettings {
    fn default() -> Self {
        Self {
            subscription_id: String::new(),
            resource_group: String::new(),
            profile: String::new(),
            endpoint: String::new(),
            domains: Vec::new(),
            management_url: None,
            api_version: API_VERSION.into(),
            max_paths_per_call: 100,
        }
    }
}

/// The `[sites.NAME.azure]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AzureSettings {
    /// The storage account (3–24 lowercase letters and digits). May be left out when the
    /// connection string names it.
    pub account: String,
    /// The blob container (required; it must exist).
    pub container: String,
    /// A key prefix inside the container (`"www/"`). Default: none.
    pub prefix: String,
    /// The Blob service URL with the account (Azurite:
    /// `http://127.0.0.1:10000/devstoreaccount1`). Default
    /// `https://<account>.blob.core.windows.net` (or the connection string's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// How to authenticate. Default `auto`.
    pub credential: Credential,
    /// The environment variable holding a connection string.
    pub connection_string_env: String,
    /// The environment variable holding the account key.
    pub account_key_env: String,
    /// The environment variable holding a SAS token.
    pub sas_token_env: String,
    /// Bodies at least this large are uploaded as blocks in parallel. Default 16 MiB.
    pub multipart_threshold: u64,
    /// Size of each block of such an upload. Default 8 MiB.
    pub block_size: u64,
    /// Blocks of one upload sent at once. Default 4.
    pub block_concurrency: usize,
    /// Most blobs in one listing page (Azure's most: 5,000). Default 5,000.
    pub list_page_size: usize,
    /// Longest wait for a connection, in milliseconds. Default 5 s.
    pub connect_timeout_ms: u64,
    /// Longest a single request may take, in milliseconds. Default 60 s.
    pub request_timeout_ms: u64,
    /// The Front Door endpoint purged after deploys. Without it purges do nothing (the
    /// container is served without a CDN, or by one edgeship does not manage).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub front_door: Option<FrontDoorSettings>,
}

impl Default for AzureSettings {
    fn default() -> Self {
        Self {
            account: String::new(),
            container: String::new(),
            prefix: String::new(),
            endpoint: None,
            credential: Credential::Auto,
            connection_string_env: "AZURE_STORAGE_CONNECTION_STRING".into(),
            account_key_env: "AZURE_STORAGE_KEY".into(),
            sas_token_env: "AZURE_STORAGE_SAS_TOKEN".into(),
            multipart_threshold: 16 * 1024 * 1024,
            block_size: 8 * 1024 * 1024,
            block_concurrency: 4,
            list_page_size: 5_000,
            connect_timeout_ms: 5_000,
            request_timeout_ms: 60_000,
            front_door: None,
        }
    }
}

/// A storage connection string's parts (`Key=Value;…`, as the portal shows it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConnectionString {
    /// `AccountName`.
    pub account: Option<String>,
    /// `AccountKey`.
    pub account_key: Option<String>,
    /// `SharedAccessSignature`.
    pub sas: Option<String>,
    /// `BlobEndpoint`, or one built from `DefaultEndpointsProtocol`, `AccountName` and
    /// `EndpointSuffix`.
    pub blob_endpoint: Option<String>,
}

impl ConnectionString {
    /// Parses a connection string; the error says what is wrong (never echoing a secret).
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut parsed = Self::default();
        let (mut protocol, mut suffix) = ("https".to_string(), "core.windows.net".to_string());
        let mut development = false;
        for part in text.trim().split(';').filter(|p| !p.trim().is_empty()) {
            let Some((key, value)) = part.split_once('=') else {
                return Err("a part has no `=` (expected Key=Value;Key=Value…)".into());
            };
            let value = value.trim().to_string();
            match key.trim() {
                "AccountName" => parsed.account = Some(value),
                "AccountKey" => parsed.account_key = Some(value),
                "SharedAccessSignature" => parsed.sas = Some(value),
                "BlobEndpoint" => parsed.blob_endpoint = Some(value.trim_end_matches('/').into()),
                "DefaultEndpointsProtocol" => protocol = value,
                "EndpointSuffix" => suffix = value,
                "UseDevelopmentStorage" => development = value.eq_ignore_ascii_case("true"),
                // Other services' endpoints and unknown keys do not concern Blob storage.
                _ => {}
            }
        }
        if development {
            parsed.account.get_or_insert_with(|| AZURITE_ACCOUNT.into());
            parsed.account_key.get_or_insert_with(|| AZURITE_KEY.into());
            parsed
                .blob_endpoint
                .get_or_insert_with(|| format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}"));
        }
        if parsed.blob_endpoint.is_none()
            && let Some(account) = &parsed.account
        {
            parsed.blob_endpoint = Some(format!("{protocol}://{account}.blob.{suffix}"));
        }
        if parsed.account_key.is_none() && parsed.sas.is_none() {
            return Err("it has neither AccountKey nor SharedAccessSignature".into());
        }
        if parsed.account.is_none() && parsed.blob_endpoint.is_none() {
            return Err("it has neither AccountName nor BlobEndpoint".into());
        }
        Ok(parsed)
    }
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_url(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

impl AzureSettings {
    /// The key prefix, normalised to end in `/` (or empty).
    pub fn key_prefix(&self) -> String {
        let trimmed = self.prefix.trim_matches('/');
        if trimmed.is_empty() {
            String::new()
        } else {
            format!("{trimmed}/")
        }
    }

    /// Checks the settings before any request; the error names the field.
    pub fn validate(&self) -> Result<(), SettingError> {
        let account_ok = (3..=24).contains(&self.account.len())
            && self
                .account
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if !self.account.is_empty() && !account_ok {
            return Err(SettingError::new(
                "account",
                format!(
                    "`{}` is not a storage account name (3–24 lowercase letters and digits)",
                    self.account.escape_debug()
                ),
            ));
        }
        if self.account.is_empty() && self.credential != Credential::ConnectionString {
            return Err(SettingError::new(
                "account",
                "is required: the storage account (or set credential = \"connection_string\" to take it from the connection string)",
            ));
        }
        let container_ok = (3..=63).contains(&self.container.len())
            && self
                .container
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !self.container.starts_with('-')
            && !self.container.ends_with('-')
            && !self.container.contains("--");
        if !container_ok {
            return Err(SettingError::new(
                "container",
                format!(
                    "`{}` is not a container name (3–63 lowercase letters, digits and single `-`)",
                    self.container.escape_debug()
                ),
            ));
        }
        if !self.prefix.trim_matches('/').is_empty() {
            validate_key(self.prefix.trim_matches('/')).map_err(|reason| {
                SettingError::new("prefix", format!("is not a key prefix: {reason}"))
            })?;
        }
        if let Some(url) = &self.endpoint
            && !is_url(url)
        {
            return Err(SettingError::new(
                "endpoint",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        for (field, name) in [
            ("connection_string_env", &self.connection_string_env),
            ("account_key_env", &self.account_key_env),
            ("sas_token_env", &self.sas_token_env),
        ] {
            if !is_env_name(name) {
                return Err(SettingError::new(
                    field,
                    format!(
                        "`{}` is not an environment variable name",
                        name.escape_debug()
                    ),
                ));
            }
        }
        for (field, value) in [
            ("block_size", self.block_size),
            ("block_concurrency", self.block_concurrency as u64),
            ("list_page_size", self.list_page_size as u64),
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("request_timeout_ms", self.request_timeout_ms),
        ] {
            if value == 0 {
                return Err(SettingError::new(field, "must be more than 0"));
            }
        }
        if self.list_page_size > 5_000 {
            return Err(SettingError::new(
                "list_page_size",
                "Azure lists at most 5,000 blobs per page",
            ));
        }
        if self.block_size > 4000 * 1024 * 1024 {
            return Err(SettingError::new(
                "block_size",
                "Azure blocks are at most 4,000 MiB",
            ));
        }
        if let Some(front_door) = &self.front_door {
            front_door.validate()?;
        }
        Ok(())
    }
}

/// An ARM resource name: letters, digits, `-`, `_`, `.`, `(` and `)`.
fn is_resource_name(name: &str) -> bool {
    (1..=90).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.()".contains(&b))
}

fn is_guid(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

impl FrontDoorSettings {
    /// The ARM endpoint, without a trailing `/`.
    pub fn management_url(&self) -> String {
        self.management_url
            .as_deref()
            .unwrap_or(MANAGEMENT_URL)
            .trim_end_matches('/')
            .to_string()
    }

    /// The purge operation's URL.
    pub fn purge_url(&self) -> String {
        format!(
            "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Cdn/profiles/{}/afdEndpoints/{}/purge?api-version={}",
            self.management_url(),
            self.subscription_id,
            self.resource_group,
            self.profile,
            self.endpoint,
            self.api_version
        )
    }

    /// Checks the table; the error names the field (as `front_door.<field>`).
    pub fn validate(&self) -> Result<(), SettingError> {
        if !is_guid(&self.subscription_id) {
            return Err(SettingError::new(
                "front_door.subscription_id",
                format!(
                    "`{}` is not a subscription id (a GUID like 00000000-0000-0000-0000-000000000000)",
                    self.subscription_id.escape_debug()
                ),
            ));
        }
        for (field, value) in [
            ("front_door.resource_group", &self.resource_group),
            ("front_door.profile", &self.profile),
            ("front_door.endpoint", &self.endpoint),
        ] {
            if !is_resource_name(value) {
                return Err(SettingError::new(
                    field,
                    format!(
                        "`{}` is not an Azure resource name (letters, digits, `-`, `_`, `.`)",
                        value.escape_debug()
                    ),
                ));
            }
        }
        if let Some(domain) = self.domains.iter().find(|d| {
            d.is_empty()
                || d.starts_with('*')
                || !d
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        }) {
            return Err(SettingError::new(
                "front_door.domains",
                format!(
                    "`{}` is not a domain Front Door can purge (a hostname; wildcard domains cannot be purged)",
                    domain.escape_debug()
                ),
            ));
        }
        if let Some(url) = &self.management_url
            && !is_url(url)
        {
            return Err(SettingError::new(
                "front_door.management_url",
                format!("`{url}` is not an http:// or https:// URL"),
            ));
        }
        if self.api_version.is_empty()
            || !self
                .api_version
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(SettingError::new(
                "front_door.api_version",
                "is not an api-version (like 2025-06-01)",
            ));
        }
        if !(1..=100).contains(&self.max_paths_per_call) {
            return Err(SettingError::new(
                "front_door.max_paths_per_call",
                "must be 1 to 100 (Front Door takes at most 100 paths per purge)",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> AzureSettings {
        AzureSettings {
            account: "wwwassets".into(),
            container: "site".into(),
            front_door: Some(FrontDoorSettings {
                subscription_id: "0b1f6471-1bf0-4dda-aec3-cb9272f09590".into(),
                resource_group: "web-rg".into(),
                profile: "web".into(),
                endpoint: "www".into(),
                ..FrontDoorSettings::default()
            }),
            ..AzureSettings::default()
        }
    }

    #[test]
    fn settings_are_checked_field_by_field() {
        valid().validate().unwrap();
        let front_door = |change: fn(&mut FrontDoorSettings)| {
            let mut settings = valid();
            change(settings.front_door.as_mut().unwrap());
            settings
        };
        let cases: Vec<(AzureSettings, &str)> = vec![
            (
                AzureSettings {
                    account: "Www".into(),
                    ..valid()
                },
                "account",
            ),
            (
                AzureSettings {
                    account: String::new(),
                    ..valid()
                },
                "account",
            ),
            (
                AzureSettings {
                    container: "a--b".into(),
                    ..valid()
                },
                "container",
            ),
            (
                AzureSettings {
                    prefix: "a/../b".into(),
                    ..valid()
                },
                "prefix",
            ),
            (
                AzureSettings {
                    endpoint: Some("127.0.0.1:10000".into()),
                    ..valid()
                },
                "endpoint",
            ),
            (
                AzureSettings {
                    account_key_env: "MY-KEY".into(),
                    ..valid()
                },
                "account_key_env",
            ),
            (
                AzureSettings {
                    list_page_size: 5001,
                    ..valid()
                },
                "list_page_size",
            ),
            (
                front_door(|f| f.subscription_id = "abc".into()),
                "front_door.subscription_id",
            ),
            (
                front_door(|f| f.endpoint = "www/x".into()),
                "front_door.endpoint",
            ),
            (
                front_door(|f| f.domains = vec!["*.example.com".into()]),
                "front_door.domains",
            ),
            (
                front_door(|f| f.max_paths_per_call = 101),
                "front_door.max_paths_per_call",
            ),
        ];
        for (settings, field) in cases {
            assert_eq!(
                settings.validate().unwrap_err().field,
                field,
                "{settings:?}"
            );
        }
        // The account may come from the connection string.
        AzureSettings {
            account: String::new(),
            credential: Credential::ConnectionString,
            ..valid()
        }
        .validate()
        .unwrap();
    }

    #[test]
    fn connection_strings_parse_as_the_portal_and_azurite_write_them() {
        let portal = "DefaultEndpointsProtocol=https;AccountName=wwwassets;AccountKey=a2V5PQ==;EndpointSuffix=core.windows.net";
        let parsed = ConnectionString::parse(portal).unwrap();
        assert_eq!(parsed.account.as_deref(), Some("wwwassets"));
        assert_eq!(
            parsed.account_key.as_deref(),
            Some("a2V5PQ=="),
            "values keep their `=`"
        );
        assert_eq!(
            parsed.blob_endpoint.as_deref(),
            Some("https://wwwassets.blob.core.windows.net")
        );
        let azurite = format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1/;"
        );
        let parsed = ConnectionString::parse(&azurite).unwrap();
        assert_eq!(
            parsed.blob_endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
        let sas = ConnectionString::parse(
            "BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022-11-02&sig=x%3D",
        )
        .unwrap();
        assert_eq!(sas.sas.as_deref(), Some("sv=2022-11-02&sig=x%3D"));
        let dev = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.account.as_deref(), Some(AZURITE_ACCOUNT));
        for bad in ["AccountName=a", "nonsense", "AccountKey=secret"] {
            let err = ConnectionString::parse(bad).unwrap_err();
            assert!(!err.contains("secret"), "{err}");
        }
    }

    #[test]
    fn the_purge_url_names_the_endpoint_and_api_version() {
        let settings = valid().front_door.unwrap();
        assert_eq!(
            settings.purge_url(),
            "https://management.azure.com/subscriptions/0b1f6471-1bf0-4dda-aec3-cb9272f09590/resourceGroups/web-rg/providers/Microsoft.Cdn/profiles/web/afdEndpoints/www/purge?api-version=2025-06-01"
        );
    }
}
