//! The storage contract, written once against `dyn Storage` and run on every backend: each
//! test runs on SQLite and on PostgreSQL (see `common::each`). One file per area, named like
//! the area files of `rust/storage/sqlite/` and `rust/storage/postgres/`. What only one
//! backend does is tested in tests/sqlite.rs and tests/postgres.rs.

mod common;

mod claim;
mod inspect;
mod limits;
mod links;
mod pages;
mod pause;
mod settings_kv;
mod workers;
