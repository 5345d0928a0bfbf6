//! The tools the agent offers the model: `shell` (bash) and `python` (python3), each run as a
//! separate process under [`exec::run_limited`] and, unless disabled, the [`sandbox::Sandbox`].
//!
//! Invariants: a tool call never fails the agent — unknown tools, bad arguments, spawn failures,
//! timeouts and non-zero exits all come back as a [`ToolResult`] whose `content` the model
//! reads; `content` is bounded by the configured output cap.

pub mod exec;
pub mod sandbox;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value as Json};

use crate::llm::CancelFlag;
use crate::tool_calls::ToolCall;
use exec::{run_limited, CapturedStream, ExecLimits, ExecOutput};
use sandbox::{Sandbox, SandboxBackend};

/// The tools there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ToolKind {
    Shell,
    Python,
}

impl ToolKind {
    pub const ALL: [ToolKind; 2] = [ToolKind::Shell, ToolKind::Python];

    pub fn name(self) -> &'static str {
        match self {
            Self::Shell => "shell",
            Self::Python => "python",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The argument holding the program text.
    fn argument(self) -> &'static str {
        match self {
            Self::Shell => "command",
            Self::Python => "code",
        }
    }

    /// The OpenAI function schema given to the chat template / server.
    pub fn schema(self) -> Json {
        let (description, arg_doc) = match self {
            Self::Shell => (
                "Run a bash command in the working directory and return its exit code, stdout and stderr.",
                "The bash command line to run.",
            ),
            Self::Python => (
                "Run a Python 3 program and return its exit code, stdout and stderr. Print what you want to see.",
                "The Python source code to run.",
            ),
        };
        json!({
            "type": "function",
            "function": {
                "name": self.name(),
                "description": description,
                "parameters": {
                    "type": "object",
                    "properties": { self.argument(): { "type": "string", "description": arg_doc } },
                    "required": [self.argument()],
                },
            },
        })
    }

    fn program(self, text: &str) -> (&'static str, Vec<String>) {
        match self {
            Self::Shell => ("bash", vec!["-c".into(), text.into()]),
            Self::Python => ("python3", vec!["-c".into(), text.into()]),
        }
    }
}

/// Where and how tools run.
#[derive(Clone, Debug)]
pub struct ToolConfig {
    pub work_dir: PathBuf,
    /// Private temp directory (`TMPDIR`), writable inside the sandbox.
    pub tmp_dir: PathBuf,
    pub timeout: Duration,
    /// Cap per stream (stdout, stderr).
    pub max_output_bytes: usize,
    /// `SandboxBackend::None` runs tools unconfined.
    pub sandbox: SandboxBackend,
}

/// What a tool call produced, as the model will read it.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ToolResult {
    pub call_id: String,
    pub name: String,
    /// Text handed back to the model (exit code, outputs, notes on truncation/timeouts).
    pub content: String,
    pub exit_code: Option<i32>,
    pub timed_out: bool,
    pub truncated: bool,
    /// True when the tool could not run at all (unknown tool, bad arguments, denied, spawn).
    pub failed: bool,
}

/// The enabled tools with their configuration.
#[derive(Clone, Debug)]
pub struct ToolRegistry {
    config: ToolConfig,
    sandbox: Sandbox,
}

impl ToolRegistry {
    pub fn new(config: ToolConfig) -> Self {
        let sandbox =
            Sandbox::with_backend(config.sandbox.clone(), &config.work_dir, &config.tmp_dir);
        Self { config, sandbox }
    }

    pub fn config(&self) -> &ToolConfig {
        &self.config
    }

    /// Schemas of every tool, for `tools=` in the template / request.
    pub fn schemas(&self) -> Vec<Json> {
        ToolKind::ALL.into_iter().map(ToolKind::schema).collect()
    }

    /// Runs `call`; every failure is reported in the result.
    pub fn run(&self, call: &ToolCall, cancel: &CancelFlag) -> ToolResult {
        let Some(kind) = ToolKind::from_name(&call.name) else {
            let names: Vec<_> = ToolKind::ALL.iter().map(|k| k.name()).collect();
            return failure(
                call,
                format!(
                    "error: unknown tool `{}`; available tools: {}",
                    call.name,
                    names.join(", ")
                ),
            );
        };
        let Some(text) = call.arguments.get(kind.argument()).and_then(Json::as_str) else {
            return failure(
                call,
                format!(
                    "error: tool `{}` needs a string argument `{}`",
                    kind.name(),
                    kind.argument()
                ),
            );
        };
        let (program, args) = kind.program(text);
        let limits = ExecLimits {
            timeout: self.config.timeout,
            max_output_bytes: self.config.max_output_bytes,
        };
        let output = self
            .sandbox
            .command(program, &args)
            .and_then(|command| run_limited(command, limits, cancel));
        match output {
            Ok(output) => from_output(call, &output, self.config.timeout),
            Err(e) => failure(call, format!("error: could not run `{}`: {e}", kind.name())),
        }
    }

    /// A result telling the model the user declined the call.
    pub fn declined(call: &ToolCall) -> ToolResult {
        failure(
            call,
            "error: the user declined to run this tool call".into(),
        )
    }
}

fn failure(call: &ToolCall, content: String) -> ToolResult {
    ToolResult {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content,
        exit_code: None,
        timed_out: false,
        truncated: false,
        failed: true,
    }
}

fn from_output(call: &ToolCall, output: &ExecOutput, timeout: Duration) -> ToolResult {
    let mut content = String::new();
    if output.timed_out {
        content.push_str(&format!(
            "error: timed out after {:.1} s and was killed\n",
            timeout.as_secs_f64()
        ));
    } else if output.cancelled {
        content.push_str("error: cancelled by the user\n");
    } else {
        match output.exit_code {
            Some(code) => content.push_str(&format!("exit code: {code}\n")),
            None => content.push_str("exit code: none (killed by a signal)\n"),
        }
    }
    append_stream(&mut content, "stdout", &output.stdout);
    append_stream(&mut content, "stderr", &output.stderr);
    ToolResult {
        call_id: call.id.clone(),
        name: call.name.clone(),
        content: content.trim_end().to_string(),
        exit_code: output.exit_code,
        timed_out: output.timed_out,
        truncated: output.stdout.dropped_bytes > 0 || output.stderr.dropped_bytes > 0,
        failed: false,
    }
}

fn append_stream(content: &mut String, label: &str, stream: &CapturedStream) {
    if stream.text.is_empty() && stream.dropped_bytes == 0 {
        return;
    }
    content.push_str(&format!("{label}:\n{}", stream.text));
    if !stream.text.ends_with('\n') {
        content.push('\n');
    }
    if stream.dropped_bytes > 0 {
        content.push_str(&format!(
            "[{label} truncated: {} more bytes not shown]\n",
            stream.dropped_bytes
        ));
    }
}
