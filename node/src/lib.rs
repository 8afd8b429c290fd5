//! Orrery: an LLM chat cluster. Every ask is a Temporal workflow; every node is a tree of ractor
//! actors that are also Temporal workers; answers come from candle on GGUF models.

pub mod activities;
pub mod actors;
pub mod app;
pub mod ask_records;
pub mod asks;
pub mod client;
pub mod cluster;
pub mod config;
pub mod engine;
pub mod http;
pub mod ids;
pub mod live;
pub mod placement;
pub mod policy;
pub mod setup;
pub mod temporal;
pub mod users;
pub mod workflows;
