//! Orrery: an LLM chat cluster. Every ask is a Temporal workflow; every node is a tree of ractor
//! actors that are also Temporal workers; answers come from GGUF models on the CPU (`orrery-cpu`)
//! or from remote backends.

pub mod activities;
pub mod actors;
pub mod app;
pub mod asks;
pub mod client;
pub mod codec;
pub mod config;
pub mod engine;
pub mod flows;
pub mod http;
pub mod notify;
pub mod placement;
pub mod policy;
pub mod protocol;
pub mod reports;
pub mod setup;
pub mod store;
pub mod temporal;
pub mod users;
pub mod worker;
pub mod workflows;

#[cfg(test)]
mod fuzz_tests;
