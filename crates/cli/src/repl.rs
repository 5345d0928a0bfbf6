//! `arle` with no subcommand: the interactive agent REPL.
//!
//! Streaming output; line editing and history (rustyline, history file); Ctrl-C while the model
//! or a tool runs cancels that generation (SIGINT sets the cancel flag; the engine request is
//! dropped, the tool's process group killed) and returns to the prompt; at the prompt Ctrl-C
//! clears the line and Ctrl-D / `/quit` exits. Slash commands: see [`HELP`].

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use arle_agent::{AgentObserver, CancelFlag, StopReason, ToolCall, ToolResult};
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::agent_run::{describe_sandbox, AgentArgs, AgentSession};
use crate::args::{ModelArgs, SamplingArgs};

/// Lines of a tool's output shown in the REPL (the model gets all of it).
const SHOWN_TOOL_LINES: usize = 12;

const HELP: &str = "\
/help           this help
/reset          forget the conversation
/tools          the tools and the sandbox
/model          the model and where it runs
/stats          token counts (prompt, cached, completion) and speed
/save FILE      write the conversation as JSON
/load FILE      read a conversation written by /save
/quit           exit (also Ctrl-D)
Ctrl-C cancels a running generation or tool.";

#[derive(clap::Args, Debug, Clone)]
pub struct ReplArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// History file (default: $XDG_STATE_HOME/arle/history or ~/.local/state/arle/history).
    #[arg(long, env = "ARLE_HISTORY")]
    pub history: Option<PathBuf>,
}

/// Default history file location.
pub fn default_history_path() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .map(|dir| dir.join("arle/history"))
}

/// Streams text to the terminal and asks before tools run.
struct ReplObserver {
    auto_approve: bool,
}

impl AgentObserver for ReplObserver {
    fn on_text(&mut self, text: &str) {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(text.as_bytes());
        let _ = out.flush();
    }

    fn approve(&mut self, call: &ToolCall) -> bool {
        let shown = ["command", "code"]
            .iter()
            .find_map(|k| call.arguments.get(*k).and_then(|v| v.as_str()))
            .map_or_else(|| call.arguments.to_string(), str::to_string);
        println!("\n[{}] {}", call.name, shown);
        if self.auto_approve {
            return true;
        }
        print!("Run it? [y/N] ");
        let _ = std::io::stdout().flush();
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        matches!(answer.trim(), "y" | "Y" | "yes")
    }

    fn on_tool_result(&mut self, _call: &ToolCall, result: &ToolResult) {
        let lines: Vec<&str> = result.content.lines().collect();
        for line in lines.iter().take(SHOWN_TOOL_LINES) {
            println!("  | {line}");
        }
        if lines.len() > SHOWN_TOOL_LINES {
            println!("  | ... ({} more lines)", lines.len() - SHOWN_TOOL_LINES);
        }
    }

    fn on_malformed_call(&mut self, _raw: &str, error: &str) {
        println!("\n[malformed tool call: {error}; told the model]");
    }
}

/// Speed of the last answer, for `/stats`.
#[derive(Clone, Copy, Debug, Default)]
struct LastSpeed {
    completion_tokens: usize,
    seconds: f64,
}

/// Runs the REPL until `/quit` or end of input.
pub fn repl(args: ReplArgs) -> anyhow::Result<()> {
    eprintln!("loading the model...");
    let mut session = AgentSession::start(&args.model, &args.sampling, &args.agent)?;
    let cancel = CancelFlag::new();
    signal_hook::flag::register(signal_hook::consts::SIGINT, cancel.as_atomic())
        .context("installing the Ctrl-C handler")?;
    let mut editor = DefaultEditor::new().context("starting the line editor")?;
    let history = args.history.clone().or_else(default_history_path);
    if let Some(path) = &history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = editor.load_history(path);
    }
    println!(
        "arle: {} via {}; tools: {}\n/help for commands, Ctrl-C cancels a generation, /quit or Ctrl-D exits.",
        session.agent.model_name(),
        session.backend_description,
        session
            .sandbox
            .as_ref()
            .map_or("off".to_string(), |b| format!("shell, python in {}", describe_sandbox(b))),
    );
    let mut observer = ReplObserver {
        auto_approve: args.agent.yes,
    };
    let mut last_speed = LastSpeed::default();
    loop {
        let line = match editor.readline("> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                println!("(Ctrl-C: /quit or Ctrl-D exits)");
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading input"),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(line);
        if line.starts_with('/') {
            if !slash_command(line, &mut session, last_speed)? {
                break;
            }
            continue;
        }
        cancel.reset();
        let started = Instant::now();
        match session.agent.send(line, &mut observer, &cancel) {
            Ok(outcome) => {
                last_speed = LastSpeed {
                    completion_tokens: outcome.usage.completion_tokens,
                    seconds: started.elapsed().as_secs_f64(),
                };
                match outcome.stop {
                    StopReason::Cancelled => println!("\n[cancelled]"),
                    StopReason::MaxTurns => println!("\n[stopped: --max-turns reached]"),
                    StopReason::Length => println!("\n[stopped: length limit]"),
                    StopReason::Answered => println!(),
                }
            }
            Err(e) => println!("\n[error: {e}]"),
        }
        cancel.reset();
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    session.shutdown();
    Ok(())
}

/// Handles one slash command; returns `false` to quit.
fn slash_command(line: &str, session: &mut AgentSession, speed: LastSpeed) -> anyhow::Result<bool> {
    let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
    let arg = arg.trim();
    match command {
        "/quit" | "/exit" => return Ok(false),
        "/help" => println!("{HELP}"),
        "/reset" => {
            session.agent.reset();
            println!("conversation cleared");
        }
        "/tools" => match (&session.sandbox, session.agent.tools()) {
            (Some(backend), Some(tools)) => {
                for schema in tools.schemas() {
                    println!(
                        "{}: {}",
                        schema["function"]["name"].as_str().unwrap_or("?"),
                        schema["function"]["description"].as_str().unwrap_or("")
                    );
                }
                let config = tools.config();
                println!("work dir: {}", config.work_dir.display());
                println!(
                    "timeout: {:.0} s, output cap: {} bytes per stream",
                    config.timeout.as_secs_f64(),
                    config.max_output_bytes
                );
                println!("sandbox: {}", describe_sandbox(backend));
            }
            _ => println!("tools are off (--no-tools)"),
        },
        "/model" => println!(
            "{} via {}",
            session.agent.model_name(),
            session.backend_description
        ),
        "/stats" => print_stats(session, speed),
        "/save" | "/load" if arg.is_empty() => println!("usage: {command} FILE"),
        "/save" => match session.agent.save(arg.as_ref()) {
            Ok(()) => println!("saved {} messages to {arg}", session.agent.messages().len()),
            Err(e) => println!("error: {e}"),
        },
        "/load" => match session.agent.load(arg.as_ref()) {
            Ok(()) => println!(
                "loaded {} messages from {arg}",
                session.agent.messages().len()
            ),
            Err(e) => println!("error: {e}"),
        },
        _ => println!("unknown command {command}; /help lists them"),
    }
    Ok(true)
}

fn print_stats(session: &AgentSession, speed: LastSpeed) {
    let s = session.agent.stats();
    println!(
        "turns: {}  model calls: {}  tool calls: {}",
        s.user_turns, s.model_calls, s.tool_calls
    );
    println!(
        "prompt tokens: {}  cached tokens: {}  completion tokens: {}",
        s.prompt_tokens, s.cached_tokens, s.completion_tokens
    );
    if let Some(last) = s.last_call {
        println!(
            "last call: prompt {} (cached {}), completion {}",
            last.prompt_tokens, last.cached_tokens, last.completion_tokens
        );
    }
    if speed.seconds > 0.0 {
        println!(
            "last answer: {} tokens in {:.2} s ({:.1} tokens/s)",
            speed.completion_tokens,
            speed.seconds,
            speed.completion_tokens as f64 / speed.seconds
        );
    }
    if let Some(engine) = &session.engine {
        let e = engine.stats();
        println!(
            "engine: KV blocks {} total, {} free ({} holding cached prefixes); prefix-cache hits {} tokens",
            e.kv_blocks_total, e.kv_blocks_free, e.kv_blocks_cached, e.prefix_cache_hit_tokens_total
        );
    }
}
