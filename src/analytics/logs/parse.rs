//! One log line of each CDN's format, as a [`LogRecord`]: CloudFront standard logs
//! (W3C, tab-separated, columns named by the `#Fields:` line), Cloudflare Logpush
//! `http_requests` (NDJSON) and Azure Front Door access logs (JSON records).

use serde_json::Value;

/// The formats edgeship reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// CloudFront standard access logs (legacy and v2 W3C output).
    Cloudfront,
    /// Cloudflare Logpush, the `http_requests` dataset as NDJSON.
    Logpush,
    /// Azure Front Door access logs (`FrontDoorAccessLog` records).
    FrontDoor,
}

impl LogFormat {
    /// The name used on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloudfront => "cloudfront",
            Self::Logpush => "logpush",
            Self::FrontDoor => "front_door",
        }
    }

    /// Recognises a format from the first line that is not blank.
    pub fn detect(line: &str) -> Option<Self> {
        let line = line.trim_start();
        if line.starts_with("#Version") || line.starts_with("#Fields") {
            return Some(Self::Cloudfront);
        }
        if line.starts_with('{') {
            if line.contains("\"ClientRequest") || line.contains("\"EdgeResponse") {
                return Some(Self::Logpush);
            }
            if line.contains("FrontDoorAccessLog")
                || line.contains("\"records\"")
                || line.contains("\"requestUri\"")
            {
                return Some(Self::FrontDoor);
            }
        }
        None
    }
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cloudfront" => Ok(Self::Cloudfront),
            "logpush" | "cloudflare" => Ok(Self::Logpush),
            "front_door" | "frontdoor" | "azure" => Ok(Self::FrontDoor),
            other => Err(format!(
                "unknown log format `{other}` (cloudfront, logpush, front_door)"
            )),
        }
    }
}

/// How the CDN answered a request, by its cache status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Served from the edge cache.
    Hit,
    /// Fetched from the origin.
    Miss,
    /// Neither (errors, redirects, uncacheable, bypassed).
    Other,
}

impl CacheResult {
    /// The name used in stored fields and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Miss => "miss",
            Self::Other => "other",
        }
    }
}

/// One request from a CDN log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// When it started, Unix seconds.
    pub time: u64,
    /// The URL path (no query string, percent-decoding left as logged).
    pub path: String,
    /// The status sent.
    pub status: u16,
    /// Bytes sent to the client (with headers where the CDN counts them).
    pub bytes: u64,
    /// Body bytes, where the log has them separately.
    pub body_bytes: Option<u64>,
    /// The cache status.
    pub cache: CacheResult,
    /// The response's content type, where logged.
    pub content_type: Option<String>,
}

/// The columns of a CloudFront log, from its `#Fields:` line.
#[derive(Debug, Clone, Default)]
pub struct CloudfrontColumns {
    date: Option<usize>,
    time: Option<usize>,
    bytes: Option<usize>,
    path: Option<usize>,
    status: Option<usize>,
    result: Option<usize>,
    content_type: Option<usize>,
    content_len: Option<usize>,
    count: usize,
}

impl CloudfrontColumns {
    /// The columns a `#Fields:` line names (in any order, with any others).
    pub fn from_fields_line(line: &str) -> Self {
        let names: Vec<&str> = line
            .trim_start_matches("#Fields:")
            .split_whitespace()
            .collect();
        let at = |name: &str| names.iter().position(|n| *n == name);
        Self {
            date: at("date"),
            time: at("time"),
            bytes: at("sc-bytes"),
            path: at("cs-uri-stem"),
            status: at("sc-status"),
            result: at("x-edge-result-type"),
            content_type: at("sc-content-type"),
            content_len: at("sc-content-len"),
            count: names.len(),
        }
    }

    /// Whether the columns a record needs are all there.
    pub fn is_usable(&self) -> bool {
        self.date.is_some()
            && self.time.is_some()
            && self.bytes.is_some()
            && self.path.is_some()
            && self.status.is_some()
            && self.result.is_some()
    }
}

/// A CloudFront data line (`columns` from the file's `#Fields:` line).
pub fn cloudfront(line: &str, columns: &CloudfrontColumns) -> Result<LogRecord, String> {
    let fields: Vec<&str> = line.split('\t').collect();
    if fields.len() != columns.count {
        return Err(format!(
            "{} fields, the #Fields line names {}",
            fields.len(),
            columns.count
        ));
    }
    let get = |index: Option<usize>| index.and_then(|i| fields.get(i).copied());
    let (Some(date), Some(time)) = (get(columns.date), get(columns.time)) else {
        return Err("no date or time".into());
    };
    let time = unix_time(&format!("{date}T{time}Z"))
        .ok_or_else(|| format!("bad date/time `{date} {time}`"))?;
    let number = |index, what: &str| -> Result<Option<u64>, String> {
        match get(index) {
            None | Some("-") => Ok(None),
            Some(value) => value
                .parse()
                .map(Some)
                .map_err(|_| format!("bad {what} `{value}`")),
        }
    };
    let bytes = number(columns.bytes, "sc-bytes")?.ok_or("no sc-bytes")?;
    let status = number(columns.status, "sc-status")?.unwrap_or(0);
    let status = u16::try_from(status).map_err(|_| format!("bad sc-status `{status}`"))?;
    let path = get(columns.path).unwrap_or("-");
    if !path.starts_with('/') {
        return Err(format!("bad cs-uri-stem `{path}`"));
    }
    let cache = match get(columns.result).unwrap_or("-") {
        "Hit" | "RefreshHit" | "OriginShieldHit" => CacheResult::Hit,
        "Miss" => CacheResult::Miss,
        _ => CacheResult::Other,
    };
    Ok(LogRecord {
        time,
        path: path.to_string(),
        status,
        bytes,
        body_bytes: number(columns.content_len, "sc-content-len")?,
        cache,
        content_type: get(columns.content_type)
            .filter(|t| *t != "-")
            .map(str::to_owned),
    })
}

/// A number that may be logged as a JSON number or a string (`"200"`).
fn json_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A Logpush timestamp: RFC 3339, Unix seconds or Unix nanoseconds (Logpush's default).
fn logpush_time(value: &Value) -> Option<u64> {
    match value {
        Value::String(s) => unix_time(s).or_else(|| s.parse::<u64>().ok().map(seconds_of)),
        Value::Number(n) => n.as_u64().map(seconds_of),
        _ => None,
    }
}

/// Seconds from a Unix timestamp in seconds, milliseconds or nanoseconds.
fn seconds_of(n: u64) -> u64 {
    match n {
        n if n > 100_000_000_000_000 => n / 1_000_000_000,
        n if n > 100_000_000_000 => n / 1_000,
        n => n,
    }
}

/// A Logpush `http_requests` line.
pub fn logpush(line: &str) -> Result<LogRecord, String> {
    let value: Value = serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
    let time = value
        .get("EdgeStartTimestamp")
        .and_then(logpush_time)
        .ok_or("no EdgeStartTimestamp")?;
    let path = value
        .get("ClientRequestPath")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| {
            value
                .get("ClientRequestURI")
                .and_then(Value::as_str)
                .map(|uri| uri.split('?').next().unwrap_or(uri).to_owned())
        })
        .ok_or("no ClientRequestPath or ClientRequestURI")?;
    let status = value
        .get("EdgeResponseStatus")
        .and_then(json_number)
        .ok_or("no EdgeResponseStatus")?;
    let bytes = value
        .get("EdgeResponseBytes")
        .and_then(json_number)
        .ok_or("no EdgeResponseBytes")?;
    let cache = match value
        .get("CacheCacheStatus")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
    {
        "hit" | "stale" | "updating" | "revalidated" | "stream_hit" => CacheResult::Hit,
        "miss" | "expired" => CacheResult::Miss,
        _ => CacheResult::Other,
    };
    Ok(LogRecord {
        time,
        path,
        status: u16::try_from(status).map_err(|_| "bad EdgeResponseStatus")?,
        bytes,
        body_bytes: value.get("EdgeResponseBodyBytes").and_then(json_number),
        cache,
        content_type: value
            .get("EdgeResponseContentType")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    })
}

/// The records of a Front Door line: one record, or a `{"records": […]}` batch.
pub fn front_door(line: &str) -> Result<Vec<Result<LogRecord, String>>, String> {
    let value: Value = serde_json::from_str(line).map_err(|err| format!("not JSON: {err}"))?;
    match value.get("records").and_then(Value::as_array) {
        Some(records) => Ok(records.iter().map(front_door_record).collect()),
        None => Ok(vec![front_door_record(&value)]),
    }
}

fn front_door_record(value: &Value) -> Result<LogRecord, String> {
    if let Some(category) = value.get("category").and_then(Value::as_str)
        && category != "FrontDoorAccessLog"
    {
        return Err(format!("a `{category}` record, not FrontDoorAccessLog"));
    }
    let properties = value.get("properties").unwrap_or(value);
    let time = value
        .get("time")
        .or_else(|| properties.get("time"))
        .and_then(Value::as_str)
        .and_then(unix_time)
        .ok_or("no time")?;
    let uri = properties
        .get("requestUri")
        .and_then(Value::as_str)
        .ok_or("no requestUri")?;
    // `https://host/path?query` → `/path`.
    let after_scheme = uri.split_once("://").map_or(uri, |(_, rest)| rest);
    let path = match after_scheme.find('/') {
        Some(at) if uri.contains("://") => &after_scheme[at..],
        _ if uri.starts_with('/') => uri,
        _ => "/",
    };
    let path = path.split('?').next().unwrap_or(path).to_string();
    let status = properties
        .get("httpStatusCode")
        .and_then(json_number)
        .ok_or("no httpStatusCode")?;
    let bytes = properties
        .get("responseBytes")
        .and_then(json_number)
        .ok_or("no responseBytes")?;
    let cache = match properties
        .get("cacheStatus")
        .and_then(Value::as_str)
        .unwrap_or("N/A")
        .to_ascii_uppercase()
        .as_str()
    {
        "HIT" | "REMOTE_HIT" | "PARTIAL_HIT" => CacheResult::Hit,
        "MISS" => CacheResult::Miss,
        _ => CacheResult::Other,
    };
    Ok(LogRecord {
        time,
        path,
        status: u16::try_from(status).map_err(|_| "bad httpStatusCode")?,
        bytes,
        body_bytes: None,
        cache,
        content_type: None,
    })
}

/// Unix seconds of an RFC 3339 time (`2026-12-02T06:00:00Z`, fractions allowed).
fn unix_time(text: &str) -> Option<u64> {
    let parsed =
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
    u64::try_from(parsed.unix_timestamp()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloudfront_columns_follow_the_fields_line_in_any_order() {
        let columns = CloudfrontColumns::from_fields_line(
            "#Fields: sc-status time date x-extra cs-uri-stem sc-bytes x-edge-result-type",
        );
        assert!(columns.is_usable());
        let record = cloudfront(
            "200\t06:30:01\t2026-12-02\tz\t/a.css\t1234\tRefreshHit",
            &columns,
        )
        .unwrap();
        assert_eq!(record.time, 1_796_193_001);
        assert_eq!((record.status, record.bytes), (200, 1234));
        assert_eq!(record.cache, CacheResult::Hit);
        assert!(cloudfront("200\t06:30:01", &columns).is_err());
        assert!(cloudfront("x\t06:30:01\t2026-12-02\tz\t/a.css\t1234\tMiss", &columns).is_err());
    }

    #[test]
    fn logpush_and_front_door_lines_parse_with_their_cache_statuses() {
        let line = r#"{"EdgeStartTimestamp":1796193001000000000,"ClientRequestPath":"/a.js","EdgeResponseStatus":200,"EdgeResponseBytes":900,"EdgeResponseBodyBytes":700,"CacheCacheStatus":"expired","EdgeResponseContentType":"text/javascript"}"#;
        let record = logpush(line).unwrap();
        assert_eq!(record.time, 1_796_193_001);
        assert_eq!(record.cache, CacheResult::Miss);
        assert_eq!(record.body_bytes, Some(700));
        let rfc = r#"{"EdgeStartTimestamp":"2026-12-02T06:30:01Z","ClientRequestURI":"/a.js?v=1","EdgeResponseStatus":"304","EdgeResponseBytes":"120","CacheCacheStatus":"revalidated"}"#;
        let record = logpush(rfc).unwrap();
        assert_eq!((record.path.as_str(), record.status), ("/a.js", 304));
        assert_eq!(record.cache, CacheResult::Hit);
        let batch = r#"{"records":[{"time":"2026-12-02T06:30:01.1234Z","category":"FrontDoorAccessLog","properties":{"requestUri":"https://www.example.com:443/b/c.css?x=1","httpStatusCode":"200","responseBytes":"512","cacheStatus":"REMOTE_HIT"}},{"time":"2026-12-02T06:30:02Z","category":"FrontDoorHealthProbeLog","properties":{}}]}"#;
        let records = front_door(batch).unwrap();
        let first = records[0].as_ref().unwrap();
        assert_eq!(first.path, "/b/c.css");
        assert_eq!((first.bytes, first.cache), (512, CacheResult::Hit));
        assert!(records[1].is_err());
        assert_eq!(
            LogFormat::detect("#Version: 1.0"),
            Some(LogFormat::Cloudfront)
        );
        assert_eq!(LogFormat::detect(line), Some(LogFormat::Logpush));
        assert_eq!(LogFormat::detect(batch), Some(LogFormat::FrontDoor));
        assert_eq!(LogFormat::detect("garbage"), None);
    }
}
