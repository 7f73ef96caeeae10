//! The hub runtime: configuration, the bus (Kafka or embedded), the pipeline supervisor,
//! the state store, HTTP endpoints and the sandbox CRM used by `hub demo` and the tests.

pub mod bus;
pub mod config;
pub mod demo;
pub mod demo_data;
pub mod dlq;
pub mod golden;
pub mod http;
pub mod mapping_cli;
pub mod pipeline;
pub mod quality_cli;
pub mod sandbox_crm;
pub mod screening;
pub mod store;
pub mod telemetry;
