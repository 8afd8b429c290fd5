//! The mesh (listen address, seeds, cookie) and the node itself (id, HTTP address, directories).

use super::{Env, FileReads, valid_id};
use crate::config::raw::{RawCluster, RawNode};
use crate::config::{ClusterConfig, MIN_COOKIE_CHARS, MeshTlsConfig, Overrides, Secret};
use std::net::SocketAddr;
use std::path::PathBuf;

pub(super) fn mesh(
    raw: &RawCluster,
    env: &Env,
    overrides: &Overrides,
    reads: &FileReads,
    errors: &mut Vec<String>,
) -> ClusterConfig {
    let listen_s = env.pick(
        &overrides.cluster_listen,
        "ORRERY_CLUSTER_LISTEN",
        &raw.listen,
    );
    let listen = listen_s
        .as_ref()
        .and_then(|l| match l.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                errors.push(format!("cluster listen address `{l}` is not IP:PORT"));
                None
            }
        });
    let seeds: Vec<String> = overrides
        .seeds
        .clone()
        .or_else(|| {
            env.get("ORRERY_CLUSTER_SEEDS").map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_string())
                    .filter(|x| !x.is_empty())
                    .collect()
            })
        })
        .unwrap_or_else(|| raw.seeds.clone());
    for seed in &seeds {
        if seed
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<u16>().ok())
            .is_none()
        {
            errors.push(format!("cluster seed `{seed}` is not HOST:PORT"));
        }
    }
    let cookie = match (env.get("ORRERY_CLUSTER_COOKIE"), &reads.cookie) {
        (Some(c), _) => Some(Secret::new(c)),
        (None, Some((_, Ok(c)))) if !c.trim().is_empty() => Some(Secret::new(c.trim())),
        (None, Some((f, _))) => {
            errors.push(format!("cluster cookie file `{f}` is missing or empty"));
            None
        }
        (None, None) => None,
    };
    if listen.is_some() && cookie.is_none() && reads.cookie.is_none() {
        errors.push(
            "a clustered node needs a cookie: set ORRERY_CLUSTER_COOKIE (or cluster.cookie_file)"
                .into(),
        );
    }
    if listen.is_some()
        && let Some(c) = &cookie
        && c.expose().chars().count() < MIN_COOKIE_CHARS
    {
        errors.push(format!(
            "the cluster cookie is too short: at least {MIN_COOKIE_CHARS} characters (128 bits as hex: openssl rand -hex 16)"
        ));
    }
    let env_tls = (
        env.get("ORRERY_CLUSTER_TLS_CERT"),
        env.get("ORRERY_CLUSTER_TLS_KEY"),
        env.get("ORRERY_CLUSTER_TLS_CA"),
    );
    let tls = match (env_tls, &raw.tls) {
        ((Some(cert), Some(key), Some(ca)), file) => Some(MeshTlsConfig {
            cert: cert.into(),
            key: key.into(),
            ca: ca.into(),
            server_name: file
                .as_ref()
                .and_then(|t| t.server_name.clone())
                .unwrap_or_else(|| "orrery-mesh".into()),
        }),
        ((None, None, None), Some(t)) => Some(MeshTlsConfig {
            cert: t.cert.clone().into(),
            key: t.key.clone().into(),
            ca: t.ca.clone().into(),
            server_name: t
                .server_name
                .clone()
                .unwrap_or_else(|| "orrery-mesh".into()),
        }),
        ((None, None, None), None) => None,
        _ => {
            errors.push(
                "mesh TLS needs all of ORRERY_CLUSTER_TLS_CERT, ORRERY_CLUSTER_TLS_KEY and ORRERY_CLUSTER_TLS_CA"
                    .into(),
            );
            None
        }
    };
    if listen.is_none() && !seeds.is_empty() {
        errors.push("cluster seeds are set but cluster.listen is not".into());
    }
    ClusterConfig {
        listen,
        seeds,
        cookie,
        tls,
    }
}

/// This node's own settings.
pub(super) struct NodeParts {
    pub id: String,
    pub http: SocketAddr,
    pub home: PathBuf,
    pub data_dir: PathBuf,
    pub memory_budget_bytes: Option<u64>,
}

pub(super) fn node(
    raw: &RawNode,
    env: &Env,
    overrides: &Overrides,
    errors: &mut Vec<String>,
) -> NodeParts {
    let id = env
        .pick(&overrides.node_id, "ORRERY_NODE_ID", &raw.id)
        .unwrap_or_else(|| "node-1".into());
    if !valid_id(&id) {
        errors.push(format!(
            "node id `{id}`: use 1-64 letters, digits, '-', '_' or '.'"
        ));
    }
    let http_s = env
        .pick(&overrides.http, "ORRERY_HTTP", &raw.http)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let http = http_s.parse::<SocketAddr>().unwrap_or_else(|_| {
        errors.push(format!("http address `{http_s}` is not HOST:PORT"));
        SocketAddr::from(([127, 0, 0, 1], 8080))
    });
    let home = PathBuf::from(
        env.get("ORRERY_HOME")
            .or(raw.home.clone())
            .unwrap_or_else(|| ".orrery".into()),
    );
    let data_dir = env
        .pick(&overrides.data_dir, "ORRERY_DATA_DIR", &raw.data_dir)
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join("data"));
    NodeParts {
        id,
        http,
        home,
        data_dir,
        memory_budget_bytes: raw.memory_budget_mb.map(|mb| mb << 20),
    }
}
