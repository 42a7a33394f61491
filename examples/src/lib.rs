//! The demo service behind `scripts/demo.sh`: users, orders, freight resources and trend
//! analysis in SQLite, cached with the attributes, with the admin API mounted.

pub mod demo;
