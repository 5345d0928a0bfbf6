//! Qwen3 dense. (Skeleton.)
