//! [`AwsProvider`]: the [`Provider`] on S3 + CloudFront.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use aws_smithy_http_client::tls;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::Bytes;
use tokio::sync::{OnceCell, Semaphore};

use super::classify::{self, Context, Failure, Operation};
use super::{AwsSettings, cloudfront, s3};
use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::{Provider, validate_key};

/// Most keys S3 deletes in one `DeleteObjects` call.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObjects.html>
const MAX_DELETE_BATCH: usize = 1000;

/// Most keys in one `ListObjectsV2` page.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>
const LIST_PAGE_SIZE: usize = 1000;

/// How long an idle pooled connection is kept: a little below the ~100 s after which
/// S3 closes idle connections, so the pool never hands out one S3 is closing.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// A site on S3, purged through CloudFront.
///
/// Cheap to build and synchronous: the SDK configuration (credential chain, region,
/// profile files) is loaded on the first call and shared by every call after it. One
/// HTTP client per provider, its pool sized with [`Self::with_pool_size`].
pub struct AwsProvider {
    site: String,
    settings: AwsSettings,
    prefix: String,
    name: String,
    /// The site's settings table, for messages (`aws`; `cloudflare` for R2 storage).
    table: &'static str,
    pool_size: usize,
    sdk_config: Option<SdkConfig>,
    clients: OnceCell<Clients>,
    references: AtomicU64,
}

/// The SDK clients, built once.
#[derive(Debug)]
struct Clients {
    s3: aws_sdk_s3::Client,
    cloudfront: aws_sdk_cloudfront::Client,
    ctx: Arc<Context>,
}

/// One invalidation of the site's distribution, as listed by
/// [`AwsProvider::invalidations`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidationSummary {
    /// CloudFront's id for it.
    pub id: String,
    /// Where it is.
    pub status: PurgeStatus,
}

impl fmt::Debug for AwsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the SDK config: it holds the credentials provider.
        f.debug_struct("AwsProvider")
            .field("site", &self.site)
            .field("settings", &self.settings)
            .field("pool_size", &self.pool_size)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for AwsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AwsProvider {
    /// The provider of site `site` with these settings (checked on first use; config
    /// loading checks them earlier with [`AwsSettings::validate`]).
    pub fn new(site: &str, settings: AwsSettings) -> Self {
        let prefix = settings.key_prefix();
        let name = format!("aws:s3://{}/{prefix}", settings.bucket);
        Self {
            site: site.to_string(),
            settings,
            prefix,
            name,
            table: "aws",
            pool_size: 32,
            sdk_config: None,
            clients: OnceCell::new(),
            references: AtomicU64::new(0),
        }
    }

    /// Names this S3 store `name` in logs and errors, whose settings are the table
    /// `[sites.SITE.<table>]` (R2 storage of the `cloudflare` provider).
    pub fn with_identity(mut self, name: impl Into<String>, table: &'static str) -> Self {
        self.name = name.into();
        self.table = table;
        self
    }

    /// Keeps up to `connections` idle connections for reuse: the most uploads the deploy
    /// runs at once, so a burst after a pause reuses connections instead of opening new
    /// ones. (Connections in use are not capped here; the caller's concurrency is.)
    pub fn with_pool_size(mut self, connections: usize) -> Self {
        self.pool_size = connections.max(1);
        self
    }

    /// Uses this SDK configuration (credentials, region) instead of loading the standard
    /// chain. The settings' endpoints, path style and timeouts still apply.
    pub fn with_sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    /// The settings.
    pub fn settings(&self) -> &AwsSettings {
        &self.settings
    }

    fn ctx_before_init(&self) -> Context {
        Context {
            provider: self.name.clone(),
            site: self.site.clone(),
            table: self.table,
            bucket: self.settings.bucket.clone(),
            region: self.settings.region.clone().unwrap_or_else(|| "?".into()),
            distribution: self.settings.distribution_id.clone(),
        }
    }

    fn invalid(&self, message: String) -> ProviderError {
        ProviderError::Invalid {
            provider: self.name.clone(),
            message,
        }
    }

    fn object_key(&self, key: &str) -> Result<String> {
        validate_key(key).map_err(|m| self.invalid(m.to_string()))?;
        Ok(format!("{}{key}", self.prefix))
    }

    /// The clients, built on the first call.
    async fn clients(&self) -> Result<&Clients> {
        self.clients
            .get_or_try_init(|| async {
                let clients = self.build_clients().await?;
                metrics::counter!(crate::metrics::CLIENTS_BUILT, "provider" => self.name.clone())
                    .increment(1);
                Ok(clients)
            })
            .await
    }

    async fn build_clients(&self) -> Result<Clients> {
        let site = &self.site;
        self.settings
            .validate()
            .map_err(|err| ProviderError::Misconfigured {
                provider: self.name.clone(),
                message: format!("sites.{site}.{}.{} {}", self.table, err.field, err.message),
            })?;
        let http = aws_smithy_http_client::Builder::new()
            .pool_max_idle_per_host(self.pool_size)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .build_https();
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_millis(self.settings.connect_timeout_ms))
            .read_timeout(Duration::from_millis(self.settings.read_timeout_ms))
            .build();
        let sdk = match &self.sdk_config {
            Some(config) => config.clone(),
            None => {
                let mut loader = aws_config::defaults(BehaviorVersion::latest())
                    .http_client(http.clone())
                    .timeout_config(timeouts.clone())
                    .retry_config(RetryConfig::disabled());
                if let Some(region) = &self.settings.region {
                    loader = loader.region(Region::new(region.clone()));
                }
                if let Some(profile) = &self.settings.profile {
                    loader = loader.profile_name(profile);
                }
                loader.load().await
            }
        };
        let region = match (&self.settings.region, sdk.region()) {
            (Some(region), _) => region.clone(),
            (None, Some(region)) => region.to_string(),
            (None, None) => {
                return Err(ProviderError::Misconfigured {
                    provider: self.name.clone(),
                    message: format!(
                        "no AWS region for bucket `{}`: set sites.{site}.{}.region, AWS_REGION, or `region` in the profile",
                        self.settings.bucket, self.table
                    ),
                });
            }
        };
        // One retry layer only (ours): the SDK's is off, for both services.
        let mut s3 = aws_sdk_s3::config::Builder::from(&sdk)
            .region(Region::new(region.clone()))
            .http_client(http.clone())
            .timeout_config(timeouts.clone())
            .retry_config(RetryConfig::disabled())
            .force_path_style(self.settings.force_path_style);
        if let Some(endpoint) = &self.settings.endpoint {
            s3 = s3.endpoint_url(endpoint);
        }
        let mut cloudfront = aws_sdk_cloudfront::config::Builder::from(&sdk)
            .http_client(http)
            .timeout_config(timeouts)
            .retry_config(RetryConfig::disabled());
        if let Some(endpoint) = &self.settings.cloudfront_endpoint {
            cloudfront = cloudfront.endpoint_url(endpoint);
        }
        tracing::debug!(provider = %self.name, %region, "AWS clients ready");
        Ok(Clients {
            s3: aws_sdk_s3::Client::from_conf(s3.build()),
            cloudfront: aws_sdk_cloudfront::Client::from_conf(cloudfront.build()),
            ctx: Arc::new(Context {
                region,
                ..self.ctx_before_init()
            }),
        })
    }

    /// A caller reference for a purge that brought none: unique per process and call.
    fn new_reference(&self) -> String {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let n = self.references.fetch_add(1, Ordering::Relaxed);
        format!("edgeship-{millis}-{}-{n}", std::process::id())
    }

    fn distribution(&self) -> Option<&str> {
        self.settings.distribution_id.as_deref()
    }

    /// Invalidations of the site's distribution, newest first (at most `max`).
    /// Without a distribution, none.
    pub async fn invalidations(&self, max: usize) -> Result<Vec<InvalidationSummary>> {
        let Some(distribution) = self.distribution() else {
            return Ok(Vec::new());
        };
        let c = self.clients().await?;
        let mut found = Vec::new();
        let mut marker = None;
        while found.len() < max {
            let out = c
                .cloudfront
                .list_invalidations()
                .distribution_id(distribution)
                .set_marker(marker.take())
                .max_items(i32::try_from((max - found.len()).min(100)).unwrap_or(100))
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::ListInvalidations, None, &e))?;
            let Some(list) = out.invalidation_list() else {
                break;
            };
            found.extend(list.items().iter().map(|item| InvalidationSummary {
                id: item.id().to_string(),
                status: cloudfront::purge_status(item.status()),
            }));
            match list.next_marker() {
                Some(next) if list.is_truncated() => marker = Some(next.to_string()),
                _ => break,
            }
        }
        found.truncate(max);
        Ok(found)
    }

    /// Uploads `request` in parts; on failure the upload is aborted so no parts are left
    /// (and billed) in the bucket.
    async fn put_multipart(
        &self,
        c: &Clients,
        key: &str,
        request: &PutRequest,
        stored: s3::Stored,
    ) -> Result<()> {
        let bucket = &self.settings.bucket;
        let created =
            c.s3.create_multipart_upload()
                .bucket(bucket)
                .key(key)
                .set_content_type(request.content_type.clone())
                .set_content_encoding(request.content_encoding.clone())
                .set_cache_control(request.cache_control.clone())
                .set_content_disposition(stored.content_disposition)
                .set_content_language(stored.content_language)
                .set_metadata(non_empty(stored.metadata))
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::Put, Some(&request.key), &e))?;
        let Some(upload_id) = created.upload_id().map(str::to_owned) else {
            return Err(classify::classify(
                &c.ctx,
                Operation::Put,
                Some(&request.key),
                Failure::Transport("CreateMultipartUpload answered without an upload id".into()),
            ));
        };
        let mut guard = AbortOnDrop {
            s3: c.s3.clone(),
            bucket: bucket.clone(),
            key: key.to_string(),
            upload_id: Some(upload_id.clone()),
        };
        let result = async {
            let parts = self.upload_parts(c, key, &upload_id, request).await?;
            c.s3.complete_multipart_upload()
                .bucket(bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::Put, Some(&request.key), &e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            guard.abort_now().await;
        }
        guard.upload_id = None;
        result
    }

    /// Uploads every part, `part_concurrency` at a time; the first failure stops the rest.
    async fn upload_parts(
        &self,
        c: &Clients,
        key: &str,
        upload_id: &str,
        request: &PutRequest,
    ) -> Result<Vec<CompletedPart>> {
        let plan = s3::part_plan(request.body.size(), self.settings.part_size);
        let permits = Arc::new(Semaphore::new(self.settings.part_concurrency));
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (offset, len)) in plan.into_iter().enumerate() {
            let number = i32::try_from(index + 1).map_err(|e| self.invalid(e.to_string()))?;
            let (s3_client, ctx, permits) =
                (c.s3.clone(), Arc::clone(&c.ctx), Arc::clone(&permits));
            let (bucket, key, upload_id) = (
                self.settings.bucket.clone(),
                key.to_string(),
                upload_id.to_string(),
            );
            let (body, public_key, provider) =
                (request.body.clone(), request.key.clone(), self.name.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                let stream = s3::body_range(&body, offset, len)
                    .await
                    .map_err(|e| ProviderError::from_io(&provider, &public_key, e))?;
                let out = s3_client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .content_length(len as i64)
                    .body(stream)
                    .send()
                    .await
                    .map_err(|e| fail(&ctx, Operation::Put, Some(&public_key), &e))?;
                Ok::<_, ProviderError>(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .set_checksum_crc32(out.checksum_crc32().map(str::to_owned))
                        .set_checksum_crc32_c(out.checksum_crc32_c().map(str::to_owned))
                        .set_checksum_crc64_nvme(out.checksum_crc64_nvme().map(str::to_owned))
                        .set_checksum_sha1(out.checksum_sha1().map(str::to_owned))
                        .set_checksum_sha256(out.checksum_sha256().map(str::to_owned))
                        .build(),
                )
            });
        }
        let mut parts = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let part = joined.map_err(|e| ProviderError::Generic {
                provider: self.name.clone(),
                source: Box::new(e),
            })??;
            parts.push(part);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }
}

/// Maps an SDK error through [`classify::classify`].
fn fail<E>(
    ctx: &Context,
    operation: Operation,
    target: Option<&str>,
    err: &SdkError<E, HttpResponse>,
) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    classify::classify(ctx, operation, target, classify::failure_of(err))
}

fn non_empty(map: HashMap<String, String>) -> Option<HashMap<String, String>> {
    (!map.is_empty()).then_some(map)
}

/// Aborts a multipart upload that neither completed nor was aborted, also when the
/// upload's future is dropped (a call timeout), so no orphaned parts stay billed.
struct AbortOnDrop {
    s3: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    fn request(
        &self,
        upload_id: String,
    ) -> aws_sdk_s3::operation::abort_multipart_upload::builders::AbortMultipartUploadFluentBuilder
    {
        self.s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(upload_id)
    }

    async fn abort_now(&mut self) {
        if let Some(upload_id) = self.upload_id.take()
            && let Err(err) = self.request(upload_id).send().await
        {
            tracing::warn!(key = %self.key, error = %aws_sdk_s3::error::DisplayErrorContext(&err),
                "could not abort a failed multipart upload; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes its parts");
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(upload_id) = self.upload_id.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let request = self.request(upload_id);
            runtime.spawn(async move {
                let _ = request.send().await;
            });
        }
    }
}

#[async_trait]
impl Provider for AwsProvider {
    fn capabilities(&self) -> Capabilities {
        let purge = if self.distribution().is_some() {
            Capabilities::cloudfront()
        } else {
            // No distribution: nothing to purge; accept any request, like `local`.
            Capabilities {
                purge_is_noop: true,
                ..Capabilities::default()
            }
        };
        Capabilities {
            max_delete_batch: MAX_DELETE_BATCH,
            list_page_size: LIST_PAGE_SIZE,
            multipart_threshold: Some(self.settings.multipart_threshold),
            ..purge
        }
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        let key = self.object_key(&request.key)?;
        let stored =
            s3::stored(&request).map_err(|m| self.invalid(format!("`{}`: {m}", request.key)))?;
        let c = self.clients().await?;
        let size = request.body.size();
        if size >= self.settings.multipart_threshold {
            self.put_multipart(c, &key, &request, stored).await?;
        } else {
            let body = if size == 0 {
                ByteStream::from_static(b"")
            } else {
                s3::body_range(&request.body, 0, size)
                    .await
                    .map_err(|e| ProviderError::from_io(&self.name, &request.key, e))?
            };
            c.s3.put_object()
                .bucket(&self.settings.bucket)
                .key(&key)
                .content_length(size as i64)
                .body(body)
                .set_content_type(request.content_type.clone())
                .set_content_encoding(request.content_encoding.clone())
                .set_cache_control(request.cache_control.clone())
                .set_content_disposition(stored.content_disposition)
                .set_content_language(stored.content_language)
                .set_metadata(non_empty(stored.metadata))
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::Put, Some(&request.key), &e))?;
        }
        Ok(request.meta())
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let full = self.object_key(key)?;
        let c = self.clients().await?;
        let out =
            c.s3.head_object()
                .bucket(&self.settings.bucket)
                .key(full)
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::Head, Some(key), &e))?;
        Ok(s3::object_meta(
            key,
            out.content_length(),
            out.content_type(),
            out.content_encoding(),
            out.cache_control(),
            out.metadata(),
        ))
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        let full = self.object_key(key)?;
        let c = self.clients().await?;
        let out =
            c.s3.get_object()
                .bucket(&self.settings.bucket)
                .key(full)
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::Get, Some(key), &e))?;
        let meta = s3::object_meta(
            key,
            out.content_length(),
            out.content_type(),
            out.content_encoding(),
            out.cache_control(),
            out.metadata(),
        );
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| {
                classify::classify(
                    &c.ctx,
                    Operation::Get,
                    Some(key),
                    Failure::Transport(classify::chain(&e)),
                )
            })?
            .into_bytes();
        Ok((
            ObjectMeta {
                size: bytes.len() as u64,
                ..meta
            },
            bytes,
        ))
    }

    /// Keys and sizes only: S3 listings carry no content type, headers or metadata
    /// (asking would cost a HEAD per object). A deploy reads the site's manifest and
    /// lists only when there is none; it then uploads what it cannot prove unchanged.
    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        let c = self.clients().await?;
        let out =
            c.s3.list_objects_v2()
                .bucket(&self.settings.bucket)
                .prefix(format!("{}{prefix}", self.prefix))
                .max_keys(LIST_PAGE_SIZE as i32)
                .set_continuation_token(cursor)
                .send()
                .await
                .map_err(|e| fail(&c.ctx, Operation::List, None, &e))?;
        let objects = out
            .contents()
            .iter()
            .filter_map(|object| {
                let key = object.key()?.strip_prefix(&self.prefix)?;
                Some(ObjectMeta {
                    key: key.to_string(),
                    size: object
                        .size()
                        .and_then(|s| u64::try_from(s).ok())
                        .unwrap_or(0),
                    ..ObjectMeta::default()
                })
            })
            .collect();
        let next = match out.is_truncated() {
            Some(true) => out.next_continuation_token().map(str::to_owned),
            _ => None,
        };
        Ok(ListPage { objects, next })
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let full: Vec<String> = keys
            .iter()
            .map(|k| self.object_key(k))
            .collect::<Result<_>>()?;
        if full.is_empty() {
            return Ok(());
        }
        let c = self.clients().await?;
        for chunk in full.chunks(MAX_DELETE_BATCH) {
            let objects = chunk
                .iter()
                .map(|key| ObjectIdentifier::builder().key(key).build())
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| self.invalid(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.invalid(e.to_string()))?;
            let out =
                c.s3.delete_objects()
                    .bucket(&self.settings.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| fail(&c.ctx, Operation::Delete, None, &e))?;
            let errors = out.errors();
            if let Some(first) = errors.first() {
                let listed: Vec<String> = errors
                    .iter()
                    .take(5)
                    .map(|e| {
                        format!(
                            "`{}` ({}: {})",
                            e.key()
                                .and_then(|k| k.strip_prefix(&self.prefix))
                                .unwrap_or("?"),
                            e.code().unwrap_or("?"),
                            e.message().unwrap_or("")
                        )
                    })
                    .collect();
                let more = errors.len().saturating_sub(listed.len());
                let more = if more > 0 {
                    format!(" and {more} more")
                } else {
                    String::new()
                };
                return Err(classify::classify(
                    &c.ctx,
                    Operation::Delete,
                    None,
                    Failure::Service {
                        status: None,
                        code: first.code().map(str::to_owned),
                        message: Some(format!(
                            "{} of {} keys were not deleted: {}{more}",
                            errors.len(),
                            chunk.len(),
                            listed.join(", ")
                        )),
                        retry_after: None,
                    },
                ));
            }
        }
        Ok(())
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.capabilities().validate_purge(&self.name, request)?;
        let Some(distribution) = self.distribution() else {
            return Ok(PurgeReceipt {
                id: "none".into(),
                status: PurgeStatus::Done,
            });
        };
        let reference = match &request.reference {
            Some(reference) => reference.clone(),
            None => self.new_reference(),
        };
        let batch = cloudfront::invalidation_batch(request, &reference)
            .map_err(|m| self.invalid(m.to_string()))?;
        let c = self.clients().await?;
        let out = c
            .cloudfront
            .create_invalidation()
            .distribution_id(distribution)
            .invalidation_batch(batch)
            .send()
            .await
            .map_err(|e| fail(&c.ctx, Operation::Invalidate, None, &e))?;
        let Some(invalidation) = out.invalidation() else {
            return Err(classify::classify(
                &c.ctx,
                Operation::Invalidate,
                None,
                Failure::Transport("CreateInvalidation answered without an invalidation".into()),
            ));
        };
        tracing::debug!(provider = %self.name, distribution, id = invalidation.id(), %reference, "invalidation created");
        Ok(PurgeReceipt {
            id: invalidation.id().to_string(),
            status: cloudfront::purge_status(invalidation.status()),
        })
    }

    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        let Some(distribution) = self.distribution() else {
            return Ok(PurgeStatus::Done);
        };
        let c = self.clients().await?;
        let out = c
            .cloudfront
            .get_invalidation()
            .distribution_id(distribution)
            .id(id)
            .send()
            .await
            .map_err(|e| fail(&c.ctx, Operation::InvalidationStatus, Some(id), &e))?;
        Ok(out
            .invalidation()
            .map(|i| cloudfront::purge_status(i.status()))
            .unwrap_or(PurgeStatus::InProgress))
    }
}
