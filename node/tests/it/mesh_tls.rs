//! Mutual TLS on the mesh: nodes with certificates of the mesh's CA form a cluster and answers
//! cross it encrypted (the bytes, read off the wire by a relay in the test, hold no answer text);
//! a node whose certificate comes from another CA cannot join.

use crate::harness::{Client, Node, NodeOpts, Sandbox, free_port_on, wait_cluster, wait_for};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const COOKIE: &str = "mesh-tls-cookie-0123456789abcdef0";

/// A CA, and a node certificate (server and client) it signs; returns (ca.pem, cert.pem, key.pem).
fn pki(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let mut node = CertificateParams::new(vec!["orrery-mesh".to_string()]).unwrap();
    node.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().unwrap();
    let cert = node.signed_by(&key, &ca).unwrap();
    let paths = (
        dir.join(format!("{name}-ca.pem")),
        dir.join(format!("{name}-cert.pem")),
        dir.join(format!("{name}-key.pem")),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn config(load: bool, (ca, cert, key): &(PathBuf, PathBuf, PathBuf)) -> String {
    format!(
        "[[models]]\nid = \"syn\"\nsource = \"synthetic:200\"\ndefault = true\nload = {load}\n\
         [autoscaling]\nenabled = false\n\
         [cluster.tls]\ncert = \"{}\"\nkey = \"{}\"\nca = \"{}\"\n",
        cert.display(),
        key.display(),
        ca.display()
    )
}

fn opts(ip: &str, listen: &str, seeds: Vec<String>) -> NodeOpts {
    NodeOpts {
        ip: ip.into(),
        cluster: Some(listen.into()),
        seeds,
        cookie: Some(COOKIE.into()),
        env: Vec::new(),
    }
}

/// Copies `r` to `w`, keeping every byte.
async fn pump(
    mut r: tokio::net::tcp::OwnedReadHalf,
    mut w: tokio::net::tcp::OwnedWriteHalf,
    keep: Arc<Mutex<Vec<u8>>>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = r.read(&mut buf).await {
        if n == 0 || w.write_all(&buf[..n]).await.is_err() {
            break;
        }
        keep.lock().unwrap().extend_from_slice(&buf[..n]);
    }
}

/// A TCP relay from a free port to `to` that keeps every byte it carries, both ways.
async fn relay(ip: &str, to: String) -> (String, Arc<Mutex<Vec<u8>>>) {
    let listener = tokio::net::TcpListener::bind(format!("{ip}:0"))
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let keep = seen.clone();
    tokio::spawn(async move {
        while let Ok((inbound, _)) = listener.accept().await {
            let Ok(outbound) = tokio::net::TcpStream::connect(&to).await else {
                continue;
            };
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            tokio::spawn(pump(ir, ow, keep.clone()));
            tokio::spawn(pump(or, iw, keep.clone()));
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_mesh_is_mutual_tls_and_a_node_without_the_ca_cannot_join() {
    let sb = Sandbox::start().await;
    let dir = sb.dir.path();
    let mesh_pki = pki(dir, "mesh");
    let rogue_pki = pki(dir, "rogue");
    let (ip2, ip3, ip4) = ("127.0.0.2", "127.0.0.3", "127.0.0.4");
    let a_listen = format!("{ip2}:{}", free_port_on(ip2));
    // The serving node dials nobody; the other reaches it only through the relay.
    let a: Node = sb
        .node_with("t2", &config(true, &mesh_pki), opts(ip2, &a_listen, vec![]))
        .await;
    let (relayed, wire) = relay(ip3, a_listen.clone()).await;
    let b_listen = format!("{ip3}:{}", free_port_on(ip3));
    let b = sb
        .node_with(
            "t3",
            &config(false, &mesh_pki),
            opts(ip3, &b_listen, vec![relayed]),
        )
        .await;
    wait_cluster(&b, &["t2", "t3"], "up").await;

    // An ask on t3, generated on t2: its text crosses the mesh, through the relay.
    let (mut c, _) = Client::connect(&b).await;
    c.send(json!({"type": "ask", "prompt": "count", "max_tokens": 60}))
        .await;
    let (done, _) = c.until("done").await;
    let text = done["text"].as_str().unwrap().to_string();
    assert!(text.contains("w40 w41 w42"), "{done}");
    assert_eq!(done["node"], "t2", "generated across the mesh: {done}");
    let bytes = wire.lock().unwrap().clone();
    assert!(bytes.len() > 1000, "the mesh went through the relay");
    let seen = String::from_utf8_lossy(&bytes);
    for needle in ["w40", COOKIE, "t2@"] {
        assert!(
            !seen.contains(needle),
            "`{needle}` crossed the mesh in clear"
        );
    }
    assert_eq!(bytes[0], 0x16, "the first bytes are a TLS handshake record");

    // A node whose certificate another CA signed is refused by TLS, not let in.
    let c_listen = format!("{ip4}:{}", free_port_on(ip4));
    let rogue = sb
        .node_with(
            "t4",
            &config(false, &rogue_pki),
            opts(ip4, &c_listen, vec![a_listen.clone()]),
        )
        .await;
    wait_for(
        "the rogue node's TLS handshake to fail",
        Duration::from_secs(30),
        || async {
            rogue
                .log()
                .contains("mesh TLS handshake failed")
                .then_some(())
        },
    )
    .await;
    let view = a.cluster().await;
    assert!(
        !view.iter().any(|r| r["node"] == "t4"),
        "the rogue node joined: {view:?}"
    );
}
