//! The node's actors: one supervision tree per node (see ARCHITECTURE.md). The rest of the node
//! reaches them through [`NodeHandle`]; other nodes' actors through [`mesh`].

pub mod broadcaster;
pub mod handle;
pub mod limits;
pub mod membership;
pub mod mesh;
pub mod mesh_tls;
pub mod model_holder;
pub mod models;
pub mod queues;
pub mod resource_manager;
pub mod restarts;
pub mod supervisor;

pub use handle::NodeHandle;
