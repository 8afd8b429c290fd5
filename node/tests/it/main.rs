//! Integration tests, in one binary: each test starts a real Temporal dev server (free port, temp
//! SQLite file) and real `orrery` node processes, and asks real questions of the real model.

mod browser;
mod cli;
mod cluster;
mod harness;
mod scaling;
mod supervision;
mod websocket;
