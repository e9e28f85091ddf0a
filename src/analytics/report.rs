//! The analytics report behind `GET /v1/analytics`: deploy savings and origin traffic per
//! site, as totals and as a time series over a range.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::logs::{CdnTotals, PathTotals};
use super::origin::{OriginTotals, origin_hourly, origin_totals};
use super::{SavingsByType, ShippedTotals, day_start};
use crate::cache::{Cache, CacheError};

/// The range used when a query gives none: the last 7 days.
pub const DEFAULT_RANGE: Duration = Duration::from_secs(7 * 86_400);

/// Why a report cannot be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// A time parameter is not a time.
    #[error(
        "`{param}` is `{value}`: give Unix seconds, a date (2026-11-30) or an RFC 3339 time (2026-11-30T12:00:00Z)"
    )]
    BadTime {
        /// `from` or `to`.
        param: &'static str,
        /// What was given.
        value: String,
    },
    /// The range is empty or longer than the data is kept.
    #[error("{0}")]
    BadRange(String),
    /// `group_by` is not a bucket width or a breakdown.
    #[error(
        "`group_by` is `{0}`: use `hour` or `day` (series), or `type`, `encoding`, `cache_status` or `path` (a breakdown of the CDN's traffic)"
    )]
    BadGroupBy(String),
    /// The site is not configured.
    #[error("no site `{0}` is configured")]
    UnknownSite(String),
    /// The cache layer failed.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The width of a time-series bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// One bucket per UTC hour.
    Hour,
    /// One bucket per UTC day.
    Day,
}

impl GroupBy {
    /// `hour` or `day`.
    pub fn parse(text: &str) -> Result<Self, ReportError> {
        match text {
            "hour" => Ok(Self::Hour),
            "day" => Ok(Self::Day),
            other => Err(ReportError::BadGroupBy(other.to_owned())),
        }
    }

    /// The bucket's width in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Hour => 3600,
            Self::Day => 86_400,
        }
    }
}

/// A breakdown of the CDN's traffic in the range (`group_by=type|encoding|cache_status|path`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Breakdown {
    /// Bytes per content type.
    Type,
    /// Bytes per (inferred) content encoding.
    Encoding,
    /// Requests and bytes per cache status (hit, miss, other).
    CacheStatus,
    /// Requests and bytes of the top paths by bytes.
    Path,
}

impl Breakdown {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "type" => Some(Self::Type),
            "encoding" => Some(Self::Encoding),
            "cache_status" => Some(Self::CacheStatus),
            "path" => Some(Self::Path),
            _ => None,
        }
    }
}

/// A validated report request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// The sites to report on.
    pub sites: Vec<String>,
    /// Range start, Unix seconds (inclusive).
    pub from: u64,
    /// Range end, Unix seconds (exclusive).
    pub to: u64,
    /// Series bucket width.
    pub group_by: GroupBy,
    /// A breakdown asked for with `group_by`, if any (series then use the default width).
    pub breakdown: Option<Breakdown>,
}

impl Query {
    /// [`Query::parse`] for `site` (every configured site when `None`); an unknown site
    /// is [`ReportError::UnknownSite`].
    pub fn for_config(
        config: &crate::config::Config,
        site: Option<&str>,
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<&str>,
        now: SystemTime,
    ) -> Result<Self, ReportError> {
        let sites = match site {
            Some(site) => {
                config
                    .site(site)
                    .map_err(|_| ReportError::UnknownSite(site.to_owned()))?;
                vec![site.to_owned()]
            }
            None => config.site_names(),
        };
        Self::parse(sites, from, to, group_by, now)
    }

    /// Validates raw parameters: `from` / `to` as Unix seconds, `YYYY-MM-DD` or RFC 3339
    /// (default: the last 7 days up to now); `group_by` `hour` or `day` (default: `hour`
    /// for ranges up to 2 days, else `day`). The range may not be empty nor longer than
    /// the data is kept ([`super::RETENTION`]). It is then widened to whole hours, the
    /// finest grain the data has: no figure changes, and answers can be shared.
    pub fn parse(
        sites: Vec<String>,
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<&str>,
        now: SystemTime,
    ) -> Result<Self, ReportError> {
        let now = unix_seconds(now);
        let to = match to {
            Some(text) => parse_time("to", text)?,
            None => now,
        };
        let from = match from {
            Some(text) => parse_time("from", text)?,
            None => to.saturating_sub(DEFAULT_RANGE.as_secs()),
        };
        if to <= from {
            return Err(ReportError::BadRange(format!(
                "the range is empty: `from` ({}) is not before `to` ({})",
                format_time(from),
                format_time(to)
            )));
        }
        let retention = super::RETENTION.as_secs();
        if to - from > retention {
            return Err(ReportError::BadRange(format!(
                "the range is {} days; at most {} days are kept",
                (to - from).div_ceil(86_400),
                retention / 86_400
            )));
        }
        let breakdown = group_by.and_then(Breakdown::parse);
        let group_by = match group_by {
            Some(text) if breakdown.is_none() => GroupBy::parse(text)?,
            _ if to - from <= 2 * 86_400 => GroupBy::Hour,
            _ => GroupBy::Day,
        };
        Ok(Self {
            sites,
            from: from / 3600 * 3600,
            to: to.div_ceil(3600) * 3600,
            group_by,
            breakdown,
        })
    }
}

/// The latest time accepted: the end of year 9999 (larger values are typos, and would
/// overflow time arithmetic).
pub const MAX_TIME: u64 = 253_402_300_799;

/// Parses Unix seconds, a date (`2026-11-30`, midnight UTC) or an RFC 3339 time, up to
/// [`MAX_TIME`].
pub fn parse_time(param: &'static str, text: &str) -> Result<u64, ReportError> {
    let bad = || ReportError::BadTime {
        param,
        value: text.chars().take(64).collect(),
    };
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return if seconds <= MAX_TIME {
            Ok(seconds)
        } else {
            Err(bad())
        };
    }
    let rfc3339 = &time::format_description::well_known::Rfc3339;
    let parsed = if text.len() == 10 {
        time::OffsetDateTime::parse(&format!("{text}T00:00:00Z"), rfc3339)
    } else {
        time::OffsetDateTime::parse(text, rfc3339)
    };
    let seconds = parsed.map_err(|_| bad())?.unix_timestamp();
    u64::try_from(seconds).map_err(|_| bad())
}

/// Unix seconds as RFC 3339 (UTC).
pub fn format_time(seconds: u64) -> String {
    i64::try_from(seconds)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| seconds.to_string())
}

/// The answer of `GET /v1/analytics`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Report {
    /// Range start (RFC 3339, inclusive).
    pub from: String,
    /// Range end (RFC 3339, exclusive).
    pub to: String,
    /// Series bucket width.
    pub group_by: GroupBy,
    /// The breakdown asked for, if any (each site's `cdn.groups`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breakdown: Option<Breakdown>,
    /// One entry per site asked for.
    pub sites: Vec<SiteReport>,
}

/// One site's figures.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SiteReport {
    /// The site.
    pub site: String,
    /// What minification and precompression save, from deploys.
    pub deploys: DeployAnalytics,
    /// What the origin served; absent for sites this service's origin does not serve.
    pub origin: Option<OriginAnalytics>,
    /// What the CDN in front served, from its ingested logs; absent without any in the
    /// range.
    pub cdn: Option<CdnAnalytics>,
}

/// The CDN's traffic for one site, from its logs (`edgeship logs ingest`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CdnAnalytics {
    /// In the range (whole hours overlapping it; whole days with `group_by=day`).
    pub in_range: CdnTotals,
    /// Per bucket of `group_by`, oldest first; buckets without requests are left out.
    pub series: Vec<CdnBucket>,
    /// The paths with the most bytes sent in the range (at most [`TOP_PATHS`]).
    pub top_paths_by_bytes: Vec<TopPath>,
    /// The paths with the most misses in the range (at most [`TOP_PATHS`]).
    pub top_paths_by_misses: Vec<TopPath>,
    /// With a breakdown (`group_by=type|encoding|cache_status|path`): the range's traffic
    /// per group, most bytes first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Group>,
}

/// One group of a breakdown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Group {
    /// The content type, encoding, cache status or path.
    pub key: String,
    /// Bytes sent.
    pub bytes: u64,
    /// Requests, where the data counts them per group (cache status, path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
}

/// Paths listed per top-paths table of a report.
pub const TOP_PATHS: usize = 20;

/// One bucket of CDN traffic.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct CdnBucket {
    /// Bucket start (RFC 3339).
    pub start: String,
    /// Its figures.
    #[serde(flatten)]
    pub totals: CdnTotals,
}

/// A path of the top-paths tables.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TopPath {
    /// The URL path.
    pub path: String,
    /// Its figures.
    #[serde(flatten)]
    pub totals: PathTotals,
}

/// Deploy savings of one site.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeployAnalytics {
    /// The site as its last deploy left it, per content type.
    pub current: SavingsByType,
    /// What deploys uploaded since counting began.
    pub all_time: ShippedTotals,
    /// What deploys uploaded in the range (whole UTC days overlapping it).
    pub in_range: ShippedTotals,
    /// Per day overlapping the range, oldest first; days without deploys are left out.
    /// Deploys are counted per day, so `group_by=hour` still yields daily buckets here.
    pub series: Vec<ShippedBucket>,
}

/// What deploys uploaded in one bucket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShippedBucket {
    /// Bucket start (RFC 3339).
    pub start: String,
    /// Its figures.
    #[serde(flatten)]
    pub totals: ShippedTotals,
}

/// Origin traffic of one site.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OriginAnalytics {
    /// Since counting began.
    pub all_time: OriginTotals,
    /// In the range (whole hours overlapping it).
    pub in_range: OriginTotals,
    /// Per bucket of `group_by`, oldest first; buckets without traffic are left out.
    pub series: Vec<OriginBucket>,
}

/// What the origin served in one bucket.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct OriginBucket {
    /// Bucket start (RFC 3339).
    pub start: String,
    /// Its figures.
    #[serde(flatten)]
    pub totals: OriginTotals,
}

/// Reads the report for `query` from the cache layer. `origin_site` is the site this
/// service's origin serves (its traffic is counted); other sites get no origin section.
pub async fn build(
    cache: &Cache,
    query: &Query,
    origin_site: Option<&str>,
) -> Result<Report, ReportError> {
    let mut sites = Vec::with_capacity(query.sites.len());
    for site in &query.sites {
        let origin = match origin_site {
            Some(served) if served == site.as_str() => {
                Some(origin_section(cache, site, query).await?)
            }
            _ => None,
        };
        sites.push(SiteReport {
            site: site.clone(),
            deploys: deploy_section(cache, site, query).await?,
            origin,
            cdn: cdn_section(cache, site, query).await?,
        });
    }
    Ok(Report {
        from: format_time(query.from),
        to: format_time(query.to),
        group_by: query.group_by,
        breakdown: query.breakdown,
        sites,
    })
}

async fn deploy_section(
    cache: &Cache,
    site: &str,
    query: &Query,
) -> Result<DeployAnalytics, ReportError> {
    let mut in_range = ShippedTotals::default();
    let mut series = Vec::new();
    let first = day_start(UNIX_EPOCH + Duration::from_secs(query.from));
    let mut day = first;
    while day < query.to {
        let totals = super::shipped_on(cache, site, day).await?;
        if totals != ShippedTotals::default() {
            in_range.add(&totals);
            series.push(ShippedBucket {
                start: format_time(day),
                totals,
            });
        }
        day += 86_400;
    }
    Ok(DeployAnalytics {
        current: super::current(cache, site).await?,
        all_time: super::shipped(cache, site).await?,
        in_range,
        series,
    })
}

async fn origin_section(
    cache: &Cache,
    site: &str,
    query: &Query,
) -> Result<OriginAnalytics, ReportError> {
    let at = |seconds: u64| UNIX_EPOCH + Duration::from_secs(seconds);
    let hours = origin_hourly(cache, site, at(query.from), at(query.to)).await?;
    let mut in_range = OriginTotals::default();
    let mut series: Vec<(u64, OriginTotals)> = Vec::new();
    let width = query.group_by.seconds();
    for hour in hours {
        in_range.add(&hour.totals);
        let start = hour.hour / width * width;
        match series.last_mut() {
            Some((last, totals)) if *last == start => totals.add(&hour.totals),
            _ => series.push((start, hour.totals)),
        }
    }
    Ok(OriginAnalytics {
        all_time: origin_totals(cache, site).await?,
        in_range,
        series: series
            .into_iter()
            .map(|(start, totals)| OriginBucket {
                start: format_time(start),
                totals,
            })
            .collect(),
    })
}

async fn cdn_section(
    cache: &Cache,
    site: &str,
    query: &Query,
) -> Result<Option<CdnAnalytics>, ReportError> {
    let buckets = match query.group_by {
        GroupBy::Hour => super::logs::hourly(cache, site, query.from, query.to).await?,
        GroupBy::Day => super::logs::daily(cache, site, query.from, query.to).await?,
    };
    if buckets.is_empty() {
        return Ok(None);
    }
    let mut in_range = CdnTotals::default();
    for (_, totals) in &buckets {
        in_range.add(totals);
    }
    let mut paths: std::collections::BTreeMap<String, PathTotals> = Default::default();
    let mut day = query.from - query.from % 86_400;
    while day < query.to {
        for (path, totals) in super::logs::top_paths_of_day(cache, site, day).await? {
            let entry = paths.entry(path).or_default();
            entry.requests += totals.requests;
            entry.bytes += totals.bytes;
            entry.misses += totals.misses;
        }
        day += 86_400;
    }
    let top = |key: fn(&PathTotals) -> u64| {
        let mut ranked: Vec<TopPath> = paths
            .iter()
            .filter(|(_, totals)| key(totals) > 0)
            .map(|(path, totals)| TopPath {
                path: path.clone(),
                totals: *totals,
            })
            .collect();
        ranked.sort_by(|a, b| {
            key(&b.totals)
                .cmp(&key(&a.totals))
                .then(a.path.cmp(&b.path))
        });
        ranked.truncate(TOP_PATHS);
        ranked
    };
    let group = |key: &str, bytes: u64, requests: Option<u64>| Group {
        key: key.to_owned(),
        bytes,
        requests,
    };
    let mut groups: Vec<Group> = match query.breakdown {
        None => Vec::new(),
        Some(Breakdown::Type) => in_range
            .bytes_by_type
            .iter()
            .map(|(k, b)| group(k, *b, None))
            .collect(),
        Some(Breakdown::Encoding) => in_range
            .bytes_by_encoding
            .iter()
            .map(|(k, b)| group(k, *b, None))
            .collect(),
        Some(Breakdown::CacheStatus) => vec![
            group("hit", in_range.hit_bytes, Some(in_range.hits)),
            group("miss", in_range.miss_bytes, Some(in_range.misses)),
            group(
                "other",
                in_range
                    .bytes
                    .saturating_sub(in_range.hit_bytes + in_range.miss_bytes),
                Some(in_range.other),
            ),
        ],
        Some(Breakdown::Path) => top(|t| t.bytes)
            .into_iter()
            .map(|p| group(&p.path, p.totals.bytes, Some(p.totals.requests)))
            .collect(),
    };
    groups.sort_by(|a, b| b.bytes.cmp(&a.bytes).then(a.key.cmp(&b.key)));
    Ok(Some(CdnAnalytics {
        groups,
        top_paths_by_bytes: top(|t| t.bytes),
        top_paths_by_misses: top(|t| t.misses),
        in_range,
        series: buckets
            .into_iter()
            .map(|(start, totals)| CdnBucket {
                start: format_time(start),
                totals,
            })
            .collect(),
    }))
}

fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_796_040_000; // 2026-11-30T12:00:00Z

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW)
    }

    #[test]
    fn times_parse_as_seconds_dates_and_rfc3339() {
        assert_eq!(parse_time("from", "1796040000").unwrap(), NOW);
        assert_eq!(parse_time("from", "2026-11-30").unwrap(), NOW - 12 * 3600);
        assert_eq!(parse_time("from", "2026-11-30T12:00:00Z").unwrap(), NOW);
        assert_eq!(
            parse_time("from", "2026-11-30T13:00:00+01:00").unwrap(),
            NOW
        );
        assert_eq!(format_time(NOW), "2026-11-30T12:00:00Z");
        assert_eq!(parse_time("to", "253402300799").unwrap(), MAX_TIME);
        for bad in [
            "yesterday",
            "2026-13-01",
            "",
            "-5",
            "2026-11-30T12:00:00",
            "253402300800",
            "18446744073709551615",
        ] {
            let err = parse_time("to", bad).unwrap_err();
            assert!(
                matches!(err, ReportError::BadTime { param: "to", .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn defaults_are_the_last_week_by_day_and_short_ranges_go_by_hour() {
        let q = Query::parse(vec![], None, None, None, now()).unwrap();
        assert_eq!(
            (q.from, q.to, q.group_by),
            (NOW - 7 * 86_400, NOW, GroupBy::Day)
        );
        let q = Query::parse(vec![], Some("2026-11-30"), None, None, now()).unwrap();
        assert_eq!(q.group_by, GroupBy::Hour);
        let q = Query::parse(vec![], Some("2026-11-30"), None, Some("day"), now()).unwrap();
        assert_eq!(q.group_by, GroupBy::Day);
        // Widened to whole hours.
        let q = Query::parse(vec![], Some("1796040001"), Some("1796043599"), None, now()).unwrap();
        assert_eq!((q.from, q.to), (NOW, NOW + 3600));
    }

    #[test]
    fn empty_overlong_ranges_and_unknown_groupings_are_refused() {
        let empty = Query::parse(vec![], Some("2026-11-30"), Some("2026-11-29"), None, now());
        assert!(matches!(empty, Err(ReportError::BadRange(m)) if m.contains("empty")));
        let long = Query::parse(vec![], Some("2025-01-01"), None, None, now());
        assert!(matches!(long, Err(ReportError::BadRange(m)) if m.contains("at most 40 days")));
        let group = Query::parse(vec![], None, None, Some("week"), now());
        assert!(matches!(group, Err(ReportError::BadGroupBy(g)) if g == "week"));
    }

    #[tokio::test]
    async fn origin_hours_fold_into_days_and_sites_without_an_origin_get_none() {
        let cache = Cache::memory();
        // As the origin's flush writes one br response of 100 bytes standing for 400.
        let hour = crate::analytics::origin::current_hour();
        for (field, delta) in [
            ("br:requests", 1),
            ("br:bytes", 100),
            ("br:identity_bytes", 400),
        ] {
            crate::analytics::origin::add_served(&cache, "www", hour, field, delta)
                .await
                .unwrap();
        }
        let to = unix_seconds(SystemTime::now()) + 1;
        let query = Query {
            sites: vec!["www".into(), "docs".into()],
            from: to - 86_400,
            to,
            group_by: GroupBy::Day,
            breakdown: None,
        };
        let report = build(&cache, &query, Some("www")).await.unwrap();
        let origin = report.sites[0].origin.as_ref().unwrap();
        assert_eq!(origin.in_range.bytes, 100);
        assert_eq!(origin.in_range.saved_bytes, 300);
        assert_eq!(origin.all_time, origin.in_range);
        assert_eq!(origin.series.len(), 1);
        assert!(origin.series[0].start.ends_with("T00:00:00Z"));
        assert!(report.sites[1].origin.is_none());
        assert_eq!(report.sites[1].deploys.all_time, ShippedTotals::default());
    }
}
