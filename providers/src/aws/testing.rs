//! Helpers for tests against moto server (feature `test-util`): where moto is, clients
//! and settings pointing at it, unique buckets, a CloudFront distribution, and a private
//! moto with IAM authentication switched on.
//!
//! `scripts/test` starts moto and exports `EDGESHIP_TEST_MOTO` (its URL) and
//! `EDGESHIP_TEST_MOTO_SERVER` (the `moto_server` program). Tests fail, loudly, when they
//! are missing: a test that needs moto never skips.
#![allow(clippy::missing_panics_doc)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;

use super::AwsSettings;

/// The variable holding moto's URL.
pub const MOTO_ENV: &str = "EDGESHIP_TEST_MOTO";

/// The variable holding the `moto_server` program.
pub const MOTO_SERVER_ENV: &str = "EDGESHIP_TEST_MOTO_SERVER";

/// Access key moto accepts while it checks no signatures.
pub const ACCESS_KEY: &str = "test";

/// Secret key moto accepts while it checks no signatures.
pub const SECRET_KEY: &str = "testsecret";

/// The region of every test bucket.
pub const REGION: &str = "us-east-1";

/// moto's URL, after checking that it answers. Panics, naming `scripts/test`, when moto
/// is not configured or not reachable.
pub fn moto_endpoint() -> String {
    let Ok(url) = std::env::var(MOTO_ENV) else {
        panic!(
            "{MOTO_ENV} is not set: the AWS tests need moto server. Run them through \
             `scripts/test`, which installs and starts it (or set {MOTO_ENV}=http://127.0.0.1:PORT)."
        );
    };
    let address = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    if let Err(err) = TcpStream::connect(&address) {
        panic!(
            "moto server at {url} ({MOTO_ENV}) is not reachable: {err}. Run `scripts/test`, \
             which starts it."
        );
    }
    url
}

/// An SDK configuration with static credentials, region [`REGION`].
pub fn sdk_config(access_key: &str, secret_key: &str) -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            access_key, secret_key, None, None, "static",
        )))
        .build()
}

/// Settings of a site in `bucket` on the moto at `endpoint`.
pub fn moto_settings(endpoint: &str, bucket: &str) -> AwsSettings {
    AwsSettings {
        region: Some(REGION.into()),
        endpoint: Some(endpoint.into()),
        cloudfront_endpoint: Some(endpoint.into()),
        force_path_style: true,
        ..AwsSettings::for_bucket(bucket)
    }
}

/// An S3 client for the moto at `endpoint` (for setting up and checking).
pub fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::config::Builder::from(&sdk_config(ACCESS_KEY, SECRET_KEY))
        .endpoint_url(endpoint)
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// A CloudFront client for the moto at `endpoint`.
pub fn cloudfront_client(endpoint: &str) -> aws_sdk_cloudfront::Client {
    let config = aws_sdk_cloudfront::config::Builder::from(&sdk_config(ACCESS_KEY, SECRET_KEY))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_cloudfront::Client::from_conf(config)
}

/// A bucket name no other test (or test run) uses: tests share one moto and run in
/// parallel, so none may reset it.
pub fn unique_bucket(tag: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
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
        .take(24)
        .collect();
    format!(
        "es-{tag}-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates `bucket` on the moto at `endpoint`.
pub async fn create_bucket(endpoint: &str, bucket: &str) {
    s3_client(endpoint)
        .create_bucket()
        .bucket(bucket)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create bucket {bucket}: {}",
                aws_sdk_s3::error::DisplayErrorContext(e)
            )
        });
}

/// Creates a CloudFront distribution in front of `bucket` on the moto at `endpoint`;
/// returns its id.
pub async fn create_distribution(endpoint: &str, bucket: &str) -> String {
    use aws_sdk_cloudfront::types::{
        DefaultCacheBehavior, DistributionConfig, Origin, Origins, S3OriginConfig,
        ViewerProtocolPolicy,
    };
    let origin = Origin::builder()
        .id("assets")
        .domain_name(format!("{bucket}.s3.amazonaws.com"))
        .s3_origin_config(S3OriginConfig::builder().origin_access_identity("").build())
        .build()
        .expect("origin");
    let behavior = DefaultCacheBehavior::builder()
        .target_origin_id("assets")
        .viewer_protocol_policy(ViewerProtocolPolicy::RedirectToHttps)
        // The managed CachingOptimized policy.
        .cache_policy_id("658327ea-f89d-4fab-a63d-7e88639e58f6")
        .build()
        .expect("behavior");
    let config = DistributionConfig::builder()
        .caller_reference(unique_bucket("distribution"))
        .comment(format!("edgeship test {bucket}"))
        .enabled(true)
        .origins(
            Origins::builder()
                .quantity(1)
                .items(origin)
                .build()
                .expect("origins"),
        )
        .default_cache_behavior(behavior)
        .build()
        .expect("distribution config");
    let out = cloudfront_client(endpoint)
        .create_distribution()
        .distribution_config(config)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "create distribution: {}",
                aws_sdk_cloudfront::error::DisplayErrorContext(e)
            )
        });
    out.distribution().expect("a distribution").id().to_string()
}

/// The paths of every invalidation of `distribution`, oldest first, with their caller
/// references.
pub async fn invalidations(endpoint: &str, distribution: &str) -> Vec<(String, Vec<String>)> {
    let cf = cloudfront_client(endpoint);
    let list = cf
        .list_invalidations()
        .distribution_id(distribution)
        .send()
        .await
        .expect("list invalidations");
    let mut found = Vec::new();
    let ids: Vec<String> = list
        .invalidation_list()
        .map(|l| l.items().iter().map(|i| i.id().to_string()).collect())
        .unwrap_or_default();
    for id in ids {
        let out = cf
            .get_invalidation()
            .distribution_id(distribution)
            .id(&id)
            .send()
            .await
            .expect("get invalidation");
        let batch = out
            .invalidation()
            .expect("an invalidation")
            .invalidation_batch()
            .expect("its batch");
        let paths = batch
            .paths()
            .map(|p| p.items().to_vec())
            .unwrap_or_default();
        found.push((batch.caller_reference().to_string(), paths));
    }
    found.reverse();
    found
}

/// A moto server of the test's own, with IAM authentication on: requests must be signed
/// with an access key moto knows, and need a policy allowing them. Stopped when dropped.
pub struct AuthMoto {
    child: Child,
    /// Its URL.
    pub endpoint: String,
    /// An access key id moto knows, of a user without any policy.
    pub access_key: String,
    /// That key's secret.
    pub secret_key: String,
}

impl AuthMoto {
    /// Starts `moto_server` (from [`MOTO_SERVER_ENV`]) on a free loopback port with two
    /// unauthenticated actions allowed, uses them to create an IAM user and its access
    /// key, and returns once moto checks every request after that.
    pub fn start() -> Self {
        let Ok(program) = std::env::var(MOTO_SERVER_ENV) else {
            panic!(
                "{MOTO_SERVER_ENV} is not set: run the tests through `scripts/test`, which \
                 installs moto server and exports it."
            );
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(&program)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("INITIAL_NO_AUTH_ACTION_COUNT", "2")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
        let address = format!("127.0.0.1:{port}");
        let mut moto = Self {
            child,
            endpoint: format!("http://{address}"),
            access_key: String::new(),
            secret_key: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(&address).is_err() {
            assert!(
                Instant::now() < deadline,
                "{program} did not listen on {address} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        iam_call(&address, "Action=CreateUser&UserName=deployer");
        let key = iam_call(&address, "Action=CreateAccessKey&UserName=deployer");
        moto.access_key = xml_field(&key, "AccessKeyId");
        moto.secret_key = xml_field(&key, "SecretAccessKey");
        moto
    }
}

impl Drop for AuthMoto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One IAM query-API call, unsigned (moto allows the first ones; the Authorization
/// header only tells it the service).
fn iam_call(address: &str, action: &str) -> String {
    let body = format!("{action}&Version=2010-05-08");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=AKIAEDGESHIP/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=00\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut stream = TcpStream::connect(address).expect("connect to moto");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    assert!(answer.starts_with("HTTP/1.1 200"), "{action}: {answer}");
    answer
}

fn xml_field(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let start = xml.find(&open).map(|i| i + open.len());
    let end = xml.find(&format!("</{name}>"));
    match (start, end) {
        (Some(start), Some(end)) if start <= end => xml[start..end].to_string(),
        _ => panic!("no <{name}> in {xml}"),
    }
}
