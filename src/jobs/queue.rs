//! The job queue shared by every `serve` replica: a Redis Stream with one consumer group.
//!
//! A replica that accepts a deploy or purge saves the job (see [`super::JobStore`]) and
//! adds its id to the stream; whichever replica has a free worker reads it
//! (`XREADGROUP`) and runs it. An entry stays pending until the job has ended
//! (`XACK`, then `XDEL`), and the replica running it checks in every third of
//! [`JobsConfig::claim_after_secs`], which resets the entry's idle time. A replica that
//! dies stops checking in; after `claim_after_secs` another replica claims the entry
//! (`XAUTOCLAIM`) and runs the job again from its saved state. Running a job twice is
//! safe by design: the deploy engine checks what is stored and uploads only the rest,
//! and a purge sends only the batches its saved state has not sent, with the same
//! caller references.
//!
//! Check-ins go through a script that resets the entry's idle time only while this
//! replica still owns it, so a replica that stalled past the timeout learns that its
//! job was claimed and stops running it.
//!
//! Without Redis there is no queue: jobs run in the process that accepted them.

use std::time::Duration;

use ::redis::streams::{StreamAutoClaimReply, StreamId, StreamReadReply};
use ::redis::{Cmd, Script};
use serde::{Deserialize, Serialize};

use crate::cache::redis::{RedisOptions, RedisStore};
use crate::cache::{CacheError, Keyspace};
use crate::config::ConfigError;

/// The `[jobs]` section: how replicas share deploy and purge jobs through Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JobsConfig {
    /// Jobs one replica runs at once (deploys and purges together).
    pub concurrency: usize,
    /// A queued job whose replica has not checked in for this long (it died, or lost
    /// Redis) is claimed by another replica and continued from its saved state.
    pub claim_after_secs: u64,
    /// How long a replica's read of the queue waits for new jobs before checking for
    /// orphaned ones again, in milliseconds.
    pub poll_ms: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            claim_after_secs: 60,
            poll_ms: 2000,
        }
    }
}

impl JobsConfig {
    /// Checks the ranges; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: format!("jobs.{key}"),
                message,
            })
        };
        if !(1..=256).contains(&self.concurrency) {
            return bad(
                "concurrency",
                format!("{} is not in 1..=256", self.concurrency),
            );
        }
        if !(3..=86_400).contains(&self.claim_after_secs) {
            return bad(
                "claim_after_secs",
                format!("{} is not in 3..=86400", self.claim_after_secs),
            );
        }
        if !(10..=60_000).contains(&self.poll_ms) {
            return bad("poll_ms", format!("{} is not in 10..=60000", self.poll_ms));
        }
        Ok(())
    }

    /// How often a running job's replica checks in.
    pub fn check_in_interval(&self) -> Duration {
        Duration::from_millis(self.claim_after_secs * 1000 / 3)
    }
}

/// The consumer group every replica reads in.
const GROUP: &str = "workers";

/// At most about this many entries are kept in the stream (finished ones are deleted
/// anyway; this bounds a stream nobody reads).
const MAX_ENTRIES: usize = 100_000;

/// Resets a pending entry's idle time if `consumer` still owns it: 1 if so, 0 if another
/// replica claimed it (or it was acknowledged).
const CHECK_IN: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if pending[1] == nil or pending[1][2] ~= ARGV[2] then
  return 0
end
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
return 1
";

/// Where a replica notes the jobs it queued, one file per job holding its stream entry,
/// until it sees them finished. Redis without persistence forgets the queue when it
/// restarts; a job whose entry is gone while its record says it has not finished (and
/// it has not changed for `claim_after_secs`) is run by the replica that queued it, which
/// still has its record and, for a deploy, its staged archive in the site's storage.
pub fn marks_dir(data_dir: &std::path::Path) -> std::path::PathBuf {
    data_dir.join("queued")
}

/// Notes that this replica queued `job` as `entry` (see [`marks_dir`]).
pub fn mark(data_dir: &std::path::Path, job: &str, entry: &str) {
    let dir = marks_dir(data_dir);
    if let Err(err) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join(job), entry))
    {
        tracing::warn!(job, error = %err, "cannot note the queued job; if Redis loses the queue, it is not run");
    }
}

/// A queued job handed to this replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The stream entry (acknowledged when the job ends).
    pub entry: String,
    /// The job's id (its first letter says its kind).
    pub job: String,
    /// It was claimed from a replica that stopped checking in, not read new.
    pub claimed: bool,
}

/// The queue: the stream, the group, and this replica's name in it.
#[derive(Debug)]
pub struct JobQueue {
    /// Commands that answer at once.
    redis: RedisStore,
    /// Blocking reads, on a connection of their own (a blocked connection answers
    /// nothing else).
    reader: RedisStore,
    stream: String,
    consumer: String,
    config: JobsConfig,
    check_in: Script,
}

impl JobQueue {
    /// The queue in the Redis at `url` (with `options`), under `keys`. `consumer` names
    /// this replica (unique per process). Does not connect yet.
    pub fn new(
        url: &str,
        options: RedisOptions,
        keys: &Keyspace,
        consumer: &str,
        config: JobsConfig,
    ) -> Result<Self, CacheError> {
        let wait = Duration::from_millis(config.poll_ms);
        let reader = RedisStore::new(
            url,
            RedisOptions {
                command_timeout: options.command_timeout + wait,
                ..options.clone()
            },
        )?;
        Ok(Self {
            redis: RedisStore::new(url, options)?,
            reader,
            stream: keys.global().key("jobs:queue").as_str().to_owned(),
            consumer: consumer.to_owned(),
            config,
            check_in: Script::new(CHECK_IN),
        })
    }

    /// A consumer name for this process: host, process id and a random suffix.
    pub fn consumer_name() -> String {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        let host = if host.is_empty() { "host".into() } else { host };
        let id = super::new_id(super::JobKind::Purge);
        format!("{host}-{}-{}", std::process::id(), &id[id.len() - 8..])
    }

    /// The settings in force.
    pub fn config(&self) -> &JobsConfig {
        &self.config
    }

    /// This replica's name in the group.
    pub fn consumer(&self) -> &str {
        &self.consumer
    }

    /// Creates the stream and the group if they do not exist (idempotent; every replica
    /// calls it at start).
    pub async fn ensure_group(&self) -> Result<(), CacheError> {
        let mut cmd = Cmd::new();
        cmd.arg("XGROUP")
            .arg("CREATE")
            .arg(&self.stream)
            .arg(GROUP)
            .arg("0")
            .arg("MKSTREAM");
        match self
            .redis
            .command::<()>("queue_create", &self.stream, &cmd)
            .await
        {
            Ok(()) => Ok(()),
            Err(CacheError::Backend { message, .. }) if message.contains("BUSYGROUP") => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// Queues a saved job; returns its stream entry.
    pub async fn enqueue(&self, job: &str) -> Result<String, CacheError> {
        let mut cmd = Cmd::new();
        cmd.arg("XADD")
            .arg(&self.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(MAX_ENTRIES)
            .arg("*")
            .arg("job")
            .arg(job);
        self.redis.command("queue_add", &self.stream, &cmd).await
    }

    /// Up to `max` jobs for this replica: first entries orphaned by replicas that
    /// stopped checking in, then new ones, waiting up to `poll_ms` when there are none.
    pub async fn next(&self, max: usize) -> Result<Vec<Delivery>, CacheError> {
        let mut deliveries = self.claim_orphans(max).await?;
        if deliveries.len() >= max {
            return Ok(deliveries);
        }
        let mut cmd = Cmd::new();
        cmd.arg("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&self.consumer)
            .arg("COUNT")
            .arg(max - deliveries.len())
            .arg("BLOCK")
            .arg(self.config.poll_ms)
            .arg("STREAMS")
            .arg(&self.stream)
            .arg(">");
        let reply: Option<StreamReadReply> = self
            .reader
            .command("queue_read", &self.stream, &cmd)
            .await?;
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                if let Some(delivery) = self.delivery(entry, false).await? {
                    deliveries.push(delivery);
                }
            }
        }
        Ok(deliveries)
    }

    /// Claims up to `max` entries idle longer than `claim_after_secs`.
    async fn claim_orphans(&self, max: usize) -> Result<Vec<Delivery>, CacheError> {
        let mut cmd = Cmd::new();
        cmd.arg("XAUTOCLAIM")
            .arg(&self.stream)
            .arg(GROUP)
            .arg(&self.consumer)
            .arg(self.config.claim_after_secs * 1000)
            .arg("0-0")
            .arg("COUNT")
            .arg(max);
        let reply: StreamAutoClaimReply = self
            .redis
            .command("queue_claim", &self.stream, &cmd)
            .await?;
        if !reply.deleted_ids.is_empty() {
            // Entries deleted while pending: nothing to run, only to acknowledge.
            self.acknowledge(&reply.deleted_ids).await?;
        }
        let mut deliveries = Vec::new();
        for entry in reply.claimed {
            if let Some(delivery) = self.delivery(entry, true).await? {
                tracing::warn!(
                    job = %delivery.job,
                    entry = %delivery.entry,
                    "claimed a job whose replica stopped checking in; continuing it"
                );
                deliveries.push(delivery);
            }
        }
        Ok(deliveries)
    }

    /// The delivery of an entry; an entry without a job id (not ours) is acknowledged
    /// and skipped.
    async fn delivery(
        &self,
        entry: StreamId,
        claimed: bool,
    ) -> Result<Option<Delivery>, CacheError> {
        let job: Option<String> = entry.get("job");
        match job.filter(|job| super::valid_job_id(job)) {
            Some(job) => Ok(Some(Delivery {
                entry: entry.id,
                job,
                claimed,
            })),
            None => {
                tracing::warn!(entry = %entry.id, "a queue entry without a job id; dropped");
                self.acknowledge(std::slice::from_ref(&entry.id)).await?;
                Ok(None)
            }
        }
    }

    /// Checks in for a running job: `true` while this replica still owns it, `false`
    /// once another replica has claimed it (stop running it then).
    pub async fn check_in(&self, delivery: &Delivery) -> Result<bool, CacheError> {
        let owned: i64 = self
            .redis
            .script(
                "queue_check_in",
                &self.check_in,
                &[&self.stream],
                &[GROUP, &self.consumer, &delivery.entry],
            )
            .await?;
        Ok(owned == 1)
    }

    /// Marks a job's entry done: acknowledged and removed from the stream.
    pub async fn done(&self, delivery: &Delivery) -> Result<(), CacheError> {
        self.acknowledge(std::slice::from_ref(&delivery.entry))
            .await
    }

    async fn acknowledge(&self, entries: &[String]) -> Result<(), CacheError> {
        let mut ack = Cmd::new();
        ack.arg("XACK").arg(&self.stream).arg(GROUP).arg(entries);
        self.redis
            .command::<i64>("queue_ack", &self.stream, &ack)
            .await?;
        let mut delete = Cmd::new();
        delete.arg("XDEL").arg(&self.stream).arg(entries);
        self.redis
            .command::<i64>("queue_delete", &self.stream, &delete)
            .await?;
        Ok(())
    }

    /// Whether `entry` is still in the stream (waiting, or pending with a replica).
    pub async fn contains(&self, entry: &str) -> Result<bool, CacheError> {
        let mut range = Cmd::new();
        range.arg("XRANGE").arg(&self.stream).arg(entry).arg(entry);
        let found: Vec<::redis::Value> = self
            .redis
            .command("queue_range", &self.stream, &range)
            .await?;
        Ok(!found.is_empty())
    }

    /// Entries waiting or running, for metrics and tests: (in the stream, pending).
    pub async fn depth(&self) -> Result<(u64, u64), CacheError> {
        let mut len = Cmd::new();
        len.arg("XLEN").arg(&self.stream);
        let entries: u64 = self.redis.command("queue_len", &self.stream, &len).await?;
        let mut pending = Cmd::new();
        pending.arg("XPENDING").arg(&self.stream).arg(GROUP);
        let summary: ::redis::Value = self
            .redis
            .command("queue_pending", &self.stream, &pending)
            .await?;
        let pending = match summary {
            ::redis::Value::Array(parts) => match parts.first() {
                Some(::redis::Value::Int(n)) => u64::try_from(*n).unwrap_or_default(),
                _ => 0,
            },
            _ => 0,
        };
        Ok((entries, pending))
    }
}
