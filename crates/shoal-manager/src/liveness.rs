//! Node liveness on the leader: heartbeats in, Ready/Down decisions out.
//!
//! A node is Down after `3 × period` without a heartbeat. A new leader has no heartbeat
//! history, so it gives every node `6 × period` from the moment it took over before marking it
//! Down (swarmkit's grace), which avoids a false "down" storm on every leader change.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const DOWN_AFTER_PERIODS: u32 = 3;
pub const LEADER_GRACE_PERIODS: u32 = 6;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ready,
    Down,
    /// Not enough information yet (grace after a leader change).
    Unknown,
}

pub struct LivenessTracker {
    period: Duration,
    leader_since: Instant,
    /// Last heartbeat of each node and the period it was told then: after the period is
    /// shortened, a node keeps its old pace until its next heartbeat and must not count as
    /// Down meanwhile.
    last_seen: HashMap<String, (Instant, Duration)>,
}

impl LivenessTracker {
    pub fn new(period: Duration, now: Instant) -> Self {
        LivenessTracker {
            period,
            leader_since: now,
            last_seen: HashMap::new(),
        }
    }

    pub fn period(&self) -> Duration {
        self.period
    }

    pub fn set_period(&mut self, period: Duration) {
        self.period = period;
    }

    pub fn heartbeat(&mut self, node_id: &str, now: Instant) {
        self.last_seen
            .insert(node_id.to_string(), (now, self.period));
    }

    pub fn forget(&mut self, node_id: &str) {
        self.last_seen.remove(node_id);
    }

    pub fn verdict(&self, node_id: &str, now: Instant) -> Verdict {
        match self.last_seen.get(node_id) {
            Some((seen, told))
                if now.duration_since(*seen) <= self.period.max(*told) * DOWN_AFTER_PERIODS =>
            {
                Verdict::Ready
            }
            Some(_) => Verdict::Down,
            None if now.duration_since(self.leader_since) > self.period * LEADER_GRACE_PERIODS => {
                Verdict::Down
            }
            None => Verdict::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_then_down_after_three_periods() {
        let t0 = Instant::now();
        let mut t = LivenessTracker::new(Duration::from_secs(5), t0);
        t.heartbeat("n", t0);
        assert_eq!(t.verdict("n", t0 + Duration::from_secs(14)), Verdict::Ready);
        assert_eq!(t.verdict("n", t0 + Duration::from_secs(16)), Verdict::Down);
    }

    #[test]
    fn a_shorter_period_waits_for_the_pace_the_node_was_told() {
        let t0 = Instant::now();
        let mut t = LivenessTracker::new(Duration::from_secs(5), t0);
        t.heartbeat("n", t0);
        t.set_period(Duration::from_secs(1));
        // Told 5 s at its last heartbeat: still Ready 4 s later, Down after 3 x 5 s.
        assert_eq!(t.verdict("n", t0 + Duration::from_secs(4)), Verdict::Ready);
        assert_eq!(t.verdict("n", t0 + Duration::from_secs(16)), Verdict::Down);
        // Once told 1 s, 3 s of silence is enough.
        t.heartbeat("n", t0 + Duration::from_secs(5));
        assert_eq!(t.verdict("n", t0 + Duration::from_secs(9)), Verdict::Down);
    }

    #[test]
    fn new_leader_waits_grace_before_down() {
        let t0 = Instant::now();
        let t = LivenessTracker::new(Duration::from_secs(1), t0);
        assert_eq!(
            t.verdict("n", t0 + Duration::from_secs(5)),
            Verdict::Unknown
        );
        assert_eq!(t.verdict("n", t0 + Duration::from_secs(7)), Verdict::Down);
    }
}
