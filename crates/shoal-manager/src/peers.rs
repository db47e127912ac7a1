//! gRPC channels to other managers, one per address, reused across calls.
//! The transport (mTLS with this node's certificate) is decided by whoever builds the factory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tonic::transport::Channel;

pub type ChannelFactory = Arc<dyn Fn(&str) -> Channel + Send + Sync>;

#[derive(Clone)]
pub struct Peers {
    factory: ChannelFactory,
    cache: Arc<Mutex<HashMap<String, Channel>>>,
}

impl Peers {
    pub fn new(factory: ChannelFactory) -> Self {
        Peers {
            factory,
            cache: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    pub fn channel(&self, addr: &str) -> Channel {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .entry(addr.to_string())
            .or_insert_with(|| (self.factory)(addr))
            .clone()
    }

    /// Drop a cached channel (after the peer's certificate or address changed).
    pub fn forget(&self, addr: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(addr);
    }

    pub fn factory(&self) -> ChannelFactory {
        self.factory.clone()
    }
}
