//! Adaptive concurrency: start at the configured level, then additive increase while calls
//! are fast, multiplicative decrease on throttling or when latency climbs — so a deploy
//! neither hammers a throttling provider nor idles on a fast one (AIMD, as TCP does).
//!
//! Callers should wait for a permit *before* spawning work (one waiter), not spawn every
//! task and let each wait: every release wakes all waiters, so ten thousand waiting
//! tasks made a 10,000-file upload spend most of its CPU on wake-ups.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

#[derive(Debug)]
struct State {
    limit: f64,
    in_flight: usize,
    /// The fastest call seen recently: the latency of an unloaded provider.
    base_latency: Option<Duration>,
    last_decrease: Option<Instant>,
}

/// A concurrency limit that adapts to how the provider responds.
#[derive(Debug)]
pub struct AdaptiveLimit {
    // std Mutex: a few arithmetic updates, never held across an await.
    state: Mutex<State>,
    notify: Notify,
    min: f64,
    max: f64,
}

/// A slot in the limit, released on drop; it can move into a spawned task.
#[derive(Debug)]
pub struct Permit {
    limit: Arc<AdaptiveLimit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.lock().in_flight -= 1;
        self.limit.notify.notify_waiters();
    }
}

impl AdaptiveLimit {
    /// Starts at `initial`, never below 1 nor above `max`.
    pub fn new(initial: usize, max: usize) -> Self {
        let max = max.max(initial).max(1) as f64;
        Self {
            state: Mutex::new(State {
                limit: initial.max(1) as f64,
                in_flight: 0,
                base_latency: None,
                last_decrease: None,
            }),
            notify: Notify::new(),
            min: 1.0,
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit, rounded down.
    pub fn current(&self) -> usize {
        self.lock().limit as usize
    }

    /// Waits for a free slot.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        loop {
            let notified = self.notify.notified();
            {
                let mut state = self.lock();
                if (state.in_flight as f64) < state.limit.floor().max(self.min) {
                    state.in_flight += 1;
                    return Permit {
                        limit: Arc::clone(self),
                    };
                }
            }
            notified.await;
        }
    }

    /// A call succeeded after `latency`: grow by about one slot per round of calls,
    /// unless latency is more than twice the unloaded latency (a queue is building).
    pub fn on_success(&self, latency: Duration) {
        let mut state = self.lock();
        let base = *state.base_latency.get_or_insert(latency);
        // Let the baseline drift up slowly, so one lucky fast call does not pin it.
        let base = if latency < base {
            latency
        } else {
            base + (latency - base) / 64
        };
        state.base_latency = Some(base);
        if latency > base * 2 + Duration::from_millis(5) {
            state.limit = (state.limit * 0.95).max(self.min);
        } else {
            state.limit = (state.limit + 1.0 / state.limit).min(self.max);
        }
        drop(state);
        self.notify.notify_waiters();
    }

    /// The provider throttled us: halve, at most once per 100 ms so one burst of throttled
    /// in-flight calls counts as one signal.
    pub fn on_throttle(&self) {
        let mut state = self.lock();
        let now = Instant::now();
        if state
            .last_decrease
            .is_none_or(|t| now.duration_since(t) > Duration::from_millis(100))
        {
            state.limit = (state.limit / 2.0).max(self.min);
            state.last_decrease = Some(now);
            tracing::debug!(limit = state.limit, "throttled: concurrency lowered");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_while_fast_and_halves_on_throttle() {
        let limit = AdaptiveLimit::new(8, 64);
        for _ in 0..200 {
            limit.on_success(Duration::from_millis(10));
        }
        let grown = limit.current();
        assert!(grown > 20, "fast calls grow the limit: {grown}");
        limit.on_throttle();
        assert_eq!(limit.current(), grown / 2);
        limit.on_throttle();
        assert_eq!(
            limit.current(),
            grown / 2,
            "a burst of throttles is one signal"
        );
        for _ in 0..10_000 {
            limit.on_success(Duration::from_millis(10));
        }
        assert_eq!(limit.current(), 64, "never above the maximum");
    }

    #[test]
    fn rising_latency_shrinks_the_limit() {
        let limit = AdaptiveLimit::new(32, 64);
        limit.on_success(Duration::from_millis(10));
        for _ in 0..20 {
            limit.on_success(Duration::from_millis(100));
        }
        assert!(limit.current() < 32, "{}", limit.current());
    }

    #[tokio::test]
    async fn never_more_in_flight_than_the_limit() {
        let limit = std::sync::Arc::new(AdaptiveLimit::new(3, 3));
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let now = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (limit, peak, now) = (limit.clone(), peak.clone(), now.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = limit.acquire().await;
                let n = now.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                peak.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
                now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(peak.load(std::sync::atomic::Ordering::SeqCst), 3);
    }
}
