//! Latency histograms and the figures a bench prints (a line of text, or one JSON object).

use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::json;

/// An empty latency histogram: microseconds up to 60 s, 3 significant digits.
pub(super) fn histogram() -> anyhow::Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).context("histogram")
}

fn millis(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(super) fn report(
    json_out: bool,
    title: &str,
    ops: u64,
    errors: u64,
    elapsed: Duration,
    h: &Histogram<u64>,
    extra: serde_json::Value,
) {
    let rate = ops as f64 / elapsed.as_secs_f64();
    if json_out {
        println!(
            "{}",
            json!({
                "bench": title, "ops": ops, "errors": errors, "seconds": elapsed.as_secs_f64(),
                "ops_per_sec": rate, "p50_ms": millis(h, 0.5), "p99_ms": millis(h, 0.99),
                "p999_ms": millis(h, 0.999), "max_ms": h.max() as f64 / 1000.0, "params": extra,
            })
        );
    } else if title.starts_with("propagation") {
        println!(
            "{title}: {ops} writes, {errors} not seen in time; delay ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            millis(h, 0.5),
            millis(h, 0.99),
            millis(h, 0.999),
            h.max() as f64 / 1000.0
        );
    } else {
        println!(
            "{title}: {ops} ops in {:.1} s = {rate:.0} ops/s, errors {errors}; latency ms p50 {:.3} p99 {:.3} p99.9 {:.3} max {:.3}",
            elapsed.as_secs_f64(),
            millis(h, 0.5),
            millis(h, 0.99),
            millis(h, 0.999),
            h.max() as f64 / 1000.0
        );
    }
}
