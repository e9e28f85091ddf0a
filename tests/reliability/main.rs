//! The reliability suite of issue 19 that drives the service from outside: `edgeship
//! deploy` and `edgeship serve` killed with SIGKILL at seeded points, Redis killed under
//! a mixed API load, schemathesis against `/openapi.json`, README claims, and (behind
//! `scripts/test --long`) a bounded soak. One test binary, so it links once.
//!
//! Randomised tests print their seed; `EDGESHIP_TEST_SEED=<n>` replays a run.

#[path = "../common/mod.rs"]
mod common;

mod claims;
mod kills;
mod redis_outage;
mod replicas;
mod schemathesis;
mod serve;
mod site;
mod soak;

/// The reason long tests are ignored with; `scripts/test --long` runs them.
pub const LONG: &str = "long suite: scripts/test --long";

/// A small seeded generator (splitmix64): the kill points and load mixes of a run.
pub struct Rng(u64);

impl Rng {
    /// The generator of `test`: seeded from `EDGESHIP_TEST_SEED` when set, else from the
    /// clock; the seed is printed so a failing run can be replayed.
    pub fn for_test(test: &str) -> Self {
        let seed = std::env::var("EDGESHIP_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    % 1_000_000
            });
        eprintln!("{test}: seed {seed} (replay with EDGESHIP_TEST_SEED={seed})");
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `low..high` (`high > low`).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next_u64() % (high - low)
    }
}
