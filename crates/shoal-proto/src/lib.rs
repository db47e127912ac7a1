//! Generated gRPC code for the cluster plane (`proto/*.proto`), one module per package.
//! Payloads that carry cluster objects use JSON bytes of the `shoal-types` shapes, so there is
//! one definition of every object (the Docker wire shape) rather than a second protobuf dialect.

pub mod raft {
    tonic::include_proto!("shoal.raft");
}
pub mod ca {
    tonic::include_proto!("shoal.ca");
}
pub mod control {
    tonic::include_proto!("shoal.control");
}
pub mod dispatcher {
    tonic::include_proto!("shoal.dispatcher");
}
pub mod logs {
    tonic::include_proto!("shoal.logs");
}
