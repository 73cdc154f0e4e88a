//! Rendering: JMESPath templates that turn an event into a request body.
//!
//! - [`expr`]: one compiled expression and the JSON <-> interpreter conversions.
//! - [`functions`]: the custom functions (`upper`, `format_time`, `rename_keys`, ...).
//! - [`context`]: the object templates see (`event`, `hookline`, `vars`).
//! - [`template`]: a named template; [`builtin`]: the ones that ship with hookline.

pub mod builtin;
pub mod context;
pub mod expr;
pub mod functions;
pub mod needs;
pub mod plan;
pub mod template;

pub use context::{Derived, EventContext};
pub use expr::{Expr, ExprError};
pub use template::Template;
