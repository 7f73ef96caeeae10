//! The hub runtime: configuration, the bus (Kafka or embedded), the pipeline supervisor,
//! the state store, HTTP endpoints and the sandbox CRM used by `hub demo` and the tests.

pub mod api_doc;
pub mod audit;
pub mod auth;
pub mod backfill;
pub mod bus;
pub mod config;
pub mod crypto;
pub mod dashboard;
pub mod demo;
pub mod demo_data;
pub mod dlq;
pub mod golden;
pub mod http;
pub mod mapping_cli;
pub mod pii_mask;
pub mod pipeline;
pub mod quality_api;
pub mod quality_cli;
pub mod reconcile;
pub mod sandbox_crm;
pub mod screening;
pub mod sql;
pub mod store;
pub mod telemetry;
pub mod tls_listener;
pub mod trace;
