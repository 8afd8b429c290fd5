//! Which node keeps a user's counters: rendezvous (highest random weight) hashing of the user id
//! over the live nodes. Every node computes the same owner from the same membership; when a node
//! joins or leaves, only the users it wins or held move.

use super::UserId;
use crate::protocol::NodeId;
use sha2::{Digest, Sha256};

fn weight(user: &UserId, node: &NodeId) -> u64 {
    let digest = Sha256::new()
        .chain_update(user.as_str().as_bytes())
        .chain_update([0u8])
        .chain_update(node.as_str().as_bytes())
        .finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// The node among `nodes` that keeps `user`'s counters; None when there is no node.
pub fn owner<'a>(user: &UserId, nodes: &'a [NodeId]) -> Option<&'a NodeId> {
    nodes
        .iter()
        .max_by(|a, b| weight(user, a).cmp(&weight(user, b)).then(b.cmp(a)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: &[&str]) -> Vec<NodeId> {
        ids.iter().map(|i| NodeId::new(*i)).collect()
    }

    fn users(n: usize) -> Vec<UserId> {
        (0..n)
            .map(|i| UserId::parse(&format!("user{i}")).unwrap())
            .collect()
    }

    #[test]
    fn every_node_agrees_whatever_the_order() {
        let a = nodes(&["n1", "n2", "n3"]);
        let b = nodes(&["n3", "n1", "n2"]);
        for u in users(50) {
            assert_eq!(owner(&u, &a), owner(&u, &b), "{u}");
        }
        assert_eq!(owner(&users(1)[0], &[]), None);
    }

    #[test]
    fn users_spread_and_only_the_leaving_nodes_users_move() {
        let three = nodes(&["n1", "n2", "n3"]);
        let two = nodes(&["n1", "n3"]);
        let all = users(300);
        let mut per_node = std::collections::HashMap::new();
        for u in &all {
            let before = owner(u, &three).unwrap();
            *per_node.entry(before.clone()).or_insert(0) += 1;
            let after = owner(u, &two).unwrap();
            // A user kept by a node that stays keeps that node.
            if before.as_str() != "n2" {
                assert_eq!(before, after, "{u}");
            }
        }
        for (n, count) in per_node {
            assert!((60..=140).contains(&count), "{n} keeps {count} of 300");
        }
    }
}
