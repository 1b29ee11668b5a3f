//! The node's configuration: one TOML file (unknown fields rejected), overridden by CLI
//! flags, validated as a whole before anything starts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use larder_directory::{DirectoryConfig, NodeId, PeerNode, check_label};
use larder_kv::KvConfig;
use larder_objects::ObjectsConfig;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeConfig {
    pub node: NodeSection,
    pub listen: ListenSection,
    pub advertise: AdvertiseSection,
    pub cluster: ClusterSection,
    pub limits: LimitsSection,
    pub directory: DirectoryConfig,
    pub kv: KvConfig,
    pub objects: ObjectsConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NodeSection {
    /// Unique, non-zero, stable across restarts.
    pub id: u64,
    pub region: String,
    pub jurisdictions: Vec<String>,
    pub data_dir: PathBuf,
}

impl Default for NodeSection {
    fn default() -> Self {
        NodeSection {
            id: 0,
            region: String::new(),
            jurisdictions: Vec::new(),
            data_dir: PathBuf::from("larder-data"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenSection {
    pub api: String,
    pub peer: String,
    pub metrics: String,
}

impl Default for ListenSection {
    fn default() -> Self {
        ListenSection {
            api: "127.0.0.1:7070".to_string(),
            peer: "127.0.0.1:7071".to_string(),
            metrics: "127.0.0.1:9090".to_string(),
        }
    }
}

/// Addresses other nodes and clients use to reach this one. Default to the listen
/// addresses, which then must not be wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdvertiseSection {
    pub api: Option<String>,
    pub peer: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// `ID@HOST:PORT` (peer address) of each first voter. Every first voter lists the same
    /// set; a node not listed joins through `join`.
    pub initial_voters: Vec<String>,
    /// Peer address of any node of a running cluster.
    pub join: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsSection {
    /// Concurrent requests per client connection on the api listener.
    pub api_requests_per_connection_max: usize,
    /// HTTP/2 streams per connection on each listener.
    pub http2_streams_per_connection_max: u32,
    /// Largest gRPC message on the api listener.
    pub api_message_bytes_max: usize,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace_ms: u64,
    /// Writes are refused (RESOURCE_EXHAUSTED) while the data directory's filesystem has
    /// less free space than this; reads go on, and writes resume once space is freed.
    /// 0 turns the guard off (the store then fails, and the node stops, at ENOSPC).
    pub disk_free_min_bytes: u64,
}

impl Default for LimitsSection {
    fn default() -> Self {
        LimitsSection {
            api_requests_per_connection_max: 1024,
            http2_streams_per_connection_max: 1024,
            api_message_bytes_max: 32 * 1024 * 1024,
            shutdown_grace_ms: 10_000,
            disk_free_min_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A value that cannot work, named with its field and value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("config file {path} is not valid: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("invalid {field} = {value:?}: {reason}")]
    Invalid {
        field: String,
        value: String,
        reason: String,
    },
}

fn invalid(field: &str, value: impl std::fmt::Display, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// A voter of the first membership, parsed from `ID@HOST:PORT`.
pub fn parse_voter(text: &str) -> Result<(NodeId, String), String> {
    let (id, addr) = text
        .split_once('@')
        .ok_or_else(|| "expected ID@HOST:PORT".to_string())?;
    let id: u64 = id
        .parse()
        .map_err(|_| format!("node id {id:?} is not a positive integer"))?;
    if id == 0 {
        return Err("node id 0 is reserved".to_string());
    }
    check_host_port(addr)?;
    Ok((NodeId(id), addr.to_string()))
}

pub(crate) fn check_host_port(addr: &str) -> Result<(), String> {
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{addr:?} is not HOST:PORT"))?;
    if host.is_empty() {
        return Err(format!("{addr:?} has no host"));
    }
    port.parse::<u16>()
        .map_err(|_| format!("{addr:?} has no valid port"))?;
    Ok(())
}

impl NodeConfig {
    pub fn load(path: &Path) -> Result<NodeConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|err| ConfigError::Read {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })?;
        toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: err.to_string(),
        })
    }

    /// Checks the whole configuration, section by section; the error names the first
    /// offending field and its value.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.check_node()?;
        let (listen_api, listen_peer) = self.check_listen()?;
        self.check_advertise(listen_api, listen_peer)?;
        self.check_cluster()?;
        self.check_limits()?;
        self.check_crate_sections()?;
        self.check_across_sections()
    }

    fn check_node(&self) -> Result<(), ConfigError> {
        if self.node.id == 0 {
            return Err(invalid(
                "node.id",
                0,
                "must be set to a non-zero integer unique in the cluster",
            ));
        }
        check_label(&self.node.region)
            .map_err(|reason| invalid("node.region", &self.node.region, reason))?;
        for j in &self.node.jurisdictions {
            check_label(j).map_err(|reason| invalid("node.jurisdictions", j, reason))?;
        }
        if self.node.data_dir.as_os_str().is_empty() {
            return Err(invalid("node.data_dir", "", "must name a directory"));
        }
        Ok(())
    }

    /// The api and peer listen addresses, once every listen address parses.
    fn check_listen(&self) -> Result<(SocketAddr, SocketAddr), ConfigError> {
        let parse = |field: &str, value: &str| {
            value
                .parse::<SocketAddr>()
                .map_err(|_| invalid(field, value, "must be IP:PORT"))
        };
        let api = parse("listen.api", &self.listen.api)?;
        let peer = parse("listen.peer", &self.listen.peer)?;
        parse("listen.metrics", &self.listen.metrics)?;
        if api.port() != 0 && api == peer {
            return Err(invalid(
                "listen.peer",
                &self.listen.peer,
                "must differ from listen.api",
            ));
        }
        Ok((api, peer))
    }

    fn check_advertise(
        &self,
        listen_api: SocketAddr,
        listen_peer: SocketAddr,
    ) -> Result<(), ConfigError> {
        for (field, value, listen) in [
            ("advertise.api", &self.advertise.api, listen_api),
            ("advertise.peer", &self.advertise.peer, listen_peer),
        ] {
            match value {
                Some(addr) => {
                    check_host_port(addr).map_err(|reason| invalid(field, addr, reason))?
                }
                None if listen.ip().is_unspecified() => {
                    return Err(invalid(
                        field,
                        "",
                        format!("must be set when the listener binds all interfaces ({listen})"),
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }

    fn check_cluster(&self) -> Result<(), ConfigError> {
        let voters = self.initial_voters()?;
        if voters.is_empty() && self.cluster.join.is_none() {
            return Err(invalid(
                "cluster.initial_voters",
                "[]",
                "set the first voters (ID@HOST:PORT) or cluster.join",
            ));
        }
        if let Some(join) = &self.cluster.join {
            check_host_port(join).map_err(|reason| invalid("cluster.join", join, reason))?;
        }
        Ok(())
    }

    fn check_limits(&self) -> Result<(), ConfigError> {
        if self.limits.api_requests_per_connection_max == 0 {
            return Err(invalid(
                "limits.api_requests_per_connection_max",
                0,
                "must be at least 1",
            ));
        }
        if self.limits.http2_streams_per_connection_max == 0 {
            return Err(invalid(
                "limits.http2_streams_per_connection_max",
                0,
                "must be at least 1",
            ));
        }
        if self.limits.api_message_bytes_max < 4 * 1024 * 1024 {
            return Err(invalid(
                "limits.api_message_bytes_max",
                self.limits.api_message_bytes_max,
                "must be at least 4194304 (4 MiB)",
            ));
        }
        Ok(())
    }

    /// The directory's, KV's and objects' own checks, their fields prefixed with the
    /// section's name.
    fn check_crate_sections(&self) -> Result<(), ConfigError> {
        self.directory
            .validate()
            .map_err(|err| invalid(&format!("directory.{}", err.field), &err.value, err.reason))?;
        self.kv
            .validate()
            .map_err(|err| invalid(&format!("kv.{}", err.field), &err.value, err.reason))?;
        self.objects
            .validate()
            .map_err(|reason| invalid("objects", "", reason))
    }

    /// Settings that are valid alone but must agree with another section's.
    fn check_across_sections(&self) -> Result<(), ConfigError> {
        if self.objects.lease_ms >= self.directory.node_down_after_ms {
            return Err(invalid(
                "objects.lease_ms",
                self.objects.lease_ms,
                format!(
                    "must be shorter than directory.node_down_after_ms ({}): an owner's lease must run out before its objects can be reassigned",
                    self.directory.node_down_after_ms
                ),
            ));
        }
        let largest_write = self.kv.value_bytes_max
            + self.kv.key_bytes_max
            + self.kv.metadata_bytes_max
            + 64 * 1024;
        if self.limits.api_message_bytes_max < largest_write {
            return Err(invalid(
                "limits.api_message_bytes_max",
                self.limits.api_message_bytes_max,
                format!(
                    "must fit the largest KV write ({largest_write} bytes: kv.value_bytes_max plus key, metadata and framing)"
                ),
            ));
        }
        Ok(())
    }

    /// The first voters, by id. Rejects malformed entries and duplicate ids.
    pub fn initial_voters(&self) -> Result<BTreeMap<NodeId, PeerNode>, ConfigError> {
        let mut voters = BTreeMap::new();
        for text in &self.cluster.initial_voters {
            let (id, peer_addr) = parse_voter(text)
                .map_err(|reason| invalid("cluster.initial_voters", text, reason))?;
            if voters.insert(id, PeerNode { peer_addr }).is_some() {
                return Err(invalid(
                    "cluster.initial_voters",
                    text,
                    format!("node {id} is listed twice"),
                ));
            }
        }
        Ok(voters)
    }

    pub fn jurisdictions(&self) -> BTreeSet<larder_directory::Jurisdiction> {
        self.node
            .jurisdictions
            .iter()
            .map(|j| larder_directory::Jurisdiction(j.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> NodeConfig {
        let mut config = NodeConfig::default();
        config.node.id = 1;
        config.node.region = "eu-west".into();
        config.cluster.initial_voters = vec!["1@127.0.0.1:7071".into()];
        config
    }

    #[test]
    fn defaults_plus_identity_are_valid() {
        valid().validate().expect("valid");
    }

    #[test]
    fn errors_name_field_and_value() {
        let mut config = valid();
        config.node.region = "EU West".into();
        let err = config.validate().expect_err("bad region").to_string();
        assert!(
            err.contains("node.region") && err.contains("EU West"),
            "{err}"
        );

        let mut config = valid();
        config.cluster.initial_voters = vec!["x@127.0.0.1:7071".into()];
        let err = config.validate().expect_err("bad voter").to_string();
        assert!(
            err.contains("cluster.initial_voters") && err.contains("x@127.0.0.1:7071"),
            "{err}"
        );

        let mut config = valid();
        config.listen.api = "0.0.0.0:7070".into();
        let err = config
            .validate()
            .expect_err("wildcard without advertise")
            .to_string();
        assert!(err.contains("advertise.api"), "{err}");

        let mut config = valid();
        config.directory.heartbeat_interval_ms = 0;
        let err = config.validate().expect_err("zero heartbeat").to_string();
        assert!(err.contains("directory.heartbeat_interval_ms"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = toml::from_str::<NodeConfig>("[node]\nid = 1\nregoin = \"eu\"\n")
            .expect_err("typo must be rejected")
            .to_string();
        assert!(err.contains("regoin"), "{err}");
    }
}

#[cfg(test)]
mod example_tests {
    #[test]
    fn the_deployed_example_is_valid() {
        let config: super::NodeConfig =
            toml::from_str(include_str!("../../deploy/larder.example.toml")).expect("parses");
        config.validate().expect("valid");
        assert_eq!(config.initial_voters().expect("voters").len(), 3);
    }
}
