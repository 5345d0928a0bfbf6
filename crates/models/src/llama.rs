//! Llama family (SmolLM2, Llama 3.x). (Skeleton.)
