//! CDN access logs: how the CDN in front of a site behaves (hit ratio, bytes sent by
//! encoding and content type, bytes saved), from the logs CloudFront, Cloudflare Logpush
//! and Azure Front Door write.
//!
//! A file is read as a stream (plain or gzip, several gzip members allowed; memory stays
//! flat whatever its size), aggregated in memory into hour buckets and a capped table of
//! paths, then added to the cache layer once:
//!
//! - `{prefix}:{site}:cdn:hour:<hour>` and `…:cdn:day:<day>` — hash counters (fields
//!   below), kept `analytics.cdn_hourly_retention_days` / `cdn_daily_retention_days`;
//! - `{prefix}:{site}:cdn:paths:<day>` — the day's top paths by bytes and by misses
//!   (at most `analytics.top_paths` of each), merged under a lock;
//! - `{prefix}:{site}:cdn:ingested:<blake3 of the file>` — so the same file is never
//!   counted twice.
//!
//! Fields: `requests`, `bytes`, `<hit|miss|other>:requests`, `<…>:bytes`,
//! `status:<2xx…5xx>`, `enc:<identity|br|gzip|zstd|unknown>:requests` and `:bytes`,
//! `type:<content type>:bytes`, and for requests of deployed files answered 200,
//! `deployed:requests`, `deployed:bytes` and `deployed:identity_bytes` (what they would
//! have cost without the precompressed variants; the difference is the bytes saved).
//! The encoding is inferred from the body size, matched against the deployed manifest's
//! sizes of the file's representations (logs do not record it).
//!
//! Malformed lines are skipped and counted, with a few examples in the report; one bad
//! line never fails a file. A gzip file cut off inside a member is counted as far as it
//! goes, and the report says so.

pub mod parse;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use parse::{CacheResult, LogFormat, LogRecord};

use crate::cache::{Cache, CacheError, CacheKey};
use crate::pipeline::manifest::{Manifest, ManifestEntry};

/// The longest line read; longer ones are skipped as malformed.
pub const MAX_LINE: usize = 64 * 1024;

/// Examples of malformed lines kept in a report.
const EXAMPLES: usize = 5;

/// Paths tracked while reading one file; requests for further paths still count in
/// every total, but not in the path table (`paths_untracked`).
const PATHS_PER_FILE: usize = 100_000;

/// Settings of CDN-log analytics (`[analytics]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalyticsConfig {
    /// How long hourly CDN buckets are kept, in days.
    pub cdn_hourly_retention_days: u64,
    /// How long daily CDN buckets (and the record of ingested files) are kept, in days.
    pub cdn_daily_retention_days: u64,
    /// Paths kept per day in the top-paths tables (by bytes, and by misses).
    pub top_paths: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        Self {
            cdn_hourly_retention_days: 40,
            cdn_daily_retention_days: 400,
            top_paths: 1000,
        }
    }
}

impl AnalyticsConfig {
    /// Checks the values; errors name the key.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        for (key, value) in [
            ("cdn_hourly_retention_days", self.cdn_hourly_retention_days),
            ("cdn_daily_retention_days", self.cdn_daily_retention_days),
            ("top_paths", self.top_paths as u64),
        ] {
            if value == 0 {
                return Err(crate::config::ConfigError::Value {
                    key: format!("analytics.{key}"),
                    message: "must be at least 1".into(),
                });
            }
        }
        Ok(())
    }

    fn hourly(&self) -> Duration {
        Duration::from_secs(self.cdn_hourly_retention_days * 86_400)
    }

    fn daily(&self) -> Duration {
        Duration::from_secs(self.cdn_daily_retention_days * 86_400)
    }
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The file could not be opened or read.
    #[error("{}: {source}", .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Nothing in the file looks like a log format edgeship reads.
    #[error("{}: not a CloudFront, Logpush or Front Door log (its first line is {first:?}); name the format with --format", .path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The first line, cut to 80 characters.
        first: String,
    },
    /// The cache layer failed.
    #[error("storing the aggregates: {0}")]
    Cache(#[from] CacheError),
    /// Where the logs are stored could not be listed or read.
    #[error("reading the logs: {0}")]
    Source(#[from] edgeship_providers::ProviderError),
}

/// A line that was skipped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Malformed {
    /// Its line number (1-based).
    pub line: u64,
    /// Why it was skipped.
    pub reason: String,
    /// Its start (at most 120 characters).
    pub text: String,
}

/// What reading one file found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// The file.
    pub file: String,
    /// Its format.
    pub format: LogFormat,
    /// Lines read (comments and blank lines included).
    pub lines: u64,
    /// Requests counted.
    pub requests: u64,
    /// Lines (or records) skipped as malformed.
    pub malformed: u64,
    /// A few of them.
    pub examples: Vec<Malformed>,
    /// Why reading stopped early (a gzip member cut off), if it did.
    pub truncated: Option<String>,
    /// Requests for paths beyond the per-file path table (counted everywhere else).
    pub paths_untracked: u64,
    /// The earliest and latest request, Unix seconds.
    pub first: Option<u64>,
    /// See `first`.
    pub last: Option<u64>,
    /// The file's totals.
    pub totals: CdnTotals,
}

/// Requests and bytes for one path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PathTotals {
    /// Requests.
    pub requests: u64,
    /// Bytes sent.
    pub bytes: u64,
    /// Requests the CDN fetched from the origin.
    pub misses: u64,
}

/// Totals of CDN requests (a file, an hour, a day, a range).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CdnTotals {
    /// Requests.
    pub requests: u64,
    /// Bytes sent to clients.
    pub bytes: u64,
    /// Requests served from the edge cache, fetched from the origin, and neither.
    pub hits: u64,
    /// See `hits`.
    pub misses: u64,
    /// See `hits`.
    pub other: u64,
    /// Bytes of hits.
    pub hit_bytes: u64,
    /// Bytes of misses.
    pub miss_bytes: u64,
    /// `hits / (hits + misses)`; `None` without either.
    pub hit_ratio: Option<f64>,
    /// `hit_bytes / (hit_bytes + miss_bytes)`.
    pub byte_hit_ratio: Option<f64>,
    /// Bytes by inferred content encoding (`identity`, `br`, `gzip`, `zstd`, `unknown`).
    pub bytes_by_encoding: BTreeMap<String, u64>,
    /// Bytes by content type.
    pub bytes_by_type: BTreeMap<String, u64>,
    /// Requests by status class (`2xx` …).
    pub requests_by_status: BTreeMap<String, u64>,
    /// What 200 answers for deployed files would have cost without variants.
    pub deployed_identity_bytes: u64,
    /// What they cost.
    pub deployed_bytes: u64,
    /// `deployed_identity_bytes - deployed_bytes`.
    pub saved_bytes: u64,
}

impl CdnTotals {
    /// Totals from stored fields.
    pub fn from_fields(fields: &BTreeMap<String, i64>) -> Self {
        let get = |name: &str| u64::try_from(fields.get(name).copied().unwrap_or(0)).unwrap_or(0);
        let mut totals = Self {
            requests: get("requests"),
            bytes: get("bytes"),
            hits: get("hit:requests"),
            misses: get("miss:requests"),
            other: get("other:requests"),
            hit_bytes: get("hit:bytes"),
            miss_bytes: get("miss:bytes"),
            deployed_identity_bytes: get("deployed:identity_bytes"),
            deployed_bytes: get("deployed:bytes"),
            ..Self::default()
        };
        for (field, value) in fields {
            let value = u64::try_from(*value).unwrap_or(0);
            if let Some(rest) = field.strip_prefix("enc:")
                && let Some(encoding) = rest.strip_suffix(":bytes")
            {
                totals.bytes_by_encoding.insert(encoding.to_owned(), value);
            } else if let Some(rest) = field.strip_prefix("type:")
                && let Some(kind) = rest.strip_suffix(":bytes")
            {
                totals.bytes_by_type.insert(kind.to_owned(), value);
            } else if let Some(class) = field.strip_prefix("status:") {
                totals.requests_by_status.insert(class.to_owned(), value);
            }
        }
        totals.finish();
        totals
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.hits += other.hits;
        self.misses += other.misses;
        self.other += other.other;
        self.hit_bytes += other.hit_bytes;
        self.miss_bytes += other.miss_bytes;
        self.deployed_identity_bytes += other.deployed_identity_bytes;
        self.deployed_bytes += other.deployed_bytes;
        for (from, into) in [
            (&other.bytes_by_encoding, &mut self.bytes_by_encoding),
            (&other.bytes_by_type, &mut self.bytes_by_type),
            (&other.requests_by_status, &mut self.requests_by_status),
        ] {
            for (name, value) in from {
                *into.entry(name.clone()).or_default() += value;
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        let ratio = |a: u64, b: u64| (a + b > 0).then(|| a as f64 / (a + b) as f64);
        self.hit_ratio = ratio(self.hits, self.misses);
        self.byte_hit_ratio = ratio(self.hit_bytes, self.miss_bytes);
        self.saved_bytes = self
            .deployed_identity_bytes
            .saturating_sub(self.deployed_bytes);
    }
}

/// One file, read and aggregated (nothing stored yet).
#[derive(Debug, Clone)]
pub struct FileAggregate {
    /// What was read.
    pub report: FileReport,
    /// blake3 of the file's bytes as stored.
    pub fingerprint: String,
    /// Hour start → field → count.
    pub hours: BTreeMap<u64, BTreeMap<String, i64>>,
    /// Day start → path → totals.
    pub paths: BTreeMap<u64, HashMap<String, PathTotals>>,
}

/// Reads the input as it is read, hashing it.
struct Hashing<R> {
    inner: R,
    hasher: blake3::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A byte count as a counter delta: at most `i64::MAX`.
fn counter(bytes: u64) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

/// A status class (`2xx`).
fn status_class(status: u16) -> String {
    match status {
        100..=599 => format!("{}xx", status / 100),
        _ => "other".into(),
    }
}

/// The encoding a response of `body` bytes (or `total` bytes with headers) for `entry`
/// had, by its size.
fn infer_encoding(entry: &ManifestEntry, body: Option<u64>, total: u64) -> (&'static str, u64) {
    let mut sizes: Vec<(&'static str, u64)> = vec![("identity", entry.size)];
    sizes.extend(entry.variants.iter().map(|(e, size)| (e.token(), *size)));
    if let Some(body) = body {
        return sizes
            .iter()
            .find(|(_, size)| *size == body)
            .map_or(("unknown", body), |&(name, size)| (name, size));
    }
    // With headers counted: the largest representation that leaves room for headers.
    sizes
        .iter()
        .filter(|(_, size)| *size <= total && total - *size <= 2048)
        .max_by_key(|(_, size)| *size)
        .map_or(("unknown", total), |&(name, size)| (name, size))
}

/// The manifest's entry for a logged path (`/blog/` is `blog/index.html`).
fn entry_for<'a>(manifest: &'a Manifest, path: &str) -> Option<&'a ManifestEntry> {
    let key = path.trim_start_matches('/');
    if key.is_empty() || key.ends_with('/') {
        return manifest.assets.get(&format!("{key}index.html"));
    }
    manifest.assets.get(key)
}

struct Aggregator<'a> {
    manifest: &'a Manifest,
    report: FileReport,
    hours: BTreeMap<u64, BTreeMap<String, i64>>,
    paths: BTreeMap<u64, HashMap<String, PathTotals>>,
    tracked_paths: usize,
    totals: BTreeMap<String, i64>,
}

impl Aggregator<'_> {
    fn malformed(&mut self, line: u64, reason: impl Into<String>, text: &str) {
        self.report.malformed += 1;
        if self.report.examples.len() < EXAMPLES {
            self.report.examples.push(Malformed {
                line,
                reason: reason.into(),
                text: text.chars().take(120).collect(),
            });
        }
    }

    fn add(&mut self, record: &LogRecord) {
        let hour = record.time - record.time % 3600;
        let day = record.time - record.time % 86_400;
        self.report.requests += 1;
        self.report.first = Some(
            self.report
                .first
                .map_or(record.time, |t| t.min(record.time)),
        );
        self.report.last = Some(self.report.last.map_or(record.time, |t| t.max(record.time)));
        let entry = entry_for(self.manifest, &record.path);
        // Counters are i64 (Redis's integers): a logged byte count beyond that range counts
        // as its maximum, and sums saturate, so a hostile log can neither make a counter
        // negative nor overflow one.
        let bytes = counter(record.bytes);
        let cache = record.cache.as_str();
        let mut fields: Vec<(String, i64)> = vec![
            ("requests".into(), 1),
            ("bytes".into(), bytes),
            (format!("{cache}:requests"), 1),
            (format!("{cache}:bytes"), bytes),
            (format!("status:{}", status_class(record.status)), 1),
        ];
        let kind = record
            .content_type
            .as_deref()
            .or(entry.map(|e| e.content_type.as_str()))
            .map(|t| t.split(';').next().unwrap_or(t).trim().to_ascii_lowercase());
        if let Some(kind) = kind.filter(|k| !k.is_empty()) {
            fields.push((format!("type:{kind}:bytes"), bytes));
        }
        match entry {
            Some(entry) if record.status == 200 => {
                let (encoding, body) = infer_encoding(entry, record.body_bytes, record.bytes);
                fields.push((format!("enc:{encoding}:requests"), 1));
                fields.push((format!("enc:{encoding}:bytes"), bytes));
                fields.push(("deployed:requests".into(), 1));
                fields.push(("deployed:bytes".into(), counter(body)));
                fields.push((
                    "deployed:identity_bytes".into(),
                    counter(entry.size.max(body)),
                ));
            }
            _ => {
                fields.push(("enc:unknown:requests".into(), 1));
                fields.push(("enc:unknown:bytes".into(), bytes));
            }
        }
        let bucket = self.hours.entry(hour).or_default();
        for (field, delta) in fields {
            let total = self.totals.entry(field.clone()).or_default();
            *total = total.saturating_add(delta);
            let slot = bucket.entry(field).or_default();
            *slot = slot.saturating_add(delta);
        }
        let paths = self.paths.entry(day).or_default();
        let tracked = if let Some(path) = paths.get_mut(&record.path) {
            Some(path)
        } else if self.tracked_paths < PATHS_PER_FILE {
            self.tracked_paths += 1;
            Some(paths.entry(record.path.clone()).or_default())
        } else {
            None
        };
        match tracked {
            Some(path) => {
                path.requests += 1;
                path.bytes = path.bytes.saturating_add(record.bytes);
                path.misses += u64::from(record.cache == CacheResult::Miss);
            }
            None => self.report.paths_untracked += 1,
        }
    }
}

/// Reads one log file (plain or gzip) of `format` (detected from its first line when
/// `None`), matching requests against `manifest`.
pub fn read_file(
    path: &Path,
    format: Option<LogFormat>,
    manifest: &Manifest,
) -> Result<FileAggregate, LogError> {
    let io = |source| LogError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    let gzip = file.read(&mut magic).map_err(io)? == 2 && magic == [0x1f, 0x8b];
    let file = std::fs::File::open(path).map_err(io)?;
    let hashing = Hashing {
        inner: file,
        hasher: blake3::Hasher::new(),
    };
    let mut aggregator = Aggregator {
        manifest,
        report: FileReport {
            file: path.display().to_string(),
            format: format.unwrap_or(LogFormat::Cloudfront),
            lines: 0,
            requests: 0,
            malformed: 0,
            examples: Vec::new(),
            truncated: None,
            paths_untracked: 0,
            first: None,
            last: None,
            totals: CdnTotals::default(),
        },
        hours: BTreeMap::new(),
        paths: BTreeMap::new(),
        tracked_paths: 0,
        totals: BTreeMap::new(),
    };
    let fingerprint = if gzip {
        let mut decoder = flate2::read::MultiGzDecoder::new(hashing);
        read_lines(path, &mut decoder, format, &mut aggregator)?;
        // Hash whatever the decoder left unread, so the fingerprint covers the file.
        let mut rest = decoder.into_inner();
        std::io::copy(&mut rest, &mut std::io::sink()).map_err(io)?;
        rest.hasher.finalize()
    } else {
        let mut hashing = hashing;
        read_lines(path, &mut hashing, format, &mut aggregator)?;
        hashing.hasher.finalize()
    };
    let mut report = aggregator.report;
    report.totals = CdnTotals::from_fields(&aggregator.totals);
    Ok(FileAggregate {
        report,
        fingerprint: fingerprint.to_hex().to_string(),
        hours: aggregator.hours,
        paths: aggregator.paths,
    })
}

fn read_lines(
    path: &Path,
    input: &mut dyn Read,
    format: Option<LogFormat>,
    aggregator: &mut Aggregator<'_>,
) -> Result<(), LogError> {
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut format = format;
    let mut columns: Option<parse::CloudfrontColumns> = None;
    let mut buf = Vec::with_capacity(4096);
    loop {
        buf.clear();
        let read = match reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(err) => {
                // A gzip member cut off: what was read before counts.
                aggregator.report.truncated = Some(format!(
                    "reading stopped after line {}: {err}",
                    aggregator.report.lines
                ));
                return Ok(());
            }
        };
        aggregator.report.lines += 1;
        let number = aggregator.report.lines;
        if read > MAX_LINE && !buf.ends_with(b"\n") {
            // Skip the rest of the overlong line.
            let mut skipped = Vec::new();
            let _ = reader.read_until(b'\n', &mut skipped);
            aggregator.malformed(number, format!("longer than {MAX_LINE} bytes"), "");
            continue;
        }
        let Ok(text) = std::str::from_utf8(&buf) else {
            aggregator.malformed(number, "not UTF-8", &String::from_utf8_lossy(&buf));
            continue;
        };
        let line = text.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            continue;
        }
        let kind = match format {
            Some(kind) => kind,
            None => match LogFormat::detect(line) {
                Some(kind) => {
                    format = Some(kind);
                    aggregator.report.format = kind;
                    kind
                }
                None => {
                    return Err(LogError::UnknownFormat {
                        path: path.to_path_buf(),
                        first: line.chars().take(80).collect(),
                    });
                }
            },
        };
        match kind {
            LogFormat::Cloudfront => {
                if line.starts_with("#Fields:") {
                    let found = parse::CloudfrontColumns::from_fields_line(line);
                    if found.is_usable() {
                        columns = Some(found);
                    } else {
                        aggregator.malformed(number, "#Fields lacks date, time, sc-bytes, cs-uri-stem, sc-status or x-edge-result-type", line);
                        columns = None;
                    }
                    continue;
                }
                if line.starts_with('#') {
                    continue;
                }
                let Some(columns) = &columns else {
                    aggregator.malformed(number, "a data line before any #Fields line", line);
                    continue;
                };
                match parse::cloudfront(line, columns) {
                    Ok(record) => aggregator.add(&record),
                    Err(reason) => aggregator.malformed(number, reason, line),
                }
            }
            LogFormat::Logpush => match parse::logpush(line) {
                Ok(record) => aggregator.add(&record),
                Err(reason) => aggregator.malformed(number, reason, line),
            },
            LogFormat::FrontDoor => match parse::front_door(line) {
                Ok(records) => {
                    for record in records {
                        match record {
                            Ok(record) => aggregator.add(&record),
                            Err(reason) => aggregator.malformed(number, reason, line),
                        }
                    }
                }
                Err(reason) => aggregator.malformed(number, reason, line),
            },
        }
    }
}

/// What storing a file did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Stored {
    /// Its aggregates were added.
    Added,
    /// The same file was ingested before (at `at`, Unix seconds): nothing was added.
    AlreadyIngested {
        /// When.
        at: u64,
    },
}

/// The record of an ingested file.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ingested {
    at: u64,
    file: String,
    requests: u64,
}

fn key(cache: &Cache, site: &str, name: &str) -> CacheKey {
    cache.site(site).key(&format!("cdn:{name}"))
}

/// Adds a file's aggregates to `site`'s buckets, unless the same file was added before.
pub async fn store(
    cache: &Cache,
    site: &str,
    aggregate: &FileAggregate,
    config: &AnalyticsConfig,
) -> Result<Stored, LogError> {
    let marker = key(cache, site, &format!("ingested:{}", aggregate.fingerprint));
    let record = Ingested {
        at: crate::jobs::unix_now(),
        file: aggregate.report.file.clone(),
        requests: aggregate.report.requests,
    };
    if !cache
        .set_if_absent(&marker, &record, Some(config.daily()))
        .await?
    {
        let before: Option<Ingested> = cache.get(&marker).await?;
        return Ok(Stored::AlreadyIngested {
            at: before.map_or(0, |b| b.at),
        });
    }
    let mut days: BTreeMap<u64, BTreeMap<&str, i64>> = BTreeMap::new();
    for (hour, fields) in &aggregate.hours {
        let hour_key = key(cache, site, &format!("hour:{hour}"));
        let day = days.entry(hour - hour % 86_400).or_default();
        for (field, delta) in fields {
            cache
                .hash_incr_by(&hour_key, field, *delta, Some(config.hourly()))
                .await?;
            let slot = day.entry(field).or_default();
            *slot = slot.saturating_add(*delta);
        }
    }
    for (day, fields) in &days {
        let day_key = key(cache, site, &format!("day:{day}"));
        for (field, delta) in fields {
            cache
                .hash_incr_by(&day_key, field, *delta, Some(config.daily()))
                .await?;
        }
    }
    let lock_key = key(cache, site, "paths:lock");
    let lock = loop {
        if let Some(lock) =
            crate::cache::CacheLock::acquire(cache, lock_key.clone(), Duration::from_secs(60))
                .await?
        {
            break lock;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    for (day, paths) in &aggregate.paths {
        let table_key = key(cache, site, &format!("paths:{day}"));
        let mut table: BTreeMap<String, PathTotals> =
            cache.get(&table_key).await?.unwrap_or_default();
        for (path, totals) in paths {
            let entry = table.entry(path.clone()).or_default();
            entry.requests = entry.requests.saturating_add(totals.requests);
            entry.bytes = entry.bytes.saturating_add(totals.bytes);
            entry.misses = entry.misses.saturating_add(totals.misses);
        }
        let table = top_paths(table, config.top_paths);
        cache.set(&table_key, &table, Some(config.daily())).await?;
    }
    let _ = lock.release().await;
    Ok(Stored::Added)
}

/// The `keep` paths with the most bytes and the `keep` with the most misses.
fn top_paths(table: BTreeMap<String, PathTotals>, keep: usize) -> BTreeMap<String, PathTotals> {
    if table.len() <= keep {
        return table;
    }
    let mut by_bytes: Vec<(&String, &PathTotals)> = table.iter().collect();
    by_bytes.sort_by(|a, b| b.1.bytes.cmp(&a.1.bytes).then(a.0.cmp(b.0)));
    let mut by_misses = by_bytes.clone();
    by_misses.sort_by(|a, b| b.1.misses.cmp(&a.1.misses).then(a.0.cmp(b.0)));
    by_bytes
        .into_iter()
        .take(keep)
        .chain(by_misses.into_iter().take(keep))
        .map(|(path, totals)| (path.clone(), *totals))
        .collect()
}

/// One log object a pull read.
#[derive(Debug, Clone, Serialize)]
pub struct Pulled {
    /// Its key in the source.
    pub key: String,
    /// What reading it found.
    pub report: FileReport,
    /// Whether it was added.
    pub stored: Stored,
}

/// Reads the log objects under `prefix` in `source` that no earlier pull of `site` has
/// read, and adds each to `site`'s analytics; returns them, and how many were skipped as
/// read before. An object is remembered once stored, so a pull that fails halfway reads
/// only the rest next time.
pub async fn pull(
    cache: &Cache,
    site: &str,
    source: &edgeship_providers::SharedProvider,
    prefix: &str,
    format: Option<LogFormat>,
    manifest: std::sync::Arc<Manifest>,
    config: &AnalyticsConfig,
) -> Result<(Vec<Pulled>, u64), LogError> {
    use edgeship_providers::ProviderExt;
    let mut pulled = Vec::new();
    let mut skipped = 0;
    let objects = source.list_all(prefix.trim_start_matches('/')).await?;
    for object in objects {
        let marker = key(
            cache,
            site,
            &format!("pulled:{}", blake3::hash(object.key.as_bytes()).to_hex()),
        );
        if cache.get::<u64>(&marker).await?.is_some() {
            skipped += 1;
            continue;
        }
        let (_, bytes) = source.get(&object.key).await?;
        let file = tempfile::NamedTempFile::new().map_err(|source| LogError::Io {
            path: std::env::temp_dir(),
            source,
        })?;
        let path = file.path().to_path_buf();
        tokio::fs::write(&path, &bytes)
            .await
            .map_err(|source| LogError::Io {
                path: path.clone(),
                source,
            })?;
        let manifest = std::sync::Arc::clone(&manifest);
        let read = tokio::task::spawn_blocking(move || read_file(&path, format, &manifest))
            .await
            .map_err(|err| LogError::Io {
                path: file.path().to_path_buf(),
                source: std::io::Error::other(err),
            })?;
        let mut aggregate = read?;
        aggregate.report.file = object.key.clone();
        let stored = store(cache, site, &aggregate, config).await?;
        cache
            .set(&marker, &crate::jobs::unix_now(), Some(config.daily()))
            .await?;
        pulled.push(Pulled {
            key: object.key,
            report: aggregate.report,
            stored,
        });
    }
    Ok((pulled, skipped))
}

/// `site`'s CDN totals for the hours starting in `[from, to)`.
pub async fn hourly(
    cache: &Cache,
    site: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, CdnTotals)>, CacheError> {
    buckets(cache, site, "hour", 3600, from, to).await
}

/// `site`'s CDN totals for the UTC days starting in `[from, to)` (`from` widened to its
/// day's start).
pub async fn daily(
    cache: &Cache,
    site: &str,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, CdnTotals)>, CacheError> {
    buckets(cache, site, "day", 86_400, from, to).await
}

/// The stored `kind` buckets (`hour`, `day`) of `width` seconds starting in `[from, to)`;
/// empty ones are left out.
async fn buckets(
    cache: &Cache,
    site: &str,
    kind: &str,
    width: u64,
    from: u64,
    to: u64,
) -> Result<Vec<(u64, CdnTotals)>, CacheError> {
    let mut out = Vec::new();
    let mut start = from - from % width;
    while start < to {
        let fields = cache
            .hash_get_all(&key(cache, site, &format!("{kind}:{start}")))
            .await?;
        if !fields.is_empty() {
            out.push((start, CdnTotals::from_fields(&fields)));
        }
        start += width;
    }
    Ok(out)
}

/// Sets the gauges of `site`'s latest hour with CDN requests (within the last two
/// hours): its hit ratio and requests. Called after every ingest the service does and
/// every minute, so alerts see logs ingested anywhere.
pub async fn refresh_gauges(cache: &Cache, site: &str, now: u64) -> Result<(), CacheError> {
    let hours = hourly(cache, site, now.saturating_sub(2 * 3600), now + 1).await?;
    if let Some((_, totals)) = hours.last() {
        if let Some(ratio) = totals.hit_ratio {
            metrics::gauge!(crate::metric_names::cdn::HIT_RATIO, "site" => site.to_owned())
                .set(ratio);
        }
        metrics::gauge!(crate::metric_names::cdn::REQUESTS, "site" => site.to_owned())
            .set(totals.requests as f64);
    }
    Ok(())
}

/// `site`'s top paths of the day starting at `day`.
pub async fn top_paths_of_day(
    cache: &Cache,
    site: &str,
    day: u64,
) -> Result<BTreeMap<String, PathTotals>, CacheError> {
    Ok(cache
        .get(&key(cache, site, &format!("paths:{day}")))
        .await?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_beyond_i64_saturate_instead_of_wrapping() {
        // A count past i64::MAX was added as a negative number, and two large ones
        // overflowed (the log_file fuzz checks catch both; fuzz/regressions/log_file/).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let line = |bytes: u64| format!("2026-12-02\t06:30:01\t{bytes}\t/a.js\t200\tMiss\n");
        let log = format!(
            "#Fields: date time sc-bytes cs-uri-stem sc-status x-edge-result-type\n{}{}{}",
            line(u64::MAX),
            line(i64::MAX as u64),
            line(1)
        );
        std::fs::write(&path, log).unwrap();
        let aggregate = read_file(&path, None, &Manifest::default()).unwrap();
        assert_eq!(aggregate.report.requests, 3);
        assert_eq!(aggregate.report.totals.bytes, i64::MAX as u64);
        let hour = aggregate.hours.values().next().unwrap();
        assert_eq!((hour["bytes"], hour["miss:bytes"]), (i64::MAX, i64::MAX));
        let paths = aggregate.paths.values().next().unwrap();
        assert_eq!(paths["/a.js"].bytes, u64::MAX);
    }

    #[test]
    fn the_path_table_keeps_the_top_by_bytes_and_by_misses() {
        let table: BTreeMap<String, PathTotals> = (0..10u64)
            .map(|i| {
                (
                    format!("/p{i}"),
                    PathTotals {
                        requests: 1,
                        bytes: i * 100,
                        misses: 10 - i,
                    },
                )
            })
            .collect();
        let kept = top_paths(table, 2);
        let names: Vec<&str> = kept.keys().map(String::as_str).collect();
        assert_eq!(names, ["/p0", "/p1", "/p8", "/p9"]);
    }
}
