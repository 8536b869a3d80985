//! Progressive rollout of a new bundle across the clusters an Application targets: pure
//! scheduling. Clusters are ordered (by a label, then name) and admitted to the new bundle in
//! steps; a step proceeds when the clusters already admitted are Synced and Healthy (up to
//! `max_unavailable` may still be in progress) and an optional pause has passed; a Degraded
//! cluster halts the rollout; offline clusters are skipped after a timeout, and reported.

use serde::{Deserialize, Serialize};

/// How many clusters a step admits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepSize {
    Count(u32),
    Percent(u32),
}

/// A rollout strategy (absent: all clusters at once).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Strategy {
    pub step: StepSize,
    /// Admitted clusters that may still be in progress when the next step starts.
    #[serde(default)]
    pub max_unavailable: u32,
    /// Wait between a step completing and the next one starting.
    #[serde(default)]
    pub pause_secs: u64,
    /// Label whose value orders clusters (then the name); empty: by name.
    #[serde(default)]
    pub order_by: String,
    /// How long an offline admitted cluster may hold the rollout before it is skipped.
    #[serde(default = "default_offline_timeout")]
    pub offline_timeout_secs: u64,
}

fn default_offline_timeout() -> u64 {
    300
}

impl std::fmt::Display for StepSize {
    /// As [`StepSize::parse`] reads it: `2` or `25%`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepSize::Count(n) => write!(f, "{n}"),
            StepSize::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl StepSize {
    /// `"25%"` or `"2"`.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().strip_suffix('%') {
            Some(p) => p.parse().ok().filter(|p| (1..=100).contains(p)).map(StepSize::Percent),
            None => s.trim().parse().ok().filter(|n| *n >= 1).map(StepSize::Count),
        }
    }

    /// Clusters per step out of `total` (at least one).
    pub fn per_step(self, total: usize) -> usize {
        match self {
            StepSize::Count(n) => n as usize,
            StepSize::Percent(p) => (total * p as usize).div_ceil(100),
        }
        .max(1)
    }
}

/// Where one cluster stands with the bundle being rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Synced and Healthy at the bundle.
    Done,
    /// Not there yet (syncing, progressing, not reported).
    Pending,
    Degraded,
    /// Not connected since this time (Unix seconds).
    Offline {
        since: i64,
    },
}

/// One target cluster, in rollout order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub progress: Progress,
}

/// A rollout's durable state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct State {
    /// The bundle being rolled out.
    pub digest: String,
    /// How many clusters (in order) are admitted to it.
    pub admitted: usize,
    /// When the admitted clusters were last all done (for the pause); 0 if not.
    pub step_done_at: i64,
    /// Why the rollout is halted (empty: it is not).
    pub halted: String,
    pub aborted: bool,
    /// Admitted clusters no longer waited for (offline too long, or skipped on resume).
    pub skipped: Vec<String>,
}

/// Orders clusters: by the value of the `order_by` label, then name.
pub fn order(mut clusters: Vec<(String, String)>) -> Vec<String> {
    clusters.sort();
    clusters.into_iter().map(|(_, name)| name).collect()
}

/// The next state of a rollout, given where its clusters (in order) stand at `now`.
pub fn advance(strategy: &Strategy, state: &State, targets: &[Target], now: i64) -> State {
    let mut next = state.clone();
    if state.aborted {
        return next;
    }
    let admitted = &targets[..state.admitted.min(targets.len())];
    for t in admitted {
        if let Progress::Offline { since } = t.progress
            && now - since >= strategy.offline_timeout_secs as i64
            && !next.skipped.contains(&t.name)
        {
            next.skipped.push(t.name.clone());
        }
    }
    let waited_for = |t: &&Target| !next.skipped.contains(&t.name);
    if let Some(d) = admitted.iter().filter(waited_for).find(|t| t.progress == Progress::Degraded) {
        next.halted = format!(
            "halted: cluster {} is Degraded; commit a fix (the rollout starts again) or `bosun app rollout resume` to skip it",
            d.name
        );
        return next;
    }
    next.halted.clear();
    if state.admitted >= targets.len() {
        next.admitted = targets.len();
        return next;
    }
    let unfinished = admitted.iter().filter(waited_for).filter(|t| t.progress != Progress::Done).count();
    if unfinished > strategy.max_unavailable as usize {
        next.step_done_at = 0;
        return next;
    }
    if state.admitted > 0 && unfinished == 0 {
        if next.step_done_at == 0 {
            next.step_done_at = now;
        }
        if now - next.step_done_at < strategy.pause_secs as i64 {
            return next;
        }
    }
    next.admitted = (state.admitted + strategy.step.per_step(targets.len())).min(targets.len());
    next.step_done_at = 0;
    next
}

/// Resuming a halted rollout skips the clusters that halted it.
pub fn resume(state: &State, targets: &[Target]) -> State {
    let mut next = state.clone();
    for t in &targets[..state.admitted.min(targets.len())] {
        if t.progress == Progress::Degraded && !next.skipped.contains(&t.name) {
            next.skipped.push(t.name.clone());
        }
    }
    next.halted.clear();
    next.aborted = false;
    next
}

/// A one-line description for status.
pub fn describe(strategy: &Strategy, state: &State, total: usize) -> String {
    let per = strategy.step.per_step(total);
    let step = state.admitted.div_ceil(per).max(1);
    let steps = total.div_ceil(per).max(1);
    let mut s = if state.aborted {
        format!("aborted at {} of {total} clusters", state.admitted.min(total))
    } else if state.admitted >= total {
        format!("complete: {total} of {total} clusters")
    } else {
        format!("step {step}/{steps}: {} of {total} clusters admitted", state.admitted)
    };
    if !state.halted.is_empty() {
        s.push_str("; ");
        s.push_str(&state.halted);
    }
    if !state.skipped.is_empty() {
        s.push_str(&format!("; skipped (offline or resumed past): {}", state.skipped.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{Just, prop, prop_assert, prop_assert_eq, prop_oneof, proptest};
    use proptest::strategy::Strategy as _;

    fn strategy(step: StepSize) -> Strategy {
        Strategy { step, max_unavailable: 0, pause_secs: 0, order_by: String::new(), offline_timeout_secs: 60 }
    }

    fn targets(p: &[Progress]) -> Vec<Target> {
        p.iter().enumerate().map(|(i, p)| Target { name: format!("c{i}"), progress: *p }).collect()
    }

    #[test]
    fn steps_of_a_quarter_wait_for_health_and_halt_on_degraded() {
        use Progress::*;
        let s = strategy(StepSize::Percent(25));
        let st = advance(&s, &State::default(), &targets(&[Pending; 8]), 0);
        assert_eq!(st.admitted, 2, "first step admits 25%");
        let st2 = advance(&s, &st, &targets(&[Pending, Done, Pending, Pending, Pending, Pending, Pending, Pending]), 1);
        assert_eq!(st2.admitted, 2, "waits for both");
        let st3 = advance(&s, &st2, &targets(&[Done, Done, Pending, Pending, Pending, Pending, Pending, Pending]), 2);
        assert_eq!(st3.admitted, 4);
        let halted = advance(&s, &st3, &targets(&[Done, Done, Degraded, Done, Pending, Pending, Pending, Pending]), 3);
        assert_eq!(halted.admitted, 4);
        assert!(halted.halted.contains("c2 is Degraded"), "{}", halted.halted);
        let resumed = resume(&halted, &targets(&[Done, Done, Degraded, Done, Pending, Pending, Pending, Pending]));
        let go = advance(&s, &resumed, &targets(&[Done, Done, Degraded, Done, Pending, Pending, Pending, Pending]), 4);
        assert_eq!(go.admitted, 6, "resume skips the Degraded cluster");
        assert!(describe(&s, &go, 8).contains("step 3/4"));
    }

    #[test]
    fn pauses_offline_clusters_and_max_unavailable() {
        use Progress::*;
        let s = Strategy { pause_secs: 30, ..strategy(StepSize::Count(1)) };
        let st = State { admitted: 1, ..Default::default() };
        let t = targets(&[Done, Pending]);
        let a = advance(&s, &st, &t, 100);
        assert_eq!((a.admitted, a.step_done_at), (1, 100), "pause starts");
        assert_eq!(advance(&s, &a, &t, 129).admitted, 1);
        assert_eq!(advance(&s, &a, &t, 130).admitted, 2);
        let off = targets(&[Offline { since: 0 }, Pending]);
        assert_eq!(advance(&s, &st, &off, 59).admitted, 1, "offline holds until the timeout");
        let skipped = advance(&strategy(StepSize::Count(1)), &st, &off, 60);
        assert_eq!(skipped.admitted, 2);
        assert_eq!(skipped.skipped, ["c0"]);
        let overlap = Strategy { max_unavailable: 1, ..strategy(StepSize::Count(1)) };
        assert_eq!(advance(&overlap, &st, &targets(&[Pending, Pending, Pending]), 0).admitted, 2);
        let aborted = State { aborted: true, admitted: 1, ..Default::default() };
        assert_eq!(advance(&s, &aborted, &t, 1000).admitted, 1);
    }

    #[test]
    fn step_sizes() {
        assert_eq!(StepSize::parse("25%"), Some(StepSize::Percent(25)));
        assert_eq!(StepSize::parse("3"), Some(StepSize::Count(3)));
        for bad in ["0", "0%", "101%", "x", ""] {
            assert_eq!(StepSize::parse(bad), None, "{bad}");
        }
        assert_eq!(StepSize::Percent(25).per_step(3), 1);
        assert_eq!(StepSize::Percent(25).per_step(1000), 250);
        assert_eq!(
            order(vec![("2".into(), "a".into()), ("1".into(), "b".into()), ("1".into(), "a".into())]),
            ["a", "b", "a"]
        );
    }

    fn progress() -> impl proptest::strategy::Strategy<Value = Progress> {
        prop_oneof![
            Just(Progress::Done),
            Just(Progress::Pending),
            Just(Progress::Degraded),
            (0i64..100).prop_map(|s| Progress::Offline { since: s })
        ]
    }

    proptest! {
        #[test]
        fn admitted_never_shrinks_nor_passes_a_degraded_cluster(
            ps in prop::collection::vec(progress(), 1..20),
            admitted in 0usize..20,
            pct in 1u32..=100,
            now in 0i64..200,
        ) {
            let s = strategy(StepSize::Percent(pct));
            let t = targets(&ps);
            let st = State { admitted: admitted.min(t.len()), ..Default::default() };
            let next = advance(&s, &st, &t, now);
            prop_assert!(next.admitted >= st.admitted);
            prop_assert!(next.admitted <= t.len());
            let degraded = t[..st.admitted].iter().any(|x| x.progress == Progress::Degraded);
            if degraded { prop_assert_eq!(next.admitted, st.admitted); prop_assert!(!next.halted.is_empty()); }
            if next.admitted > st.admitted {
                prop_assert!(next.admitted - st.admitted <= StepSize::Percent(pct).per_step(t.len()));
            }
        }

        #[test]
        fn a_healthy_fleet_is_fully_admitted(n in 1usize..50, pct in 1u32..=100) {
            let s = strategy(StepSize::Percent(pct));
            let t = targets(&vec![Progress::Done; n]);
            let mut st = State::default();
            for i in 0..=n { st = advance(&s, &st, &t, i as i64); }
            prop_assert_eq!(st.admitted, n);
        }
    }
}
