//! Test harness: real Kafka broker control, hub process control, end-to-end helpers.

pub mod chaos;
pub mod core_bank;
pub mod crm_sim;
pub mod hub;
pub mod kafka;
pub mod webdriver;
