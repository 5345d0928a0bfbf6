//! Agent setup shared by `arle` (REPL) and `arle run`: the agent flags, the model backend
//! (in-process engine or `--server-url`), the tools with their sandbox, and the trace file.
//!
//! Invariants: tools never run unconfined unless `--no-sandbox` was given, and then a loud
//! warning goes to stderr; when no sandbox works and `--no-sandbox` is absent, setup fails.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use arle_agent::tools::sandbox::probe;
use arle_agent::{
    Agent, AgentConfig, EngineLlm, HttpLlm, HttpSampling, Llm, SandboxBackend, ToolConfig,
    ToolRegistry, TraceWriter,
};
use arle_engine::EngineHandle;

use crate::args::{ModelArgs, SamplingArgs};

/// Flags of the agent (REPL and `arle run`).
#[derive(clap::Args, Debug, Clone)]
pub struct AgentArgs {
    /// Plain chat without tools.
    #[arg(long)]
    pub no_tools: bool,
    /// Run tool calls without asking first.
    #[arg(long)]
    pub yes: bool,
    /// Run tools WITHOUT the sandbox (full access to your files and network).
    #[arg(long)]
    pub no_sandbox: bool,
    /// Most model calls for one user message (each tool round trip is one).
    #[arg(long, default_value_t = 8)]
    pub max_turns: usize,
    /// Use an OpenAI-compatible server instead of loading the model in process.
    #[arg(long, env = "ARLE_SERVER_URL")]
    pub server_url: Option<String>,
    /// Bearer token for --server-url.
    #[arg(long, env = "ARLE_API_KEY")]
    pub api_key: Option<String>,
    /// Write one JSON line per model call (token ids + generated mask) to this file.
    #[arg(long)]
    pub trace: Option<PathBuf>,
    /// System message.
    #[arg(long)]
    pub system: Option<String>,
    /// Working directory of the tools (default: the current directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Seconds a tool may run before it is killed.
    #[arg(long, default_value_t = 60.0)]
    pub tool_timeout: f64,
    /// Bytes of stdout (and of stderr) a tool result keeps.
    #[arg(long, default_value_t = 16 * 1024)]
    pub max_tool_output: usize,
}

/// A ready agent and what the front ends show about it.
pub struct AgentSession {
    pub agent: Agent,
    /// Present with the in-process engine (for `/stats`).
    pub engine: Option<EngineHandle>,
    /// `Some` when tools are on.
    pub sandbox: Option<SandboxBackend>,
    /// "in-process (PATH)" or the server URL.
    pub backend_description: String,
    /// The tools' private temp directory (unique name, mode 0700), removed on drop.
    _tool_tmp: Option<tempfile::TempDir>,
}

impl AgentSession {
    pub fn start(
        model: &ModelArgs,
        sampling: &SamplingArgs,
        args: &AgentArgs,
    ) -> anyhow::Result<Self> {
        let (llm, engine, backend_description): (Box<dyn Llm>, _, _) = match &args.server_url {
            Some(url) => {
                let http = HttpLlm::connect(
                    url,
                    args.api_key.clone(),
                    model.model.clone(),
                    HttpSampling {
                        max_tokens: sampling.max_tokens,
                        temperature: Some(sampling.temperature),
                        top_p: Some(sampling.top_p),
                        seed: sampling.seed,
                    },
                )
                .with_context(|| format!("connecting to {url}"))?;
                (Box::new(http), None, format!("server {url}"))
            }
            None => {
                let config = model.engine_config()?;
                let description = format!("in-process ({})", config.model_path.display());
                let handle = crate::bench::engine::start_handle(model, config)?;
                let llm = EngineLlm::new(handle.clone(), sampling.params());
                (Box::new(llm), Some(handle), description)
            }
        };
        let (tools, sandbox, tool_tmp) = if args.no_tools {
            (None, None, None)
        } else {
            let (registry, backend, tmp) = tool_registry(args)?;
            (Some(registry), Some(backend), Some(tmp))
        };
        let config = AgentConfig {
            max_turns: args.max_turns,
            system_prompt: args.system.clone(),
        };
        let mut agent = Agent::new(llm, tools, config);
        if let Some(path) = &args.trace {
            agent.set_trace(TraceWriter::create(path)?);
        }
        Ok(Self {
            agent,
            engine,
            sandbox,
            backend_description,
            _tool_tmp: tool_tmp,
        })
    }

    /// Stops the in-process engine, if any.
    pub fn shutdown(&self) {
        if let Some(engine) = &self.engine {
            engine.shutdown();
        }
    }
}

fn tool_registry(
    args: &AgentArgs,
) -> anyhow::Result<(ToolRegistry, SandboxBackend, tempfile::TempDir)> {
    let work_dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("reading the current directory")?,
    };
    let work_dir = work_dir
        .canonicalize()
        .with_context(|| format!("tool working directory {}", work_dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix("arle-tools-")
        .tempdir()
        .context("creating the tools' temporary directory")?;
    let backend = if args.no_sandbox {
        eprintln!("{}", no_sandbox_warning());
        SandboxBackend::None
    } else {
        let report = probe();
        if report.backend == SandboxBackend::None {
            bail!(
                "no sandbox works on this machine (bubblewrap: {}, Landlock: {}); install bubblewrap, \
                 or pass --no-tools, or --no-sandbox to run tools unconfined",
                if report.bwrap_path.is_some() { "fails" } else { "not installed" },
                report.landlock_abi.map_or("unsupported".to_string(), |v| format!("ABI {v} fails")),
            );
        }
        report.backend
    };
    let registry = ToolRegistry::new(ToolConfig {
        work_dir,
        tmp_dir: tmp.path().to_path_buf(),
        timeout: Duration::from_secs_f64(args.tool_timeout.max(0.001)),
        max_output_bytes: args.max_tool_output,
        sandbox: backend.clone(),
    });
    Ok((registry, backend, tmp))
}

/// The stderr banner of `--no-sandbox`.
pub fn no_sandbox_warning() -> &'static str {
    "\n!!! WARNING: --no-sandbox: tools run UNCONFINED, with your full access to files and network.\n\
     !!! Anything the model writes in a tool call can change or delete your data.\n"
}

/// One line describing the sandbox, for banners and `/tools`.
pub fn describe_sandbox(backend: &SandboxBackend) -> String {
    match backend {
        SandboxBackend::Bubblewrap { path } => format!(
            "bubblewrap ({}): writes only in the work dir and TMPDIR, no network",
            path.display()
        ),
        SandboxBackend::Landlock { abi } if *abi >= 4 => {
            format!("Landlock ABI {abi}: writes only in the work dir and TMPDIR, TCP denied")
        }
        SandboxBackend::Landlock { abi } => format!(
            "Landlock ABI {abi}: writes only in the work dir and TMPDIR (network NOT restricted)"
        ),
        SandboxBackend::None => "NONE (--no-sandbox): tools run unconfined".to_string(),
    }
}
