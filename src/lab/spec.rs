//! The lab file as written (TOML), with the byte span of every key and value.
