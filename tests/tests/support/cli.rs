//! The `larder` command line against one test node, as a user runs it.

use std::io::Write;
use std::process::{Command, Stdio};

use super::{TestNode, larder_bin};

/// `larder --endpoint <node's api> …`.
pub struct Cli {
    endpoint: String,
}

impl Cli {
    pub fn new(node: &TestNode) -> Cli {
        Cli {
            endpoint: node.api.clone(),
        }
    }

    /// Runs one command with `stdin` as its input (none: empty); its exit code, stdout
    /// and stderr.
    pub fn run(&self, args: &[&str], stdin: Option<&[u8]>) -> (Option<i32>, String, String) {
        let mut child = Command::new(larder_bin())
            .arg("--endpoint")
            .arg(&self.endpoint)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn larder");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(bytes) = stdin {
            input.write_all(bytes).expect("write stdin");
        }
        drop(input);
        let out = child.wait_with_output().expect("run larder");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    }

    /// Runs one command with no input, which must succeed; its stdout, trimmed.
    pub fn ok(&self, args: &[&str]) -> String {
        let (code, out, err) = self.run(args, None);
        assert_eq!(code, Some(0), "larder {args:?}: {err}");
        out.trim().to_string()
    }
}
