//! CLI shared code.
