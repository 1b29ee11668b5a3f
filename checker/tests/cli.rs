//! The `larder-check` binary: report shape and exit codes.

mod support;

use std::path::Path;
use std::process::Command;

use larder_checker::simulate::{SimConfig, SimObject, simulate_seeded};
use larder_checker::{Event, NodeId, OpName, Value, Version, write_history_file};
use serde_json::json;
use support::{End, Hist};

fn run(history: &[Event], extra: &[&str]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.jsonl");
    write_history_file(&path, history).expect("write history");
    run_path(&path, extra)
}

fn run_path(path: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_larder-check"))
        .arg(path)
        .args(extra)
        .output()
        .expect("run larder-check");
    let code = out.status.code().expect("exited");
    let report = serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null);
    (code, report)
}

fn verdicts(report: &serde_json::Value) -> Vec<(String, String)> {
    report["checkers"]
        .as_array()
        .expect("checkers")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().expect("name").to_owned(),
                c["verdict"].as_str().expect("verdict").to_owned(),
            )
        })
        .collect()
}

#[test]
fn a_correct_history_passes_every_checker_with_exit_0() {
    let config = SimConfig {
        object: SimObject::Counter,
        processes: 4,
        ops: 60,
        final_read: true,
        ..SimConfig::default()
    };
    let (code, report) = run(&simulate_seeded(&config, 7), &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["verdict"], "pass");
    let names: Vec<String> = verdicts(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["linearizability", "lost_writes", "duplicates", "fencing"]
    );
    assert!(report["checkers"][0]["elapsed_ms"].is_number());
}

#[test]
fn a_violation_exits_1_and_names_the_checker() {
    let mut h = Hist::default();
    h.write(1, 1, 0, End::Ok(None), 10);
    h.write(1, 2, 20, End::Ok(None), 30);
    h.read(2, Some(1), 40, 50);
    let (code, report) = run(&h.events, &[]);
    assert_eq!(code, 1);
    assert_eq!(report["verdict"], "fail");
    assert!(verdicts(&report).contains(&("linearizability".into(), "fail".into())));
    assert!(verdicts(&report).contains(&("lost_writes".into(), "fail".into())));
}

#[test]
fn an_undecided_check_exits_3_never_0() {
    let mut h = Hist::default();
    for p in 0..5 {
        h.write(p, p as i64, 0, End::Ok(None), 100);
    }
    h.read(9, Some(2), 200, 210);
    let (code, report) = run(&h.events, &["--steps-max", "2"]);
    assert_eq!(code, 3, "{report:#}");
    assert_eq!(report["verdict"], "unknown");
    assert_eq!(
        report["checkers"][0]["details"]["undecided"][0]["reason"],
        "step_budget"
    );
}

#[test]
fn unreadable_or_malformed_input_exits_4() {
    let (code, _) = run_path(Path::new("/nonexistent/history.jsonl"), &[]);
    assert_eq!(code, 4);
    let mut h = Hist::default();
    h.read(1, None, 0, 10);
    h.events.swap(0, 1);
    let (code, _) = run(&h.events, &[]);
    assert_eq!(code, 4);
}

#[test]
fn kv_histories_are_judged_against_the_kv_file() {
    let mut h = Hist::default();
    let done = h.op_on(
        1,
        "ns",
        OpName::Put,
        "k",
        Some(Value::Text("x".into())),
        0,
        End::Ok(None),
        5,
    );
    done.version = Some(Version(vec![10, 0, 1]));
    done.node = Some(NodeId(1));
    let entry = json!({"k": {"value": "x", "version": [10, 0, 1]}});
    let kv = json!({
        "replicas": {"namespaces": {"ns": [1, 2]}},
        "convergence_bound_ms": 5000,
        "snapshots": [
            {"after_heal_ms": 100, "nodes": [
                {"node": 1, "namespaces": {"ns": entry}},
                {"node": 2, "namespaces": {}}]},
            {"after_heal_ms": 2100, "nodes": [
                {"node": 1, "namespaces": {"ns": entry}},
                {"node": 2, "namespaces": {"ns": entry}},
                {"node": 3, "namespaces": {}}]}
        ]
    });
    let dir = tempfile::tempdir().expect("temp dir");
    let kv_path = dir.path().join("kv.json");
    std::fs::write(&kv_path, kv.to_string()).expect("write kv");
    let kv_arg = kv_path.to_str().expect("utf-8 path");
    let (code, report) = run(&h.events, &["--kv", kv_arg]);
    assert_eq!(code, 0, "{report:#}");
    let names: Vec<String> = verdicts(&report).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "linearizability",
            "lost_writes",
            "duplicates",
            "fencing",
            "kv_convergence",
            "kv_writes",
            "residency"
        ]
    );
    let (code, report) = run(&h.events, &[]);
    assert_eq!(code, 3, "KV writes without dumps are undecided: {report:#}");
}
