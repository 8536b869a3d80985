//! What a benchmark prints: a human table, or one JSON object (`--json`), always with the
//! machine's core count and the build profile so figures are never read without them.

use std::time::Duration;

use serde_json::{Map, Value, json};

/// Percentiles of a set of latencies.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub n: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    pub fn of(samples: &[Duration]) -> Self {
        let mut s = samples.to_vec();
        s.sort();
        Self { n: s.len(), p50: percentile(&s, 0.5), p99: percentile(&s, 0.99), max: percentile(&s, 1.0) }
    }

    fn json(&self) -> Value {
        json!({"n": self.n, "p50_ms": ms(self.p50), "p99_ms": ms(self.p99), "max_ms": ms(self.max)})
    }
}

/// Nearest-rank percentile of sorted samples.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// One benchmark's results.
pub struct Report {
    name: String,
    params: Map<String, Value>,
    rows: Vec<(String, Summary)>,
    figures: Vec<(String, f64, String)>,
    budget: String,
}

impl Report {
    pub fn new(name: &str, budget: &str) -> Self {
        Self { name: name.into(), params: Map::new(), rows: Vec::new(), figures: Vec::new(), budget: budget.into() }
    }

    /// A parameter of the run (N, objects, window…).
    pub fn param(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.into(), value.into());
        self
    }

    /// A row of latencies (Bosun, or a floor).
    pub fn row(&mut self, label: &str, samples: &[Duration]) -> Summary {
        let s = Summary::of(samples);
        self.rows.push((label.into(), s));
        s
    }

    /// A single figure (`unit` is printed and becomes the JSON key's suffix).
    pub fn figure(&mut self, key: &str, value: f64, unit: &str) {
        self.figures.push((key.into(), value, unit.into()));
    }

    pub fn print(&self, json_out: bool) {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
        if json_out {
            let mut out = Map::new();
            out.insert("benchmark".into(), self.name.clone().into());
            out.insert("cores".into(), cores.into());
            out.insert("profile".into(), profile.into());
            out.extend(self.params.clone());
            let rows: Map<String, Value> = self.rows.iter().map(|(l, s)| (l.clone(), s.json())).collect();
            if !rows.is_empty() {
                out.insert("latency".into(), rows.into());
            }
            for (k, v, unit) in &self.figures {
                out.insert(format!("{k}_{}", unit.replace(['/', ' '], "_")), json!(v));
            }
            out.insert("budget".into(), self.budget.clone().into());
            println!("{}", Value::Object(out));
            return;
        }
        let params: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!("{} ({cores} cores, {profile} build, {})", self.name, params.join(", "));
        if !self.rows.is_empty() {
            let w = self.rows.iter().map(|(label, _)| label.chars().count()).max().unwrap_or(0).max(16);
            println!("  {:<w$} {:>6} {:>10} {:>10} {:>10}", "", "n", "p50 ms", "p99 ms", "max ms");
            for (label, s) in &self.rows {
                println!("  {:<w$} {:>6} {:>10.1} {:>10.1} {:>10.1}", label, s.n, ms(s.p50), ms(s.p99), ms(s.max));
            }
        }
        for (k, v, unit) in &self.figures {
            println!("  {k}: {v:.2} {unit}");
        }
        println!("  budget: {}", self.budget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let s: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        let sum = Summary::of(&s);
        assert_eq!(
            (sum.p50, sum.p99, sum.max),
            (Duration::from_millis(51), Duration::from_millis(99), Duration::from_millis(100))
        );
        assert_eq!(Summary::of(&[]).max, Duration::ZERO);
    }
}
