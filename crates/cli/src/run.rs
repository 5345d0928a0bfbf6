//! `arle run`: one prompt in, the assistant's reply out (streamed to stdout), using the model's
//! own chat template. Tools come with the agent; `--no-tools` is plain chat.

use std::io::Write;

use anyhow::{bail, Context};
use arle_engine::tokenizer::{ChatMessage, RenderOptions};
use arle_engine::{start_engine, FinishReason, GenerateEvent, GenerateRequest};

use crate::args::{ModelArgs, SamplingArgs};

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    /// The user message.
    #[arg(long)]
    pub prompt: String,
    /// Optional system message.
    #[arg(long)]
    pub system: Option<String>,
    /// Plain chat without tools (the only mode until the agent lands).
    #[arg(long)]
    pub no_tools: bool,
}

/// Runs the prompt and prints the reply; returns the number of generated tokens.
pub fn run(args: RunArgs) -> anyhow::Result<usize> {
    let handle = start_engine(args.model.engine_config()?).context("starting the engine")?;
    let mut messages = Vec::new();
    if let Some(system) = &args.system {
        messages.push(ChatMessage::new("system", system.as_str()));
    }
    messages.push(ChatMessage::new("user", args.prompt.as_str()));
    let prompt = handle
        .render_chat(
            &messages,
            &RenderOptions {
                add_generation_prompt: true,
                ..Default::default()
            },
        )
        .context("rendering the chat template")?;
    let prompt_token_ids = handle
        .tokenizer()
        .encode(&prompt, false)
        .context("tokenizing the prompt")?;
    let mut stream = handle
        .submit(GenerateRequest {
            prompt_token_ids,
            params: args.sampling.params(),
        })
        .context("submitting the request")?;
    let mut out = std::io::stdout().lock();
    let mut generated = 0;
    while let Some(event) = stream.blocking_next() {
        match event {
            GenerateEvent::Started { .. } => {}
            GenerateEvent::Token { text, .. } => {
                generated += 1;
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            GenerateEvent::Finished { reason, text, .. } => {
                out.write_all(text.as_bytes())?;
                writeln!(out)?;
                if reason == FinishReason::Abort {
                    bail!("generation was aborted");
                }
                break;
            }
            GenerateEvent::Error(e) => bail!("generation failed: {e}"),
        }
    }
    handle.shutdown();
    Ok(generated)
}
