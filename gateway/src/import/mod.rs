//! Converters from other identity servers' exports to a fedgate configuration (`fedgate import …`). They read
//! files and write files; nothing here serves HTTP.

pub mod keycloak;
