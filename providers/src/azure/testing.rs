//! Test support for the `azure` provider: containers on Azurite (the Blob emulator), and
//! a fake of the two Azure services that have no emulator — Entra ID's token endpoint and
//! Azure Resource Manager's Front Door purge with its long-running operation.
//!
//! The fake enforces what the real services document: the client-credentials form (grant
//! type, client id and secret, the ARM scope), the bearer token and the api-version on
//! every ARM call, the purge body (`contentPaths`: 1 to 100 paths, each starting with
//! `/`, `*` only as a trailing `/*`; `domains`: hostnames), and answers as they do: 202
//! with `Azure-AsyncOperation` and `Location`, then `InProgress` until the operation
//! ends `Succeeded` (or `Failed`), and the ARM and Entra error envelopes.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{AZURITE_ACCOUNT, AZURITE_KEY, AzureSettings, FrontDoorSettings};
use crate::fake_http::FakeRequest;

/// The tenant the fake knows.
pub const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
/// The service principal's client id.
pub const CLIENT_ID: &str = "4a1aa1d5-c567-49d0-ad0b-cd957a47f842";
/// Its secret.
pub const CLIENT_SECRET: &str = "fake-client-secret~0123456789";
/// The subscription of the fake profile.
pub const SUBSCRIPTION: &str = "0b1f6471-1bf0-4dda-aec3-cb9272f09590";
/// The fake profile's resource group, profile and endpoint.
pub const RESOURCE_GROUP: &str = "web-rg";
/// The profile.
pub const PROFILE: &str = "web";
/// The endpoint.
pub const ENDPOINT: &str = "www";

const ACCESS_TOKEN: &str = "eyJ0eXAiOiJKV1QifQ.fake-arm-token.signature";

/// One purge the fake accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct FakePurge {
    /// The operation's id.
    pub operation: String,
    /// `contentPaths`.
    pub content_paths: Vec<String>,
    /// `domains`.
    pub domains: Vec<String>,
}

#[derive(Debug, Default)]
struct State {
    /// Every request, in order: method, target, status answered.
    calls: Vec<(String, String, u16)>,
    purges: Vec<FakePurge>,
    /// Polls answered `InProgress` before an operation ends.
    polls_before_end: u32,
    /// Operation id → (polls so far, whether it fails).
    operations: Vec<(String, u32, bool)>,
    /// The next purge's operation ends `Failed`.
    fail_next: bool,
    /// Tokens issued.
    tokens: u32,
}

/// The running fake (token endpoint and ARM on one port); it stops when dropped.
#[derive(Debug)]
pub struct FakeAzure {
    base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeAzure {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn arm_error(status: u16, code: &str, message: &str) -> (u16, Vec<(String, String)>, Value) {
    (
        status,
        vec![],
        json!({ "error": { "code": code, "message": message } }),
    )
}

impl FakeAzure {
    /// Starts the fake; operations answer `InProgress` once, then end.
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            polls_before_end: 1,
            ..State::default()
        }));
        let shared = Arc::clone(&state);
        let base_cell: Arc<Mutex<String>> = Arc::default();
        let base_for_handler = Arc::clone(&base_cell);
        let (base, task) = crate::fake_http::start(move |request| {
            // Operation URLs name the host the request was sent to, as ARM's do: behind
            // a proxy (the network fault tests) that is the proxy.
            let base = match request.header("host") {
                Some(host) => format!("http://{host}"),
                None => base_for_handler
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone(),
            };
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            let answer = answer(&mut state, &base, &request);
            state
                .calls
                .push((request.method.clone(), request.target.clone(), answer.0));
            answer
        })
        .await;
        *base_cell.lock().unwrap_or_else(|p| p.into_inner()) = base.clone();
        Self { base, state, task }
    }

    /// The fake's base URL: the authority host and the ARM endpoint.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The environment a site needs to authenticate against the fake.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            ("AZURE_CLIENT_SECRET", CLIENT_SECRET.to_string()),
            ("AZURE_AUTHORITY_HOST", self.base.clone()),
        ]
    }

    /// Front Door settings of the fake endpoint.
    pub fn front_door(&self) -> FrontDoorSettings {
        FrontDoorSettings {
            subscription_id: SUBSCRIPTION.into(),
            resource_group: RESOURCE_GROUP.into(),
            profile: PROFILE.into(),
            endpoint: ENDPOINT.into(),
            management_url: Some(self.base.clone()),
            ..FrontDoorSettings::default()
        }
    }

    /// Operations answer `InProgress` this many times before they end.
    pub fn polls_before_end(&self, polls: u32) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .polls_before_end = polls;
    }

    /// The next purge's operation ends `Failed`.
    pub fn fail_next(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .fail_next = true;
    }

    /// The purges accepted, in order.
    pub fn purges(&self) -> Vec<FakePurge> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .purges
            .clone()
    }

    /// Every request: method, target and the status answered.
    pub fn calls(&self) -> Vec<(String, String, u16)> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .clone()
    }

    /// Tokens the fake issued.
    pub fn tokens_issued(&self) -> u32 {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).tokens
    }
}

/// Decodes an `application/x-www-form-urlencoded` body.
fn form(body: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(body);
    text.split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (decode(k), decode(v))
        })
        .collect()
}

fn answer(
    state: &mut State,
    base: &str,
    request: &FakeRequest,
) -> (u16, Vec<(String, String)>, Value) {
    let path = request.path();
    if let Some(tenant) = path
        .strip_prefix('/')
        .and_then(|p| p.strip_suffix("/oauth2/v2.0/token"))
    {
        return token(state, tenant, request);
    }
    // ARM: a bearer token and an api-version on every call.
    if request.header("authorization") != Some(&format!("Bearer {ACCESS_TOKEN}")) {
        return arm_error(
            401,
            "InvalidAuthenticationToken",
            "The access token is invalid.",
        );
    }
    let Some(version) = request.query("api-version") else {
        return arm_error(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        );
    };
    if !version.starts_with("20") || version.len() < 10 {
        return arm_error(
            400,
            "InvalidApiVersionParameter",
            &format!("The api-version '{version}' is invalid."),
        );
    }
    let purge_path = format!(
        "/subscriptions/{SUBSCRIPTION}/resourceGroups/{RESOURCE_GROUP}/providers/Microsoft.Cdn/profiles/{PROFILE}/afdEndpoints/{ENDPOINT}/purge"
    );
    let operations =
        format!("/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Cdn/operationresults/");
    if request.method == "POST" && path == purge_path {
        return purge(state, base, version, request);
    }
    if request.method == "GET"
        && let Some(id) = path.strip_prefix(&operations)
    {
        let polls_before_end = state.polls_before_end;
        let Some(operation) = state.operations.iter_mut().find(|(op, _, _)| op == id) else {
            return arm_error(404, "NotFound", "The operation was not found.");
        };
        operation.1 += 1;
        let status = match (operation.1 > polls_before_end, operation.2) {
            (false, _) => "InProgress",
            (true, false) => "Succeeded",
            (true, true) => "Failed",
        };
        let mut body = json!({ "name": id, "status": status, "startTime": "2026-12-02T06:00:00Z" });
        if status == "Failed" {
            body["error"] = json!({ "code": "BadRequest", "message": "Purge failed for one or more content paths." });
        }
        return (200, vec![], body);
    }
    if path.starts_with(&format!("/subscriptions/{SUBSCRIPTION}/")) {
        return arm_error(
            404,
            "ResourceNotFound",
            "The Resource 'Microsoft.Cdn/profiles/afdEndpoints' under resource group was not found.",
        );
    }
    arm_error(
        404,
        "SubscriptionNotFound",
        "The subscription could not be found.",
    )
}

fn token(
    state: &mut State,
    tenant: &str,
    request: &FakeRequest,
) -> (u16, Vec<(String, String)>, Value) {
    let refuse = |status: u16, error: &str, description: &str| {
        (
            status,
            vec![],
            json!({ "error": error, "error_description": description, "error_codes": [], "trace_id": "t", "correlation_id": "c" }),
        )
    };
    if request.method != "POST"
        || !request
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        return refuse(
            400,
            "invalid_request",
            "AADSTS900144: The request body must contain the 'grant_type' parameter.",
        );
    }
    if tenant != TENANT {
        return refuse(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let form = form(&request.body);
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("client_credentials") {
        return refuse(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != Some(CLIENT_ID) {
        return refuse(
            400,
            "unauthorized_client",
            "AADSTS700016: Application not found in the directory.",
        );
    }
    if field("client_secret") != Some(CLIENT_SECRET) {
        return refuse(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    if field("scope") != Some("https://management.azure.com/.default") {
        return refuse(
            400,
            "invalid_scope",
            "AADSTS70011: The provided value for scope is not valid.",
        );
    }
    state.tokens += 1;
    (
        200,
        vec![],
        json!({ "token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": ACCESS_TOKEN }),
    )
}

fn purge(
    state: &mut State,
    base: &str,
    version: &str,
    request: &FakeRequest,
) -> (u16, Vec<(String, String)>, Value) {
    if !request
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json"))
    {
        return arm_error(
            415,
            "UnsupportedMediaType",
            "The content media type is not supported.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return arm_error(
            400,
            "InvalidRequestContent",
            "The request content was invalid and could not be deserialized.",
        );
    };
    let strings = |value: &Value| -> Option<Vec<String>> {
        value
            .as_array()?
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect()
    };
    let Some(paths) = strings(&body["contentPaths"]) else {
        return arm_error(400, "InvalidRequestContent", "contentPaths is required.");
    };
    if paths.is_empty() || paths.len() > 100 {
        return arm_error(
            400,
            "BadRequest",
            "The number of content paths must be between 1 and 100.",
        );
    }
    if let Some(bad) = paths.iter().find(|p| {
        !p.starts_with('/')
            || p.contains("://")
            || (p.contains('*') && !(p.ends_with("/*") && p.matches('*').count() == 1))
            || p.contains(' ')
    }) {
        return arm_error(
            400,
            "BadRequest",
            &format!("Content path '{bad}' is not valid."),
        );
    }
    let domains = match &body.get("domains") {
        None | Some(Value::Null) => Vec::new(),
        Some(value) => match strings(value) {
            Some(domains) if domains.iter().all(|d| !d.starts_with('*') && !d.is_empty()) => {
                domains
            }
            _ => return arm_error(400, "BadRequest", "domains must be a list of domain names."),
        },
    };
    let operation = format!("op-{}", state.operations.len() + 1);
    let fails = std::mem::take(&mut state.fail_next);
    state.operations.push((operation.clone(), 0, fails));
    state.purges.push(FakePurge {
        operation: operation.clone(),
        content_paths: paths,
        domains,
    });
    let url = format!(
        "{base}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Cdn/operationresults/{operation}?api-version={version}"
    );
    (
        202,
        vec![
            ("Azure-AsyncOperation".into(), url.clone()),
            ("Location".into(), url),
            ("Retry-After".into(), "1".into()),
        ],
        Value::Null,
    )
}

/// Settings of a site in `container` on Azurite's Blob service at `endpoint`
/// (`http://127.0.0.1:PORT/devstoreaccount1`), with Azurite's well-known key.
pub fn azurite_settings(endpoint: &str, container: &str) -> AzureSettings {
    AzureSettings {
        account: AZURITE_ACCOUNT.into(),
        container: container.into(),
        endpoint: Some(endpoint.trim_end_matches('/').into()),
        ..AzureSettings::default()
    }
}

/// The environment holding Azurite's account key, for [`super::AzureProvider::with_env`].
pub fn azurite_env() -> super::Env {
    Arc::new(|name| (name == "AZURE_STORAGE_KEY").then(|| AZURITE_KEY.to_string()))
}

/// A request to Azurite at `url`, signed with its account key (for what object_store
/// cannot do: create containers, read block lists).
fn signed(method: &str, url: &str) -> reqwest::RequestBuilder {
    use object_store::azure::{AzureAccessKey, AzureAuthorizer, AzureCredential};
    let key = AzureAccessKey::try_new(AZURITE_KEY).expect("Azurite's key is base64");
    let credential = AzureCredential::AccessKey(key);
    let mut request = http::Request::builder()
        .method(method)
        .uri(url)
        .header("content-length", "0")
        .body(object_store::client::HttpRequestBody::from(Vec::<u8>::new()))
        .expect("an Azurite request");
    AzureAuthorizer::new(&credential, AZURITE_ACCOUNT)
        .try_authorize(&mut request)
        .expect("sign the request");
    let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
    let mut builder = reqwest::Client::new()
        .request(method, url)
        .body(Vec::<u8>::new());
    for (name, value) in request.headers() {
        builder = builder.header(name.as_str(), value.as_bytes());
    }
    builder
}

/// Creates `container` on Azurite at `endpoint` (object_store cannot create containers).
/// An existing container is fine.
pub async fn create_container(endpoint: &str, container: &str) {
    let url = format!(
        "{}/{container}?restype=container",
        endpoint.trim_end_matches('/')
    );
    let response = signed("PUT", &url).send().await.unwrap_or_else(|err| {
        panic!("Azurite at {endpoint} is not reachable ({err}); scripts/test starts it")
    });
    let status = response.status().as_u16();
    assert!(
        status == 201 || status == 409,
        "creating container {container}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

/// How many committed blocks the blob `name` in `container` has (1 for a single put).
pub async fn committed_blocks(endpoint: &str, container: &str, name: &str) -> usize {
    let url = format!(
        "{}/{container}/{name}?comp=blocklist&blocklisttype=committed",
        endpoint.trim_end_matches('/')
    );
    let response = signed("GET", &url).send().await.expect("Azurite answers");
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(status.is_success(), "block list of {name}: {status} {text}");
    text.matches("<Block>").count()
}

/// The variable naming the shared Azurite's Blob endpoint (`scripts/test` sets it).
pub const AZURITE_ENV: &str = "EDGESHIP_TEST_AZURITE";

/// The shared Azurite's Blob endpoint; panics with what to do when it is not running.
pub fn azurite_endpoint() -> String {
    let Ok(url) = std::env::var(AZURITE_ENV) else {
        panic!(
            "{AZURITE_ENV} is not set: the Azure tests need Azurite. Run them through \
             `scripts/test`, which installs and starts it (or run `scripts/azurite start` and \
             set {AZURITE_ENV} to the endpoint it prints)."
        );
    };
    let address = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    if let Err(err) = std::net::TcpStream::connect(&address) {
        panic!("Azurite at {url} is not reachable ({err}); `scripts/azurite start` starts it");
    }
    url.trim_end_matches('/').to_string()
}

/// A container name no other test (or test run) uses.
pub fn unique_container(tag: &str) -> String {
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() % 1_000_000_000_000)
        .unwrap_or_default();
    let tag: String = tag
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(20)
        .collect();
    format!(
        "{}-{nanos}-{}",
        tag.trim_matches('-'),
        COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

/// An environment of exactly `vars`, for [`super::AzureProvider::with_env`].
pub fn env_of(vars: Vec<(&'static str, String)>) -> super::Env {
    Arc::new(move |name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
}

/// Every blob in `container` with its ETag (which changes whenever the blob is written).
pub async fn blobs(endpoint: &str, container: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    let mut marker = String::new();
    loop {
        let url = format!(
            "{}/{container}?restype=container&comp=list&marker={marker}",
            endpoint.trim_end_matches('/')
        );
        let text = signed("GET", &url)
            .send()
            .await
            .expect("Azurite answers")
            .text()
            .await
            .unwrap_or_default();
        let field = |blob: &str, tag: &str| -> String {
            let open = format!("<{tag}>");
            let close = format!("</{tag}>");
            blob.split_once(&open)
                .and_then(|(_, rest)| rest.split_once(&close))
                .map(|(value, _)| value.to_string())
                .unwrap_or_default()
        };
        for blob in text.split("<Blob>").skip(1) {
            let name = field(blob, "Name")
                .replace("&amp;", "&")
                .replace("&lt;", "<")
                .replace("&gt;", ">");
            out.insert(name, field(blob, "Etag"));
        }
        marker = field(&text, "NextMarker");
        if marker.is_empty() {
            return out;
        }
    }
}
