//! The highly available cluster the failure tests share: a three-member
//! etcd, two apiservers on it, two `sloth-controllers` and agents that know
//! both apiservers, with a client of both.

use sloth_sdk::Client;
use tokio::runtime::Runtime;

use crate::{Agent, ApiServer, Controllers, Etcd, runtime};

pub struct EtcdFleet {
    pub etcd: Etcd,
    pub servers: Vec<ApiServer>,
    /// `c1` and `c2`: a 3 s leader lease, agents lost after 2 s of grace.
    pub controllers: Vec<Controllers>,
    pub agents: Vec<Agent>,
    pub rt: Runtime,
    pub client: Client,
}

impl EtcdFleet {
    /// The fleet with one agent per name in `agent_names`, each started
    /// with `agent_flags`.
    pub fn start(agent_names: &[&str], agent_flags: &[&str]) -> Self {
        let etcd = Etcd::start_cluster(3);
        let endpoints = etcd.endpoints();
        let servers: Vec<ApiServer> = (0..2)
            .map(|_| ApiServer::start_with(&["--store", "etcd", "--etcd-endpoints", &endpoints]))
            .collect();
        let urls = urls_of(&servers);
        let controllers = ["c1", "c2"]
            .iter()
            .map(|id| {
                Controllers::start_at(
                    &urls,
                    id,
                    &["--lease-duration", "3s", "--agent-lost-grace", "2s"],
                )
            })
            .collect();
        let agents = agent_names
            .iter()
            .map(|name| Agent::start_at(&urls, name, agent_flags))
            .collect();
        let rt = runtime();
        let client = {
            let _enter = rt.enter();
            Client::new(&[servers[0].grpc_url(), servers[1].grpc_url()]).expect("client")
        };
        Self {
            etcd,
            servers,
            controllers,
            agents,
            rt,
            client,
        }
    }

    /// Both apiservers' URLs, comma-separated (for `--server`).
    pub fn urls(&self) -> String {
        urls_of(&self.servers)
    }

    /// Every process's log, for a failure message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, s) in self.servers.iter().enumerate() {
            out.push_str(&format!("--- apiserver {i}\n{}\n", s.log()));
        }
        for c in &self.controllers {
            out.push_str(&format!("--- controllers {}\n{}\n", c.id(), c.log()));
        }
        for a in &self.agents {
            out.push_str(&format!("--- agent {}\n{}\n", a.name(), a.log()));
        }
        out.push_str(&self.etcd.logs());
        out
    }
}

fn urls_of(servers: &[ApiServer]) -> String {
    servers
        .iter()
        .map(|s| s.grpc_url().to_string())
        .collect::<Vec<_>>()
        .join(",")
}
