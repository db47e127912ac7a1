//! Control-API logic for services and tasks: pure functions from a store snapshot (and a
//! request) to the objects to write, or an error that changes nothing. The API backend writes
//! the result with `Manager::propose`.

pub mod ports;
pub mod services;
pub mod tasks;

pub use services::{
    create_service, job_status, list_services, remove_service, service_status, update_service,
};
pub use tasks::list_tasks;

#[cfg(test)]
mod tests;
