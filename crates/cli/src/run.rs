//! `arle run`: one-shot agent. `--prompt TEXT` or `--stdin` in; the answer streamed to stdout
//! (or one JSON object with `--json`). Tools are on by default (`--no-tools` = plain chat).
//!
//! Tool calls are asked for on the terminal when stdin is one (and `--stdin` is not used);
//! otherwise they are declined unless `--yes`. Tool activity goes to stderr, so stdout holds
//! only the answer (or the JSON).

use std::io::{IsTerminal, Read, Write};

use anyhow::{bail, Context};
use arle_agent::{AgentObserver, CancelFlag, StopReason, ToolCall, ToolResult};
use serde_json::json;

use crate::agent_run::{AgentArgs, AgentSession};
use crate::args::{ModelArgs, SamplingArgs};

/// Version of the `--json` output.
pub const RUN_JSON_SCHEMA_VERSION: u32 = 1;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub agent: AgentArgs,
    /// The user message.
    #[arg(long, required_unless_present = "stdin", conflicts_with = "stdin")]
    pub prompt: Option<String>,
    /// Read the user message from stdin.
    #[arg(long)]
    pub stdin: bool,
    /// Print one JSON object (final text, tool calls, token counts) instead of streaming.
    #[arg(long)]
    pub json: bool,
}

/// Prints text and asks (or declines) tool calls.
struct RunObserver {
    stream_text: bool,
    auto_approve: bool,
    can_ask: bool,
}

impl AgentObserver for RunObserver {
    fn on_text(&mut self, text: &str) {
        if self.stream_text {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
        }
    }

    fn approve(&mut self, call: &ToolCall) -> bool {
        eprintln!("\n[tool call] {} {}", call.name, call.arguments);
        if self.auto_approve {
            return true;
        }
        if !self.can_ask {
            eprintln!("[tool call declined: not interactive; pass --yes to allow tools]");
            return false;
        }
        eprint!("Run it? [y/N] ");
        let mut answer = String::new();
        let _ = std::io::stdin().read_line(&mut answer);
        matches!(answer.trim(), "y" | "Y" | "yes")
    }

    fn on_tool_result(&mut self, call: &ToolCall, result: &ToolResult) {
        eprintln!("[tool {} -> {}]", call.name, first_line(&result.content));
    }

    fn on_malformed_call(&mut self, _raw: &str, error: &str) {
        eprintln!("[malformed tool call: {error}]");
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// Runs the agent once; returns the number of generated tokens.
pub fn run(args: RunArgs) -> anyhow::Result<usize> {
    let prompt = match (&args.prompt, args.stdin) {
        (Some(p), _) => p.clone(),
        (None, true) => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading the prompt from stdin")?;
            text
        }
        (None, false) => bail!("give --prompt TEXT or --stdin"),
    };
    let mut session = AgentSession::start(&args.model, &args.sampling, &args.agent)?;
    let mut observer = RunObserver {
        stream_text: !args.json,
        auto_approve: args.agent.yes,
        can_ask: !args.stdin && std::io::stdin().is_terminal(),
    };
    let outcome = session
        .agent
        .send(&prompt, &mut observer, &CancelFlag::new())?;
    if args.json {
        let tool_calls: Vec<_> = outcome
            .tool_calls
            .iter()
            .map(|r| {
                json!({
                    "name": r.call.name,
                    "arguments": r.call.arguments,
                    "exit_code": r.result.exit_code,
                    "timed_out": r.result.timed_out,
                    "truncated": r.result.truncated,
                    "failed": r.result.failed,
                    "output": r.result.content,
                })
            })
            .collect();
        let doc = json!({
            "schema_version": RUN_JSON_SCHEMA_VERSION,
            "model": session.agent.model_name(),
            "final_text": outcome.final_text,
            "stop": outcome.stop,
            "model_calls": outcome.model_calls,
            "tool_calls": tool_calls,
            "malformed_tool_calls": outcome.malformed_calls,
            "usage": outcome.usage,
        });
        println!("{doc}");
    } else {
        println!();
    }
    session.shutdown();
    if outcome.stop == StopReason::Cancelled {
        bail!("generation was aborted");
    }
    if outcome.stop == StopReason::MaxTurns {
        eprintln!(
            "[stopped after --max-turns {} model calls]",
            args.agent.max_turns
        );
    }
    Ok(outcome.usage.completion_tokens)
}
