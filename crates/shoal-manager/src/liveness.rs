//! Node liveness on the leader: heartbeats in, Ready/Down decisions out.
//!
//! A node is Down after `3 × period` without a heartbeat. A new leader has no heartbeat
//! history, so it gives every node `6 × period` from the moment it took over before marking it
//! Down (swarmkit's grace), which avoids a false "down" storm on every leader change.
//!
//! The leader's loop notices its leadership up to a tick after Raft made it leader, and the
//! heartbeat handler may have taken heartbeats meanwhile; [`LivenessTracker::take_over`] keeps
//! those. (Dropping them put every node that joined right after `swarm init` under the
//! 6-period grace: a worker killed in its first heartbeat period was marked Down only ~30 s
//! after the new term began instead of 3 periods after its last heartbeat.)

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

    /// The tracker of a term this manager has just noticed it leads: the grace for nodes it
    /// has not heard from starts `now`, and the heartbeats `current` took within the last
    /// period (this term's, taken before the leader loop noticed) still count. Older entries
    /// (a tracker left from an earlier term) are dropped rather than judged.
    pub fn take_over(current: Option<LivenessTracker>, period: Duration, now: Instant) -> Self {
        let mut t = LivenessTracker::new(period, now);
        if let Some(old) = current {
            t.last_seen = old
                .last_seen
                .into_iter()
                .filter(|(_, (seen, _))| now.saturating_duration_since(*seen) <= period)
                .collect();
        }
        t
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
    fn heartbeats_taken_before_the_leader_loop_noticed_still_count() {
        let p = Duration::from_secs(5);
        let t0 = Instant::now();
        // Raft made this manager leader; a worker heartbeats before the loop's tick.
        let mut early = LivenessTracker::new(p, t0);
        early.heartbeat("w", t0 + Duration::from_millis(100));
        let t = LivenessTracker::take_over(Some(early), p, t0 + Duration::from_millis(500));
        // The worker dies right away: Down 3 periods after that heartbeat, not after the
        // 6-period grace of a node never heard from.
        let hb = t0 + Duration::from_millis(100);
        assert_eq!(t.verdict("w", hb + Duration::from_secs(14)), Verdict::Ready);
        assert_eq!(t.verdict("w", hb + Duration::from_secs(16)), Verdict::Down);
        // A node not heard from in this term still gets the grace.
        assert_eq!(
            t.verdict("x", t0 + Duration::from_secs(16)),
            Verdict::Unknown
        );
    }

    #[test]
    fn a_tracker_from_an_earlier_term_is_not_judged() {
        let p = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut old = LivenessTracker::new(p, t0);
        old.heartbeat("w", t0);
        // Leadership came back a minute later: w's old heartbeat says nothing now.
        let back = t0 + Duration::from_secs(60);
        let t = LivenessTracker::take_over(Some(old), p, back);
        assert_eq!(
            t.verdict("w", back + Duration::from_secs(1)),
            Verdict::Unknown
        );
        assert_eq!(
            t.verdict("w", back + Duration::from_secs(31)),
            Verdict::Down
        );
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
