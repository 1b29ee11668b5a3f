//! The recorded history: one [`Event`] per invocation or completion, stored as JSON Lines.
//!
//! A line looks like
//! `{"process":3,"kind":"invoke","op":"write","object":"o1","key":"x","value":7,"time_ns":1200}`
//! and its completion
//! `{"process":3,"kind":"ok","op":"write","object":"o1","key":"x","value":7,"version":12,"epoch":2,"node":1,"time_ns":1900}`.
//! Absent optional fields may be omitted or `null`.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{CheckError, Epoch, NodeId, ObjectId, ProcessId, RequestId};

/// What an event records: the start of an operation or how it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The client sent the request.
    Invoke,
    /// The operation took effect (once) and this is its result.
    Ok,
    /// The operation certainly did not take effect (for `cas`: the comparison failed).
    Fail,
    /// The outcome is unknown (timeout, connection lost): it may take effect at any time
    /// after its invocation, or never.
    Info,
}

/// The operation. Objects: `read`, `write`, `cas` (registers) and `add`, `read`
/// (counters). KV: `put`, `delete`, `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OpName {
    Read,
    Write,
    Cas,
    Add,
    Put,
    Delete,
    Get,
}

impl OpName {
    /// Whether the operation acts on a linearizable object (register or counter).
    pub fn is_object_op(self) -> bool {
        matches!(
            self,
            OpName::Read | OpName::Write | OpName::Cas | OpName::Add
        )
    }

    /// Whether the operation may change state.
    pub fn is_mutation(self) -> bool {
        !matches!(self, OpName::Read | OpName::Get)
    }
}

/// A value carried by an event.
///
/// Registers and counters hold integers (`write` 7, `add` 2, a read returns 7 or `null`
/// for absent); `cas` carries `[expected, new]` (`expected` may be `null`: absent); KV
/// values are text.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Int(i64),
    Text(String),
    Pair(Option<i64>, Option<i64>),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(v) => Some(*v),
            _ => None,
        }
    }
}

/// A version, compared lexicographically. Object versions are one number; a KV version is
/// the hybrid logical clock stamp `[physical_ms, logical, origin]`. JSON: a number or an
/// array of numbers. Versions compared with each other must have the same form.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub Vec<u64>);

impl Version {
    pub fn single(v: u64) -> Version {
        Version(vec![v])
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(u64::to_string).collect();
        f.write_str(&parts.join("."))
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => s.serialize_u64(*one),
            parts => parts.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            One(u64),
            Many(Vec<u64>),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::One(v) => Version(vec![v]),
            Repr::Many(v) => Version(v),
        })
    }
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub process: ProcessId,
    pub kind: EventKind,
    pub op: OpName,
    /// Object id, or KV namespace.
    pub object: ObjectId,
    #[serde(default)]
    pub key: String,
    /// Invocation: the argument (`write`, `cas`, `add`, `put`). Ok completion: the result
    /// (`read`, `get`, `add`'s new value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Value>,
    /// Ok completion: the version the operation wrote or read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Version>,
    /// Ok completion: the epoch of the owner that acknowledged it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch: Option<Epoch>,
    /// Invocation: the node the client sent it to. Completion: the node that acknowledged
    /// it (for objects, the owner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeId>,
    /// Nanoseconds on the harness's one monotonic clock.
    pub time_ns: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<RequestId>,
    /// Fail or info completion: what the client saw (for people; not checked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Event {
    /// An event with no optional fields set.
    pub fn new(
        process: u64,
        kind: EventKind,
        op: OpName,
        object: &str,
        key: &str,
        time_ns: u64,
    ) -> Event {
        Event {
            process: ProcessId(process),
            kind,
            op,
            object: ObjectId::from(object),
            key: key.to_owned(),
            value: None,
            version: None,
            epoch: None,
            node: None,
            time_ns,
            request_id: None,
            error: None,
        }
    }

    pub fn with_value(mut self, value: Value) -> Event {
        self.value = Some(value);
        self
    }

    pub fn with_int(self, value: i64) -> Event {
        self.with_value(Value::Int(value))
    }
}

/// Reads JSON Lines of `T`, one value per non-blank line.
pub fn read_jsonl<T: DeserializeOwned>(reader: impl BufRead) -> Result<Vec<T>, CheckError> {
    let mut out = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(|source| CheckError::Read {
            line: index + 1,
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let item = serde_json::from_str(&line).map_err(|err| CheckError::Parse {
            line: index + 1,
            reason: err.to_string(),
        })?;
        out.push(item);
    }
    Ok(out)
}

/// Writes `items` as JSON Lines.
pub fn write_jsonl<T: Serialize>(mut writer: impl Write, items: &[T]) -> std::io::Result<()> {
    for item in items {
        serde_json::to_writer(&mut writer, item)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()
}

/// Reads a history file (JSON Lines of [`Event`]).
pub fn read_history_file(path: &Path) -> Result<Vec<Event>, CheckError> {
    let file = File::open(path).map_err(|source| CheckError::Open {
        path: path.to_owned(),
        source,
    })?;
    read_jsonl(BufReader::new(file))
}

/// Writes a history file (JSON Lines of [`Event`]).
pub fn write_history_file(path: &Path, events: &[Event]) -> Result<(), CheckError> {
    let file = File::create(path).map_err(|source| CheckError::Open {
        path: path.to_owned(),
        source,
    })?;
    write_jsonl(BufWriter::new(file), events).map_err(|source| CheckError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_json_lines() {
        let mut ok = Event::new(3, EventKind::Ok, OpName::Cas, "o1", "x", 1900)
            .with_value(Value::Pair(None, Some(4)));
        ok.version = Some(Version(vec![17, 0, 2]));
        ok.epoch = Some(Epoch(2));
        ok.request_id = Some(RequestId::from("r-1"));
        let events = vec![
            Event::new(3, EventKind::Invoke, OpName::Write, "o1", "x", 1200).with_int(7),
            ok,
            Event::new(4, EventKind::Info, OpName::Put, "ns", "k", 2000)
                .with_value(Value::Text("v".into())),
        ];
        let mut buf = Vec::new();
        write_jsonl(&mut buf, &events).expect("in-memory write");
        let back: Vec<Event> = read_jsonl(buf.as_slice()).expect("parse");
        assert_eq!(back, events);
        let text = String::from_utf8(buf).expect("utf-8");
        assert!(text.contains(r#""value":[null,4]"#), "{text}");
        assert!(text.contains(r#""version":[17,0,2]"#), "{text}");
    }

    #[test]
    fn single_versions_are_plain_numbers_and_optional_fields_may_be_null() {
        let line = r#"{"process":1,"kind":"ok","op":"read","object":"o","key":"k","value":null,"version":5,"time_ns":9}"#;
        let events: Vec<Event> = read_jsonl(line.as_bytes()).expect("parse");
        assert_eq!(events[0].version, Some(Version::single(5)));
        assert_eq!(events[0].value, None);
    }

    #[test]
    fn a_bad_line_is_reported_with_its_number() {
        let text = "\n{\"process\":1}\n";
        let err = read_jsonl::<Event>(text.as_bytes()).expect_err("must fail");
        assert!(matches!(err, CheckError::Parse { line: 2, .. }), "{err}");
    }
}
