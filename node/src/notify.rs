//! Events for a user's open WebSocket sessions on this node (a workflow finished, a report is
//! ready): the notify activity publishes, each session of that user receives.

use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

type Subscribers = HashMap<String, Vec<(u64, UnboundedSender<Value>)>>;

#[derive(Clone, Default)]
pub struct UserEvents {
    inner: Arc<Mutex<(u64, Subscribers)>>,
}

/// Unsubscribes its session when dropped.
pub struct Subscription {
    events: UserEvents,
    user: String,
    id: u64,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut g = self
            .events
            .inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(subs) = g.1.get_mut(&self.user) {
            subs.retain(|(id, _)| *id != self.id);
            if subs.is_empty() {
                g.1.remove(&self.user);
            }
        }
    }
}

impl UserEvents {
    pub fn subscribe(&self, user: &str) -> (Subscription, UnboundedReceiver<Value>) {
        let (tx, rx) = unbounded_channel();
        let mut g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.0 += 1;
        let id = g.0;
        g.1.entry(user.to_string()).or_default().push((id, tx));
        let sub = Subscription {
            events: self.clone(),
            user: user.to_string(),
            id,
        };
        (sub, rx)
    }

    /// Sends `event` to every session of `user` here; how many got it.
    pub fn publish(&self, user: &str, event: &Value) -> usize {
        let g = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        g.1.get(user).map_or(0, |subs| {
            subs.iter()
                .filter(|(_, tx)| tx.send(event.clone()).is_ok())
                .count()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_reach_the_users_sessions_until_they_close() {
        let ev = UserEvents::default();
        let (a1, mut r1) = ev.subscribe("ana");
        let (_a2, mut r2) = ev.subscribe("ana");
        let (_b, mut rb) = ev.subscribe("bo");
        assert_eq!(ev.publish("ana", &Value::from(1)), 2);
        assert_eq!(r1.try_recv().unwrap(), Value::from(1));
        assert_eq!(r2.try_recv().unwrap(), Value::from(1));
        assert!(rb.try_recv().is_err());
        drop(a1);
        assert_eq!(ev.publish("ana", &Value::from(2)), 1);
        assert_eq!(ev.publish("nobody", &Value::from(3)), 0);
    }
}
