//! Rendering: JMESPath templates that turn an event into a request body (issue 3).
