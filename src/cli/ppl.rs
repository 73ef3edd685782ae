//! `ltm ppl`: the ELBO perplexity bound of a model over a text or JSONL file.

use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};

use crate::tasks::prompt::{Example, load_jsonl};
use crate::think::text_elbo;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub model: super::ModelArgs,
    #[command(flatten)]
    pub device: super::DeviceArg,
    /// A text file, or JSONL of problems (`question` and `answer`, scored in the few-shot format).
    #[arg(long, value_name = "FILE")]
    pub data: PathBuf,
    /// Thinking steps per window [default: the model's].
    #[arg(long, value_name = "N", value_parser = |s: &str| crate::limits::STEPS.parse(s))]
    pub steps: Option<usize>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Score only the first N tokens [default: all].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(2..))]
    pub limit: Option<u64>,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> Result<()> {
    let raw = crate::fsutil::read_text_limited(&args.data, crate::fsutil::DATA_FILE)?;
    if raw.trim().is_empty() {
        bail!(
            "{}: nothing to score (the file is empty)",
            args.data.display()
        );
    }
    let text = if args.data.extension().is_some_and(|e| e == "jsonl") {
        let records = load_jsonl(&raw).map_err(|e| anyhow!("{}: {e}", args.data.display()))?;
        let examples: Vec<Example> = records
            .into_iter()
            .map(|r| Example::from_record(&r))
            .collect();
        crate::tasks::prompt::few_shot_prompt(&examples, "")
    } else {
        raw
    };
    let (model, tokenizer) = args.model.source(args.device, Default::default())?.load()?;
    let steps = args.steps.unwrap_or(model.config().num_steps);
    let ids = tokenizer.encode_long(&text, args.limit.map(|n| n as usize))?;
    let bar = crate::progress::bar(0, 0, "scoring windows");
    let elbo = crate::threads::run(|| {
        text_elbo(
            &model,
            &ids,
            steps,
            model.config().fast_lr,
            args.seed,
            |done, all| {
                bar.set_length(all as u64);
                bar.set_position(done as u64);
            },
        )
    })?;
    bar.finish_and_clear();
    let per_token = |nats: f64| nats / elbo.tokens as f64;
    let (nelbo, nll, kl) = (
        per_token(elbo.nelbo()),
        per_token(elbo.nll),
        per_token(elbo.kl),
    );
    // exp(−ELBO per token) bounds the perplexity.
    let (tokens, ppl) = (elbo.tokens, nelbo.exp());
    if args.json {
        println!(
            "{}",
            serde_json::json!({"tokens": tokens, "steps": steps, "nelbo_per_token": nelbo, "nll_per_token": nll, "kl_per_token": kl, "ppl_bound": ppl})
        );
    } else {
        println!(
            "{tokens} tokens, {steps} thinking steps per window: −ELBO {nelbo:.4} nats/token (the text's NLL {nll:.4}, the thoughts' KL {kl:.4}), perplexity ≤ {ppl:.3}"
        );
    }
    Ok(())
}
