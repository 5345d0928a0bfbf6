#!/usr/bin/env bash
# The local agent. Tools (shell, python) run sandboxed (bubblewrap or Landlock); see docs/agent.md.
set -e
# One shot, tools on, answer without asking (--yes), machine-readable result:
cargo run --release --bin arle -- run --prompt "How many files are in the current directory?" --yes --json
# Plain chat, no tools:
cargo run --release --bin arle -- run --prompt "Say hello in French." --no-tools --temperature 0
# Interactive REPL (Ctrl-C cancels a generation, /help lists commands):
# cargo run --release --bin arle
# What works on this machine:
cargo run --release --bin arle -- --doctor
