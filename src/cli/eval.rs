//! `ltm eval arith`: few-shot accuracy of the final number for several thinking budgets, as
//! pass@k, majority vote and ELBO-best sample, by number of reasoning steps.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use crate::engine::{self, Event, Request, SampleSettings, ThinkSettings};
use crate::tasks::eval::{Report, reasoning_steps, score};
use crate::tasks::prompt::{
    ANSWER_PREFIX, BOS, Example, Record, cut_answer, few_shot_prompt, load_jsonl,
};
use crate::tasks::{Split, final_number, generate};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub task: Task,
}

#[derive(Debug, clap::Subcommand)]
pub enum Task {
    /// GSM8K-style word problems (our generator's or GSM8K's own JSONL).
    Arith(ArithArgs),
}

#[derive(Debug, clap::Args)]
pub struct ArithArgs {
    #[command(flatten)]
    pub model: super::ModelArgs,
    /// Problems: JSONL with `question` and `final` or a GSM8K `answer` ending in `#### N`.
    /// Default: 100 fresh problems of the training templates (seed 777, unseen in training).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Worked examples for the shots (default: problems of the training templates, seed 4242).
    #[arg(long, value_name = "FILE")]
    pub examples: Option<PathBuf>,
    #[arg(long, default_value_t = 4)]
    pub shots: usize,
    /// Thinking budgets to compare.
    #[arg(long, value_delimiter = ',', default_value = "0,4,16,32")]
    pub steps: Vec<usize>,
    /// Thought samples per problem (k of pass@k).
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Evaluate only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    #[arg(long, default_value_t = 160)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// GSM8K's calculator while writing (`<<EXPR=` gets its exact result): on, off, or both,
    /// which evaluates every problem with and without it and prints a table for each, labelled
    /// [default: the model's config, on for ours].
    #[arg(long, value_name = "on|off|both")]
    pub calculator: Option<Calculator>,
    /// One JSON line per problem (with `calculator`), then one `report` line per calculator setting.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Calculator {
    On,
    Off,
    Both,
}

impl Calculator {
    /// The settings to evaluate, in order; `default` is the model's.
    fn settings(choice: Option<Self>, default: bool) -> Vec<bool> {
        match choice {
            None => vec![default],
            Some(Calculator::On) => vec![true],
            Some(Calculator::Off) => vec![false],
            Some(Calculator::Both) => vec![true, false],
        }
    }
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

fn records(path: &Option<PathBuf>, default_seed: u64, n: usize) -> Result<Vec<Record>> {
    match path {
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?;
            load_jsonl(&text).map_err(|e| anyhow!("{}: {e}", p.display()))
        }
        None => Ok(generate(n, default_seed, Split::Train)
            .iter()
            .map(Record::from)
            .collect()),
    }
}

pub fn run(args: Args, device: &str) -> Result<()> {
    let Task::Arith(args) = args.task;
    let mut problems = records(&args.data, 777, 100)?;
    problems.truncate(args.limit.unwrap_or(usize::MAX));
    let shots: Vec<Example> = records(&args.examples, 4242, args.shots)?
        .into_iter()
        .filter_map(|r| {
            r.answer.map(|answer| Example {
                question: r.question,
                answer,
            })
        })
        .take(args.shots)
        .collect();
    if shots.len() < args.shots {
        bail!(
            "only {} worked examples (with an `answer`) for {} shots",
            shots.len(),
            args.shots
        );
    }
    let (events, inbox) = mpsc::channel();
    let engine = engine::spawn(args.model.engine(device), move |e| {
        let _ = events.send(e);
    });
    let info = match inbox.recv()? {
        Event::Ready(info) => info,
        Event::Error { message, .. } => bail!(message),
        other => bail!("the engine said {other:?} before it was ready"),
    };
    let live = std::io::stderr().is_terminal();
    let calcs = Calculator::settings(args.calculator, info.calculator);
    let total = problems.len() * args.steps.len() * calcs.len();
    let mut reports = vec![Report::default(); calcs.len()];
    let mut id = 0;
    for (i, problem) in problems.iter().enumerate() {
        for (&steps, &calculator) in args
            .steps
            .iter()
            .flat_map(|s| calcs.iter().map(move |c| (s, c)))
        {
            id += 1;
            engine.submit(Request {
                id,
                prompt: few_shot_prompt(&shots, &problem.question),
                prompt_ids: None,
                answer_prefix: ANSWER_PREFIX.to_string(),
                think: ThinkSettings {
                    steps,
                    lr: info.default_lr,
                    samples: args.samples,
                    warm_start: false,
                    tolerance: None,
                    thought: None,
                    save_thought: None,
                },
                sample: SampleSettings {
                    max_tokens: args.max_tokens,
                    temperature: 0.0,
                    top_k: None,
                    top_p: None,
                    seed: args.seed + i as u64,
                    stop: vec![BOS.to_string(), "\nQuestion:".to_string()],
                    calculator,
                },
            });
            let mut answers = vec![None; args.samples];
            let mut nelbo = vec![f64::INFINITY; args.samples];
            loop {
                match inbox.recv().context("the engine stopped")? {
                    Event::Done {
                        sample,
                        text,
                        nelbo: e,
                        ..
                    } => {
                        answers[sample] = final_number(cut_answer(&text));
                        nelbo[sample] = e;
                    }
                    Event::Finished { .. } => break,
                    Event::Error { message, .. } => bail!("problem {}: {message}", i + 1),
                    Event::Cancelled { .. } => bail!("cancelled"),
                    _ => {}
                }
            }
            let scored = score(&problem.r#final, &answers, &nelbo);
            let c = calcs.iter().position(|&c| c == calculator).unwrap_or(0);
            reports[c].add(steps, reasoning_steps(problem.answer.as_deref()), scored);
            if args.json {
                let line = json!({"event": "problem", "index": i, "thinking_steps": steps, "calculator": calculator,
                    "gold": problem.r#final, "answers": answers, "nelbo": nelbo, "pass_at_k": scored.pass_at_k,
                    "majority": scored.majority, "elbo_best": scored.elbo_best});
                println!("{line}");
            }
            let done = id as usize;
            if live {
                eprint!(
                    "\r\x1b[2Kevaluating {done}/{total} (problem {} of {}, {steps} thinking steps, calculator {})",
                    i + 1,
                    problems.len(),
                    on_off(calculator)
                );
                std::io::stderr().flush().ok();
            }
        }
    }
    if live {
        eprintln!();
    }
    engine.shutdown();
    if args.json {
        for (report, calculator) in reports.iter().zip(&calcs) {
            println!(
                "{}",
                json!({"event": "report", "samples": args.samples, "shots": args.shots, "calculator": calculator,
                       "tallies": report.tallies})
            );
        }
    } else {
        println!(
            "{} problems, {}-shot, {} thought samples each, model {}",
            problems.len(),
            args.shots,
            args.samples,
            info.name
        );
        for (n, (report, &calculator)) in reports.iter().zip(&calcs).enumerate() {
            if n > 0 {
                println!();
            }
            println!("calculator {}:", on_off(calculator));
            print!("{}", report.table(args.samples));
        }
    }
    Ok(())
}
