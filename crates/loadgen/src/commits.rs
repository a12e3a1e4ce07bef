//! What Coffer's commit pipeline did while a scenario was measured, read from the
//! server's own `/metrics` before and after the window: how many database transactions
//! (commits) it ran, how many events each carried, and how long each took.
//!
//! The pipeline has one writer, so the share of the window it spent inside commits
//! ("writer busy") says whether the store, or something in front of it, is the limit:
//! near 100 % the serial commit is the bottleneck and only cheaper or larger commits
//! help; well under it, the requests do not reach the pipeline fast enough.

use std::time::Duration;

use crate::api::Api;

/// The pipeline's cumulative figures at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommitCounters {
    /// Commits run (`coffer_commit_seconds_count`).
    pub commits: f64,
    /// Seconds spent in them (`coffer_commit_seconds_sum`).
    pub seconds: f64,
    /// Events (transfers and accounts) they carried (`coffer_commit_batch_events_sum`).
    pub events: f64,
    /// Requests they carried (`coffer_commit_batch_requests_sum`).
    pub requests: f64,
}

impl CommitCounters {
    /// Parses the counters out of a Prometheus text page; absent series count as zero
    /// (no commit yet).
    pub fn parse(text: &str) -> Self {
        let value = |name: &str| {
            text.lines()
                .filter_map(|line| line.strip_prefix(name))
                // `name 12.5` exactly: not `name_bucket{…}` nor a longer name.
                .filter_map(|rest| rest.strip_prefix(' '))
                .find_map(|rest| rest.trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Self {
            commits: value("coffer_commit_seconds_count"),
            seconds: value("coffer_commit_seconds_sum"),
            events: value("coffer_commit_batch_events_sum"),
            requests: value("coffer_commit_batch_requests_sum"),
        }
    }

    /// Reads the server's counters now; `None` when `/metrics` cannot be read (a remote
    /// server may not expose it).
    pub async fn read(api: &Api) -> Option<Self> {
        api.metrics().await.ok().map(|text| Self::parse(&text))
    }

    /// A one-line summary of the commits between `self` and `later`, over `window`.
    pub fn summary(&self, later: &Self, window: Duration) -> String {
        let commits = later.commits - self.commits;
        let seconds = later.seconds - self.seconds;
        let events = later.events - self.events;
        let requests = later.requests - self.requests;
        let window = window.as_secs_f64().max(f64::MIN_POSITIVE);
        if commits <= 0.0 {
            return "no commits while measuring".into();
        }
        format!(
            "{:.0} commits/s, {:.1} events and {:.1} requests per commit, {:.2} ms per commit, writer busy {:.0} % of the window",
            commits / window,
            events / commits,
            requests / commits,
            seconds / commits * 1000.0,
            seconds / window * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_sums_and_counts_not_the_buckets() {
        let text = "# TYPE coffer_commit_seconds histogram\n\
            coffer_commit_seconds_bucket{le=\"0.001\"} 3\n\
            coffer_commit_seconds_sum 0.25\n\
            coffer_commit_seconds_count 10\n\
            coffer_commit_batch_events_sum 400\n\
            coffer_commit_batch_events_count 10\n\
            coffer_commit_batch_requests_sum 40\n";
        let counters = CommitCounters::parse(text);
        assert_eq!(counters, CommitCounters { commits: 10.0, seconds: 0.25, events: 400.0, requests: 40.0 });
        let summary = CommitCounters::default().summary(&counters, Duration::from_secs(1));
        assert!(
            summary.starts_with("10 commits/s, 40.0 events and 4.0 requests per commit, 25.00 ms"),
            "{summary}"
        );
        assert!(summary.ends_with("writer busy 25 % of the window"), "{summary}");
    }

    #[test]
    fn no_series_yet_is_zero() {
        assert_eq!(CommitCounters::parse(""), CommitCounters::default());
    }
}
