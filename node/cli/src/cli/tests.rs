//! Tests of the argument parser: every flag and positional is described, each command
//! takes only the options it uses, and the command lines of the docs and scripts parse.

use super::*;
use crate::options::ENDPOINT_DEFAULT;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_args(std::iter::once("larder").chain(args.iter().copied()))
}

fn parsed(args: &[&str]) -> Cli {
    parse(args).unwrap_or_else(|err| panic!("larder {args:?}: {err}"))
}

fn refused(args: &[&str]) -> clap::Error {
    match parse(args) {
        Ok(cli) => panic!("larder {args:?} parsed: {cli:?}"),
        Err(err) => err,
    }
}

/// The endpoint and `--json` a client command ended up with.
fn client_options(mut cli: Cli) -> (Option<String>, bool) {
    let (endpoint, output) = cli.command.client_options_mut();
    (
        endpoint.map(|e| e.endpoint.clone()),
        output.expect("a client command").json,
    )
}

/// Arguments (flags and positionals) of `command` and its subcommands, recursively,
/// that have no help text, as `larder kv get <KEY>`; and commands without one.
fn undocumented(command: &clap::Command, path: &str, found: &mut Vec<String>) {
    if command
        .get_about()
        .is_none_or(|about| about.to_string().trim().is_empty())
    {
        found.push(format!("{path} (the command)"));
    }
    for arg in command.get_arguments() {
        if matches!(arg.get_id().as_str(), "help" | "version") {
            continue;
        }
        let help = arg.get_help().or(arg.get_long_help());
        if help.is_none_or(|help| help.to_string().trim().is_empty()) {
            found.push(format!("{path} {arg}"));
        }
    }
    for sub in command.get_subcommands() {
        undocumented(sub, &format!("{path} {}", sub.get_name()), found);
    }
}

#[test]
fn the_command_definitions_are_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_command_flag_and_positional_has_a_description() {
    let mut command = Cli::command();
    // Builds the whole tree: the group options reach every subcommand, and clap adds
    // its own help and version flags and `help` subcommands.
    command.build();
    let mut found = Vec::new();
    undocumented(&command, "larder", &mut found);
    assert!(found.is_empty(), "no help text:\n{}", found.join("\n"));
}

#[test]
fn serve_and_dev_take_no_client_options_and_clients_no_log_format() {
    for args in [
        &["serve", "--endpoint", "10.0.0.1:7070"][..],
        &["serve", "--json"],
        &["dev", "--endpoint", "10.0.0.1:7070"],
        &["dev", "--json"],
        &["status", "--log-format", "json"],
        &["kv", "get", "ns", "k", "--log-format", "json"],
        &["bench", "kv", "--log-format", "json"],
        &[
            "bench",
            "propagation",
            "--endpoints",
            "a:1,b:1",
            "--endpoint",
            "c:1",
        ],
    ] {
        assert_eq!(refused(args).kind(), ErrorKind::UnknownArgument, "{args:?}");
    }
    // Nor in the position before the command that scripts use.
    for (args, flag) in [
        (&["--endpoint", "10.0.0.1:7070", "serve"][..], "--endpoint"),
        (&["--json", "dev"], "--json"),
        (
            &[
                "--endpoint",
                "c:1",
                "bench",
                "etcd-put",
                "--endpoints",
                "e:1",
            ],
            "--endpoint",
        ),
    ] {
        let err = refused(args);
        assert_eq!(err.kind(), ErrorKind::UnknownArgument, "{args:?}");
        assert!(err.to_string().contains(flag), "{err}");
    }
    let help = Cli::command()
        .find_subcommand_mut("serve")
        .expect("serve")
        .render_help()
        .to_string();
    assert!(
        !help.contains("--endpoint") && !help.contains("--json"),
        "{help}"
    );
    assert!(help.contains("--log-format"), "{help}");
}

#[test]
fn client_commands_take_endpoint_and_json_after_or_before_the_command() {
    let expected = (Some("10.0.0.1:7070".to_string()), true);
    for args in [
        &[
            "kv",
            "get",
            "ns",
            "k",
            "--endpoint",
            "10.0.0.1:7070",
            "--json",
        ][..],
        &[
            "kv",
            "--endpoint",
            "10.0.0.1:7070",
            "get",
            "--json",
            "ns",
            "k",
        ],
        &[
            "--endpoint",
            "10.0.0.1:7070",
            "--json",
            "kv",
            "get",
            "ns",
            "k",
        ],
        &["--json", "--endpoint", "10.0.0.1:7070", "status"],
        &[
            "status",
            "--endpoint=10.0.0.1:7070",
            "--json",
            "--linearizable",
        ],
        &[
            "--endpoint",
            "10.0.0.1:7070",
            "object",
            "alarm",
            "list",
            "rooms",
            "cart",
            "--json",
        ],
        &[
            "--endpoint",
            "10.0.0.1:7070",
            "kv",
            "namespace",
            "list",
            "--json",
        ],
        &[
            "--json",
            "--endpoint",
            "10.0.0.1:7070",
            "bench",
            "kv",
            "--op",
            "put",
        ],
        &["bench", "--json", "object", "--endpoint", "10.0.0.1:7070"],
    ] {
        assert_eq!(client_options(parsed(args)), expected, "{args:?}");
    }
    let etcd = parsed(&["--json", "bench", "etcd-put", "--endpoints", "e:1"]);
    assert_eq!(client_options(etcd), (None, true));
    // Both places at once would leave one of the two unused.
    let err = refused(&["--endpoint", "a:1", "status", "--endpoint", "b:1"]);
    assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
}

#[test]
fn the_endpoint_defaults_to_a_local_node() {
    // LARDER_ENDPOINT, when the environment sets it, comes before the default.
    if std::env::var_os("LARDER_ENDPOINT").is_none() {
        let (endpoint, json) = client_options(parsed(&["node", "list"]));
        assert_eq!((endpoint.as_deref(), json), (Some(ENDPOINT_DEFAULT), false));
    }
}

#[test]
fn object_move_needs_exactly_one_target() {
    let err = refused(&["object", "move", "rooms", "room-1"]);
    assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
    let text = err.to_string();
    assert!(
        text.contains("--to-node") && text.contains("--to-region"),
        "{text}"
    );
    let err = refused(&[
        "object",
        "move",
        "rooms",
        "r",
        "--to-node",
        "2",
        "--to-region",
        "x",
    ]);
    assert_eq!(err.kind(), ErrorKind::ArgumentConflict);
    parsed(&["object", "move", "rooms", "room-1", "--to-node", "2"]);
    parsed(&[
        "object",
        "move",
        "rooms",
        "room-1",
        "--to-region",
        "us-east",
    ]);
    let help = Cli::command()
        .find_subcommand_mut("object")
        .and_then(|object| object.find_subcommand_mut("move"))
        .expect("object move")
        .render_help()
        .to_string();
    assert!(
        help.contains("--to-node") && help.contains("--to-region"),
        "{help}"
    );
}

/// Command lines of README.md, docs/, deploy/ and tests/, with flags where they put
/// them, which must keep working.
#[test]
fn the_command_lines_of_the_docs_and_scripts_parse() {
    for line in [
        "--endpoint 127.0.0.1:7100 status --linearizable",
        "status --json",
        "--endpoint 127.0.0.1:7080 kv get sessions user:42",
        "kv list sessions --prefix user: --json",
        "--endpoint 127.0.0.1:18000 bench kv --op get --concurrency 50 --channels 4 --duration 10s --value-size 100",
        "--endpoint 127.0.0.1:18400 bench object --op cold --objects 500 --idle 1s",
        "--endpoint 127.0.0.1:1 --json bench object --op write --concurrency 1 --objects 1 --channels 1 --duration 10s",
        "--json bench etcd-put --endpoints 127.0.0.1:2379 --concurrency 1 --channels 1 --duration 10s",
        "--json --endpoint 127.0.0.1:1 bench kv --op get --concurrency 1 --channels 1 --duration 10s",
        "--endpoint 127.0.0.1:1 --json bench object --op create --objects 10 --concurrency 2 --duration 3600s --also 127.0.0.1:2",
        "--endpoint 127.0.0.1:1 --json status",
        "--endpoint 127.0.0.1:1 object list bench-objects",
        "--endpoint 127.0.0.1:1 --json object list rooms --prefix list-",
        "bench propagation --endpoints 127.0.0.1:18100,127.0.0.1:18110 --writes 1000 --interval 2ms",
        "serve --config /etc/larder/larder.toml --log-format json",
        "serve --node-id 1 --region eu-west --jurisdiction eu --data-dir /tmp/n1 --api-listen 127.0.0.1:1 --peer-listen 127.0.0.1:2 --metrics-listen 127.0.0.1:3 --initial-voter 1@127.0.0.1:2 --join 127.0.0.1:5",
        "dev --nodes 4 --regions eu-west --base-port 18400 --data-dir /tmp/d --set objects.idle_after_ms=300",
    ] {
        parsed(&line.split(' ').collect::<Vec<_>>());
    }
}
