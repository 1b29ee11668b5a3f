//! The KV commands of the `larder` CLI.

use crate::STEP;
use crate::support::cli::Cli;
use crate::support::{TestCluster, wait_for};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_puts_gets_lists_and_deletes() {
    let cluster = TestCluster::start(1).await.expect("cluster");
    let cli = Cli::new(cluster.node(1));
    let (code, _, err) = cli.run(&["kv", "namespace", "create", "cli"], None);
    assert_eq!(code, Some(0), "{err}");
    wait_for("namespace usable", STEP, || async {
        cluster
            .node(1)
            .client()
            .kv("cli")
            .get("x")
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .expect("namespace");
    let (code, _, err) = cli.run(
        &[
            "kv",
            "put",
            "cli",
            "from-arg",
            "hello",
            "--ttl",
            "1h",
            "--metadata",
            r#"{"a":1}"#,
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = cli.run(&["kv", "put", "cli", "from-stdin"], Some(b"piped value"));
    assert_eq!(code, Some(0), "{err}");
    let (code, out, _) = cli.run(&["kv", "get", "cli", "from-stdin"], None);
    assert_eq!((code, out.as_str()), (Some(0), "piped value"));
    let (code, out, _) = cli.run(&["--json", "kv", "get", "cli", "from-arg"], None);
    assert_eq!(code, Some(0));
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["value"], "hello");
    assert_eq!(json["metadata"]["a"], 1);
    assert!(json["expires_at_ms"].as_u64().is_some());
    let (_, out, _) = cli.run(&["kv", "list", "cli"], None);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["from-arg", "from-stdin"]
    );
    let (code, _, _) = cli.run(&["kv", "delete", "cli", "from-arg"], None);
    assert_eq!(code, Some(0));
    let (code, _, err) = cli.run(&["kv", "get", "cli", "from-arg"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
    let (code, _, err) = cli.run(
        &["kv", "put", "cli", "k", "v", "--metadata", "not json"],
        None,
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("--metadata must be JSON"), "{err}");
}
