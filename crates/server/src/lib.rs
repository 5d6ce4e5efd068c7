//! The crmsync server: adapters (REST API, CLI, CSV, file store) around the domain.

mod access_log;
pub mod api;
pub mod app;
pub mod cli;
pub mod csv_io;
pub mod database;
pub mod demo;
pub mod files;
pub mod jobs;
pub mod records;
pub mod sync;
pub mod tls;
pub mod web;

pub use app::{App, Core};
