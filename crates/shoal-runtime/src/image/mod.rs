//! Images: references, the local content-addressed store, layer unpacking, registry
//! pull/push and archive import/load/save.

pub mod archive;
pub mod changes;
pub mod digest;
pub mod docker_api;
pub mod error;
pub mod local_registry;
pub mod reference;
pub mod registry;
pub mod spec;
pub mod store;
pub mod unpack;

pub use archive::{LoadedImage, SaveFormat};
pub use digest::Digest;
pub use docker_api::{ImageInspect, ImageSummary, JsonMessage};
pub use error::{ImageError, Result};
pub use reference::Reference;
pub use registry::{
    Credentials, DistributionInspect, Progress, ProgressFn, PushResult, RegistryClient,
    RegistryConfig,
};
pub use spec::{ContainerConfig, HealthConfig, ImageConfigFile};
pub use store::{DiskUsage, ImageDeleteItem, ImageRecord, ImageStore, LayerInfo, PruneReport};
