//! Open WebSocket sessions per user and per client address, capped (`[http] max_ws_per_user`,
//! `max_ws_per_ip`): one client cannot hold the node's sockets. A session counts until its
//! [`SessionPermit`] drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
struct Counts {
    by_user: HashMap<String, usize>,
    by_ip: HashMap<IpAddr, usize>,
}

/// The open sessions of this node.
#[derive(Clone, Debug, Default)]
pub struct Sessions(Arc<Mutex<Counts>>);

/// One open session; dropping it frees its place.
#[derive(Debug)]
pub struct SessionPermit {
    sessions: Sessions,
    user: String,
    ip: Option<IpAddr>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // Every update is a whole increment or decrement: a poisoned map is still consistent.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A place for one more session of `user` from `ip`, or why there is none.
    pub fn open(
        &self,
        user: &str,
        ip: Option<IpAddr>,
        per_user: usize,
        per_ip: usize,
    ) -> Result<SessionPermit, String> {
        let mut c = self.lock();
        if c.by_user.get(user).copied().unwrap_or(0) >= per_user {
            return Err(format!("at most {per_user} WebSocket sessions per user"));
        }
        if let Some(ip) = ip
            && c.by_ip.get(&ip).copied().unwrap_or(0) >= per_ip
        {
            return Err(format!("at most {per_ip} WebSocket sessions per address"));
        }
        *c.by_user.entry(user.to_string()).or_default() += 1;
        if let Some(ip) = ip {
            *c.by_ip.entry(ip).or_default() += 1;
        }
        Ok(SessionPermit {
            sessions: self.clone(),
            user: user.to_string(),
            ip,
        })
    }
}

impl Drop for SessionPermit {
    fn drop(&mut self) {
        let mut c = self.sessions.lock();
        if let Some(n) = c.by_user.get_mut(&self.user) {
            *n -= 1;
            if *n == 0 {
                c.by_user.remove(&self.user);
            }
        }
        if let Some(ip) = self.ip
            && let Some(n) = c.by_ip.get_mut(&ip)
        {
            *n -= 1;
            if *n == 0 {
                c.by_ip.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_hold_and_places_come_back() {
        let s = Sessions::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = s.open("alice", Some(ip), 2, 3).unwrap();
        let _b = s.open("alice", Some(ip), 2, 3).unwrap();
        assert!(
            s.open("alice", Some(ip), 2, 3)
                .unwrap_err()
                .contains("per user")
        );
        let _c = s.open("bob", Some(ip), 2, 3).unwrap();
        assert!(
            s.open("carol", Some(ip), 2, 3)
                .unwrap_err()
                .contains("per address")
        );
        drop(a);
        assert!(s.open("alice", None, 2, 3).is_ok());
    }
}
