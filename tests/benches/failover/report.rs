//! The failover bench's report: a table of quantiles per series, then one JSON line.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::{NODES, REGION, Round, TARGET, settings};

/// Quantiles of a series, in ms: (n, p50, p90, p99, max).
fn summary(values: impl Iterator<Item = f64>) -> anyhow::Result<(u64, f64, f64, f64, f64)> {
    // Microseconds up to 10 minutes, 3 significant digits.
    let mut h = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for v in values {
        h.record((v.max(0.001) * 1000.0) as u64)?;
    }
    let q = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    Ok((h.len(), q(0.5), q(0.9), q(0.99), h.max() as f64 / 1000.0))
}

/// A named series of times, in ms.
type Series<'a> = (&'a str, Vec<f64>);

/// Prints the quantiles table and a summary of the rounds, then the whole as one JSON
/// line.
pub fn report(rounds: &[Round], final_value: i64) -> anyhow::Result<()> {
    let json_series = print_quantiles(&series(rounds))?;
    let errors = retry_errors(rounds);
    let slow = slow_rounds(rounds);
    let max = rounds.iter().map(|r| r.serving_ms).fold(0.0, f64::max);
    println!(
        "kills {}, owner was the directory leader in {}, rounds over {} ms: {}, errors met while retrying {errors:?}; counter {final_value} = acknowledged writes",
        rounds.len(),
        rounds.iter().filter(|r| r.killed_was_leader).count(),
        TARGET.as_millis(),
        slow.len(),
    );
    println!(
        "target max <= {} ms: {}",
        TARGET.as_millis(),
        if max <= TARGET.as_secs_f64() * 1000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "{}",
        json!({
            "bench": "failover", "kills": rounds.len(), "nodes": NODES, "region": REGION,
            "settings": settings()?.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "series": json_series, "slow_rounds": slow, "retry_errors": errors,
            "acknowledged_writes": final_value,
        })
    );
    Ok(())
}

/// The series the report shows: the whole failover, split by whether the owner led the
/// directory, and its parts (detection, then reassignment and activation).
fn series(rounds: &[Round]) -> Vec<Series<'static>> {
    vec![
        (
            "kill -> write acknowledged (all rounds)",
            rounds.iter().map(|r| r.serving_ms).collect(),
        ),
        (
            "  owner was not the directory leader",
            rounds
                .iter()
                .filter(|r| !r.killed_was_leader)
                .map(|r| r.serving_ms)
                .collect(),
        ),
        (
            "  owner was the directory leader",
            rounds
                .iter()
                .filter(|r| r.killed_was_leader)
                .map(|r| r.serving_ms)
                .collect(),
        ),
        (
            "kill -> marked down (leader's clock)",
            rounds.iter().filter_map(|r| r.marked_down_ms).collect(),
        ),
        (
            "kill -> new owner seen at the writer",
            rounds.iter().filter_map(|r| r.new_owner_seen_ms).collect(),
        ),
        (
            "marked down -> write acknowledged",
            rounds
                .iter()
                .filter_map(|r| r.marked_down_ms.map(|d| r.serving_ms - d))
                .collect(),
        ),
        (
            "new owner seen -> write acknowledged",
            rounds
                .iter()
                .filter_map(|r| r.new_owner_seen_ms.map(|d| r.serving_ms - d))
                .collect(),
        ),
    ]
}

/// Prints a row of quantiles per series; returns them for the JSON line (an empty series
/// is printed with its count only, and left out of the JSON).
fn print_quantiles(series: &[Series]) -> anyhow::Result<serde_json::Map<String, Value>> {
    println!(
        "\n{:<42} {:>5} {:>9} {:>9} {:>9} {:>9}",
        "failover (ms)", "n", "p50", "p90", "p99", "max"
    );
    let mut json_series = serde_json::Map::new();
    for (name, values) in series {
        if values.is_empty() {
            println!("{name:<42} {:>5}", 0);
            continue;
        }
        let (n, p50, p90, p99, max) = summary(values.iter().copied())?;
        println!("{name:<42} {n:>5} {p50:>9.1} {p90:>9.1} {p99:>9.1} {max:>9.1}");
        json_series.insert(
            name.trim().to_string(),
            json!({"n": n, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": max}),
        );
    }
    Ok(json_series)
}

/// The error codes the writer met while retrying, over all rounds.
fn retry_errors(rounds: &[Round]) -> BTreeMap<&str, u32> {
    let mut errors: BTreeMap<&str, u32> = BTreeMap::new();
    for r in rounds {
        for (code, count) in &r.errors {
            *errors.entry(code).or_insert(0) += count;
        }
    }
    errors
}

/// The rounds slower than [`TARGET`], in full.
fn slow_rounds(rounds: &[Round]) -> Vec<Value> {
    rounds
        .iter()
        .enumerate()
        .filter(|(_, r)| r.serving_ms > TARGET.as_secs_f64() * 1000.0)
        .map(|(i, r)| json!({"round": i, "killed": r.killed, "leader": r.killed_was_leader, "serving_ms": r.serving_ms, "marked_down_ms": r.marked_down_ms, "new_owner_seen_ms": r.new_owner_seen_ms, "attempts": r.attempts}))
        .collect()
}
