//! What each sync moved in the last hour, per minute, for its dashboard: records sent and
//! received, and the lag (changes waiting to go out and to come in), sampled. Kept in
//! memory: a restart starts the hour afresh.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Minutes kept.
pub const WINDOW: usize = 60;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Minute {
    /// Minutes since the Unix epoch.
    pub at: i64,
    pub sent: u64,
    pub received: u64,
    /// The most seen waiting in that minute, each way.
    pub waiting_out: i64,
    pub waiting_in: i64,
}

#[derive(Clone, Default)]
pub struct Metrics {
    series: Arc<Mutex<HashMap<i64, VecDeque<Minute>>>>,
}

impl Metrics {
    fn with_minute(&self, sync_id: i64, now_ms: i64, f: impl FnOnce(&mut Minute)) {
        let minute = now_ms.div_euclid(60_000);
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let minutes = series.entry(sync_id).or_default();
        if minutes.back().is_none_or(|m| m.at != minute) {
            minutes.push_back(Minute {
                at: minute,
                ..Minute::default()
            });
        }
        while minutes
            .front()
            .is_some_and(|m| m.at <= minute - WINDOW as i64)
        {
            minutes.pop_front();
        }
        f(minutes.back_mut().expect("just pushed"));
    }

    pub fn sent(&self, sync_id: i64, now_ms: i64, records: usize) {
        self.with_minute(sync_id, now_ms, |m| m.sent += records as u64);
    }

    pub fn received(&self, sync_id: i64, now_ms: i64, records: usize) {
        self.with_minute(sync_id, now_ms, |m| m.received += records as u64);
    }

    pub fn waiting(&self, sync_id: i64, now_ms: i64, out: i64, incoming: i64) {
        self.with_minute(sync_id, now_ms, |m| {
            m.waiting_out = m.waiting_out.max(out);
            m.waiting_in = m.waiting_in.max(incoming);
        });
    }

    /// The last hour, oldest first, one entry per minute (empty minutes as zeros).
    pub fn last_hour(&self, sync_id: i64, now_ms: i64) -> Vec<Minute> {
        let now = now_ms.div_euclid(60_000);
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let known = series.get(&sync_id);
        (now - WINDOW as i64 + 1..=now)
            .map(|at| {
                known
                    .and_then(|m| m.iter().find(|m| m.at == at).copied())
                    .unwrap_or(Minute {
                        at,
                        ..Minute::default()
                    })
            })
            .collect()
    }
}

/// The last hour as a small SVG chart: records per minute sent (solid) and received
/// (dashed), and below them what was waiting each way. Numbers only go into it.
pub fn chart(minutes: &[Minute], sent_label: &str, received_label: &str) -> String {
    let (width, height, lag_height) = (600.0, 90.0, 40.0);
    let step = width / (minutes.len().max(2) - 1) as f64;
    let line = |values: Vec<f64>, top: f64, h: f64| {
        let max = values.iter().cloned().fold(1.0, f64::max);
        values
            .iter()
            .enumerate()
            .map(|(i, v)| format!("{:.1},{:.1}", i as f64 * step, top + h - v / max * h))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let sent = line(minutes.iter().map(|m| m.sent as f64).collect(), 0.0, height);
    let received = line(
        minutes.iter().map(|m| m.received as f64).collect(),
        0.0,
        height,
    );
    let out = line(
        minutes.iter().map(|m| m.waiting_out as f64).collect(),
        height + 10.0,
        lag_height,
    );
    let incoming = line(
        minutes.iter().map(|m| m.waiting_in as f64).collect(),
        height + 10.0,
        lag_height,
    );
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    format!(
        "<svg class=\"chart\" viewBox=\"-2 -2 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\">\
         <polyline points=\"{sent}\" fill=\"none\" stroke=\"#1f6feb\" stroke-width=\"2\"><title>{s}</title></polyline>\
         <polyline points=\"{received}\" fill=\"none\" stroke=\"#1a7f37\" stroke-width=\"2\" stroke-dasharray=\"5 3\"><title>{r}</title></polyline>\
         <polyline points=\"{out}\" fill=\"none\" stroke=\"#9a6700\" stroke-width=\"1.5\"/>\
         <polyline points=\"{incoming}\" fill=\"none\" stroke=\"#9a6700\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\
         </svg>",
        w = width + 4.0,
        h = height + lag_height + 14.0,
        s = escape(sent_label),
        r = escape(received_label),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_of_minutes_keeps_counts_in_their_minute() {
        let metrics = Metrics::default();
        let t0 = 1_000 * 60_000;
        metrics.sent(7, t0, 5);
        metrics.sent(7, t0 + 30_000, 2);
        metrics.received(7, t0 + 60_000, 3);
        metrics.waiting(7, t0 + 60_000, 40, 1);
        metrics.waiting(7, t0 + 61_000, 10, 0);
        let hour = metrics.last_hour(7, t0 + 60_000);
        assert_eq!(hour.len(), WINDOW);
        assert_eq!((hour[58].sent, hour[59].received), (7, 3));
        assert_eq!((hour[59].waiting_out, hour[59].waiting_in), (40, 1));
        // An hour later the old minutes are gone.
        metrics.sent(7, t0 + 61 * 60_000, 1);
        let later = metrics.last_hour(7, t0 + 61 * 60_000);
        assert_eq!(later.iter().map(|m| m.sent).sum::<u64>(), 1);
        assert!(chart(&later, "sent", "received").starts_with("<svg"));
    }
}
