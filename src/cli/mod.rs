//! The `hookline` commands.
