//! Integration tests, in one binary: each test starts a real Temporal dev server (free port, temp
//! SQLite file) and real `orrery` node processes, and asks real questions of the real model.

mod auth;
mod browser;
mod cli;
mod cluster;
mod compose;
mod console;
mod encryption;
mod hardening;
mod harness;
mod limits;
mod mesh_tls;
mod metrics;
mod ollama;
mod openai;
mod outage;
mod placing;
mod postgres;
mod python_clients;
mod pytools;
mod rest;
mod scaling;
mod soak;
mod structured;
mod supervision;
mod websocket;
mod workers;
mod workflows;
