//! End-to-end tests of syncs between real `crmsync` processes over loopback HTTP,
//! configured only through the public API, as the help page's setup describes.

#[path = "../common/mod.rs"]
mod common;

mod attacks;
mod clock;
mod conflicts;
mod crash;
mod created_at;
mod drift;
mod faults;
mod files;
mod folders;
mod ftp;
mod held;
mod hostile;
mod http;
mod initial;
mod log;
mod matching;
mod numbering;
mod paused;
mod postgres;
mod protocol;
mod provenance;
mod random;
mod scale_out;
mod status;
mod tls;
mod topology;
mod translate;
mod users;
mod whole_table;
