//! `ltm completions SHELL`: the shell's completion script for every command and option.

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// bash, zsh, fish, elvish or powershell. Install, e.g. for bash:
    /// `ltm completions bash > ~/.local/share/bash-completion/completions/ltm`.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let mut command = super::Cli::command();
    clap_complete::generate(args.shell, &mut command, "ltm", &mut std::io::stdout());
    Ok(())
}
