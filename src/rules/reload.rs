//! Hot reload (todo).
