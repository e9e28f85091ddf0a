//! This replica's share of the job queue (see [`crate::jobs::queue`]): a loop that takes
//! up to `jobs.concurrency` queued deploys and purges at a time, runs each on the
//! service's job runtime, checks in while it runs, and acknowledges it when it ends.
//!
//! A job whose check-in finds that another replica claimed it (this one stalled past
//! `jobs.claim_after_secs`) is stopped here: the claimer runs it from its saved state.
//! A job that cannot even be read (Redis unreachable) is left pending, and claimed again
//! once it is idle for `claim_after_secs`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::AppState;
use crate::jobs::JobKind;
use crate::jobs::queue::{Delivery, JobQueue};

/// How a queued job's run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It ended (done, partial, failed or dropped) and its state is saved: acknowledge it.
    Ended,
    /// It could not run now (its state is unreadable): leave it pending.
    Retry,
}

/// The running loop; [`Workers::stop`] ends it (jobs already running continue under the
/// service's shutdown grace).
#[derive(Debug)]
pub struct Workers {
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Workers {
    /// Stops taking jobs from the queue.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts taking jobs from `queue`.
pub fn start(state: AppState, queue: Arc<JobQueue>) -> Workers {
    let stop = CancellationToken::new();
    let task = tokio::spawn(take_jobs(state, queue, stop.clone()));
    Workers { stop, task }
}

async fn take_jobs(state: AppState, queue: Arc<JobQueue>, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(queue.config().concurrency));
    let mut group_ready = false;
    let mut failing = false;
    let sweep_every = Duration::from_secs(queue.config().claim_after_secs);
    let mut last_sweep = tokio::time::Instant::now();
    tracing::info!(
        consumer = queue.consumer(),
        "taking deploy and purge jobs from the queue"
    );
    loop {
        if last_sweep.elapsed() >= sweep_every {
            sweep_marks(&state, &queue).await;
            last_sweep = tokio::time::Instant::now();
        }
        let first = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => return,
            },
            () = stop.cancelled() => return,
        };
        let free = slots.available_permits() + 1;
        let taken = async {
            if !group_ready {
                queue.ensure_group().await?;
                group_ready = true;
            }
            queue.next(free).await
        };
        let deliveries = tokio::select! {
            taken = taken => taken,
            () = stop.cancelled() => return,
        };
        match deliveries {
            Ok(deliveries) => {
                if failing {
                    tracing::info!("the job queue answers again");
                    failing = false;
                }
                let mut first = Some(first);
                for delivery in deliveries {
                    let slot = match first.take() {
                        Some(slot) => slot,
                        None => match Arc::clone(&slots).acquire_owned().await {
                            Ok(slot) => slot,
                            Err(_) => return,
                        },
                    };
                    let (state_for_job, queue) = (state.clone(), Arc::clone(&queue));
                    state.spawn_job(async move {
                        run(&state_for_job, &queue, delivery).await;
                        drop(slot);
                    });
                }
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(error = %err, "cannot read the job queue; retrying every second");
                    failing = true;
                }
                // A Redis that restarted empty has no group any more: make it again.
                group_ready = false;
                drop(first);
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = stop.cancelled() => return,
                }
            }
        }
    }
}

/// Runs one delivery, checking in until it ends, then acknowledges it.
async fn run(state: &AppState, queue: &JobQueue, delivery: Delivery) {
    tracing::info!(job = %delivery.job, claimed = delivery.claimed, "running a queued job");
    let lost = CancellationToken::new();
    let check_ins = {
        let (lost, interval) = (lost.clone(), queue.config().check_in_interval());
        let delivery = delivery.clone();
        async move {
            loop {
                tokio::time::sleep(interval).await;
                match queue.check_in(&delivery).await {
                    Ok(true) => {}
                    Ok(false) => {
                        tracing::warn!(job = %delivery.job, "another replica claimed this job; stopping it here");
                        lost.cancel();
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(job = %delivery.job, error = %err, "cannot check in for a running job");
                    }
                }
            }
        }
    };
    let outcome = tokio::select! {
        outcome = run_job(state, &delivery) => Some(outcome),
        () = check_ins => None,
        () = lost.cancelled() => None,
    };
    match outcome {
        Some(Outcome::Ended) => {
            if let Err(err) = queue.done(&delivery).await {
                tracing::warn!(job = %delivery.job, error = %err, "cannot acknowledge a finished job; another replica will find it finished");
            }
        }
        Some(Outcome::Retry) | None => {}
    }
}

/// Runs a queued job by its kind (the first letter of its id).
async fn run_job(state: &AppState, delivery: &Delivery) -> Outcome {
    if JobKind::Deploy.owns(&delivery.job) {
        super::routes::deploy::run_queued(state, delivery).await
    } else if JobKind::Purge.owns(&delivery.job) {
        super::routes::purge::run_queued(state, delivery).await
    } else {
        tracing::warn!(job = %delivery.job, "a queued job of no known kind; dropped");
        Outcome::Ended
    }
}

/// Whether job `id` has finished, and when it last changed; `None` when there is no such
/// job (it expired).
async fn finished_and_changed<J: crate::jobs::Job>(
    state: &AppState,
    id: &str,
) -> Result<Option<(bool, u64)>, crate::jobs::JobError> {
    let job = state.job_store().load::<J>(id).await?;
    Ok(job.map(|job| (job.is_finished(), job.updated_at())))
}

/// Looks at the jobs this replica queued (see [`crate::jobs::queue::marks_dir`]): a
/// finished one's note is removed; one whose stream entry is gone (Redis restarted
/// without its data) although it has not finished, and whose record has not changed for
/// `claim_after_secs` (nobody runs it), is run here.
async fn sweep_marks(state: &AppState, queue: &JobQueue) {
    let dir = crate::jobs::queue::marks_dir(&state.config().data_dir);
    let Ok(mut entries) = tokio::fs::read_dir(&dir).await else {
        return;
    };
    let idle = queue.config().claim_after_secs;
    while let Ok(Some(file)) = entries.next_entry().await {
        let job = file.file_name().to_string_lossy().into_owned();
        let Ok(entry) = tokio::fs::read_to_string(file.path()).await else {
            continue;
        };
        let state_of = if JobKind::Deploy.owns(&job) {
            finished_and_changed::<crate::deploy::job::DeployJob>(state, &job).await
        } else if JobKind::Purge.owns(&job) {
            finished_and_changed::<crate::purge::job::PurgeJob>(state, &job).await
        } else {
            let _ = tokio::fs::remove_file(file.path()).await;
            continue;
        };
        let (finished, updated_at) = match state_of {
            Ok(Some(found)) => found,
            // Expired, or unreadable now: nothing to do (an unreadable one is looked at
            // again next time).
            Ok(None) => (true, 0),
            Err(_) => continue,
        };
        if finished {
            let _ = tokio::fs::remove_file(file.path()).await;
            continue;
        }
        match queue.contains(entry.trim()).await {
            Ok(true) => continue,
            Ok(false) if crate::jobs::unix_now().saturating_sub(updated_at) >= idle => {}
            Ok(false) | Err(_) => continue,
        }
        if JobKind::Deploy.owns(&job) && !super::routes::deploy::still_staged(state, &job).await {
            // Its archive is removed when a deploy ends: it ended on another replica,
            // whose copy of the record says how.
            let _ = tokio::fs::remove_file(file.path()).await;
            continue;
        }
        tracing::warn!(job = %job, "a job this replica queued is gone from the queue (Redis lost it) and nobody runs it; running it here");
        let _ = tokio::fs::remove_file(file.path()).await;
        let delivery = Delivery {
            entry: entry.trim().to_owned(),
            job: job.clone(),
            claimed: true,
        };
        let state_for_job = state.clone();
        state.spawn_job(async move {
            run_job(&state_for_job, &delivery).await;
        });
    }
}
