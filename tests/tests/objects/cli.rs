//! The object commands of the `larder` CLI.

use crate::cluster_with_namespace;
use crate::support::cli::Cli;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_object_cli_stores_counts_transacts_sets_alarms_and_subscribes() {
    let cluster = cluster_with_namespace(1).await;
    let cli = Cli::new(cluster.node(1));
    stores_and_counts(&cli);
    transacts(&cli);
    sets_and_deletes_alarms(&cli);
    publishes_and_subscribes(&cli);
    lists_and_inspects(&cli);
}

/// The listing pages through and stops at `--limit`; an operator's typo in `inspect`
/// is NOT_FOUND and leaves no object behind.
fn lists_and_inspects(cli: &Cli) {
    for name in ["list-a", "list-b", "list-c"] {
        cli.ok(&["object", "put", "rooms", name, "k", "v"]);
    }
    let ids = |args: &[&str]| -> Vec<String> {
        let listed: serde_json::Value = serde_json::from_str(&cli.ok(args)).expect("a JSON array");
        listed
            .as_array()
            .expect("an array")
            .iter()
            .map(|o| o["id"].as_str().expect("id").to_string())
            .collect()
    };
    let list = ["--json", "object", "list", "rooms", "--prefix", "list-"];
    assert_eq!(ids(&list), ["list-a", "list-b", "list-c"]);
    assert_eq!(
        ids(&[&list[..], &["--limit", "2"]].concat()),
        ["list-a", "list-b"]
    );
    let (code, _, err) = cli.run(&["object", "inspect", "rooms", "list-typo"], None);
    assert_ne!(code, Some(0));
    assert!(err.contains("nothing was ever written"), "{err}");
    assert_eq!(
        ids(&list),
        ["list-a", "list-b", "list-c"],
        "the typo placed nothing"
    );
}

fn stores_and_counts(cli: &Cli) {
    cli.ok(&["object", "put", "rooms", "cart", "apples", "3"]);
    assert_eq!(cli.ok(&["object", "get", "rooms", "cart", "apples"]), "3");
    assert_eq!(
        cli.ok(&["object", "add", "rooms", "cart", "apples", "-1"]),
        "2"
    );
    let (code, _, err) = cli.run(&["object", "get", "rooms", "cart", "pears"], None);
    assert_eq!(code, Some(1));
    assert!(err.contains("not found"), "{err}");
}

fn transacts(cli: &Cli) {
    // A transaction whose precondition fails changes nothing and exits 1.
    let (code, _, err) = cli.run(
        &[
            "object",
            "txn",
            "rooms",
            "cart",
            "--if-absent",
            "apples",
            "--put",
            "pears=1",
        ],
        None,
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("precondition 0 failed"), "{err}");
    let committed = cli.ok(&[
        "--json",
        "object",
        "txn",
        "rooms",
        "cart",
        "--if-value",
        "apples=2",
        "--if-absent",
        "pears",
        "--put",
        "pears=5",
        "--add",
        "apples=10",
        "--delete",
        "none",
    ]);
    let committed: serde_json::Value = serde_json::from_str(&committed).expect("json");
    assert_eq!(committed["results"], serde_json::json!(["5", null, "12"]));
    let keys = cli.ok(&["--json", "object", "list-keys", "rooms", "cart"]);
    let keys: serde_json::Value = serde_json::from_str(&keys).expect("json");
    assert_eq!(
        keys["entries"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| (
                e["key"].as_str().unwrap_or(""),
                e["value"].as_str().unwrap_or("")
            ))
            .collect::<Vec<_>>(),
        vec![("apples", "12"), ("pears", "5")]
    );
}

/// Alarms: set two, read them back, delete one (the other is moved earlier and fires:
/// see `publishes_and_subscribes`).
fn sets_and_deletes_alarms(cli: &Cli) {
    cli.ok(&[
        "object", "alarm", "set", "rooms", "cart", "expire", "--in", "1h",
    ]);
    cli.ok(&[
        "object",
        "alarm",
        "set",
        "rooms",
        "cart",
        "remind",
        "--in",
        "1h",
        "--payload",
        "p",
    ]);
    let listed = cli.ok(&["--json", "object", "alarm", "list", "rooms", "cart"]);
    let listed: serde_json::Value = serde_json::from_str(&listed).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
    let expire = cli.ok(&[
        "--json", "object", "alarm", "get", "rooms", "cart", "expire",
    ]);
    assert!(expire.contains("\"name\":\"expire\""), "{expire}");
    cli.ok(&["object", "alarm", "delete", "rooms", "cart", "expire"]);
    let (code, _, _) = cli.run(&["object", "alarm", "get", "rooms", "cart", "expire"], None);
    assert_eq!(code, Some(1));
}

/// A subscriber from the start sees the published message, then the alarm that fired.
fn publishes_and_subscribes(cli: &Cli) {
    assert_eq!(
        cli.ok(&[
            "--json",
            "object",
            "publish",
            "rooms",
            "cart",
            "checked out"
        ]),
        r#"{"seq":1}"#
    );
    // Due only now, after the message took seq 1: however slow the machine, the alarm's
    // event comes second.
    cli.ok(&[
        "object",
        "alarm",
        "set",
        "rooms",
        "cart",
        "remind",
        "--in",
        "300ms",
        "--payload",
        "p",
    ]);
    let events = cli.ok(&[
        "--json",
        "object",
        "subscribe",
        "rooms",
        "cart",
        "--after",
        "0",
        "--count",
        "2",
    ]);
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|line| serde_json::from_str(line).expect("json line"))
        .collect();
    assert_eq!(events[0]["message"], "checked out", "{events:?}");
    assert_eq!(events[1]["alarm_fired"]["name"], "remind", "{events:?}");
    assert_eq!(events[1]["alarm_fired"]["payload"], "p", "{events:?}");
    let inspect = cli.ok(&["--json", "object", "inspect", "rooms", "cart"]);
    let inspect: serde_json::Value = serde_json::from_str(&inspect).expect("json");
    assert_eq!(
        (
            &inspect["keys"],
            &inspect["last_event_seq"],
            &inspect["alarms"]
        ),
        (
            &serde_json::json!(2),
            &serde_json::json!(2),
            &serde_json::json!([])
        )
    );
}
