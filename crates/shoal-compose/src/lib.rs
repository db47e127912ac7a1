//! shoal-compose: compose files → stack objects, as `docker stack deploy` does it.
//!
//! [`load`] parses, interpolates, merges and validates one or more compose files into a
//! [`Project`]; [`convert`] turns a project into the Docker wire objects to create for a stack
//! ([`StackPlan`]). Nothing here talks to the cluster.

pub mod convert;
pub mod env;
pub mod error;
pub mod interpolate;
mod lenient;
mod load;
mod merge;
pub mod model;
mod shell;
pub mod syntax;
pub mod units;
mod validate;
mod yaml;

pub use convert::{
    DEFAULT_FILE_MODE, ExternalKind, IMAGE_LABEL, NAMESPACE_LABEL, StackPlan, convert,
    validate_stack_name,
};
pub use env::Env;
pub use error::ComposeError;
pub use load::{load, load_paths};
pub use model::Project;
