//! End-to-end tests of one instance: a real `crmsync` process per test, driven through
//! its public REST API and CLI.

#[path = "../common/mod.rs"]
mod common;

mod at_rest;
mod csv;
mod files;
mod hostile;
mod records;
mod schema;
mod users;
mod web;
mod write_path;
