//! Wires the stages into one running router.
