//! `ltm eval arith`: few-shot accuracy of the final number for several thinking budgets, as
//! pass@k, majority vote and ELBO-best sample, by number of reasoning steps; the ELBO bound of
//! the prompts per budget; and, with `--chart`, both against thinking steps as an SVG. An
//! evaluation stopped midway goes on from its `--json` output (`--resume`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use anyhow::{Context, Result, anyhow, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chart::{Scale, Series, StepsPanel};
use crate::engine::{self, Choices, Event};
use crate::fsutil::write_atomic;
use crate::tasks::prompt::{Example, Record, default_examples, few_shot, load_jsonl};
use crate::tasks::score::{Report, Tally, reasoning_steps, score};
use crate::tasks::{Split, problems};
use crate::text::printable;

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
    pub engine: super::EngineArgs,
    /// Problems: JSONL with `question` and `final` or a GSM8K `answer` ending in `#### N`.
    /// Default: 100 fresh problems of the training templates (seed 777, unseen in training).
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Worked examples for the shots (default: problems of the training templates, seed 4242).
    #[arg(long, value_name = "FILE")]
    pub examples: Option<PathBuf>,
    /// Worked examples in each prompt [default: the model's config, else 4]; those that do not
    /// fit the context are dropped whole, with a note.
    #[arg(long, value_parser = shots)]
    pub shots: Option<usize>,
    /// Thinking budgets to compare [default: 0, the model's default, 16].
    #[arg(long, value_delimiter = ',', value_parser = |s: &str| crate::limits::STEPS.parse(s))]
    pub steps: Vec<usize>,
    /// Peak fast learning rate of thinking [default: the model's].
    #[arg(long, value_name = "F", value_parser = |s: &str| crate::limits::LR.parse(s))]
    pub lr: Option<f64>,
    /// Thought samples per problem (k of pass@k).
    #[arg(long, default_value_t = 4)]
    pub samples: usize,
    /// Evaluate only the first N problems.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Most tokens written per answer.
    #[arg(long, default_value_t = 160)]
    pub max_tokens: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Problems evaluated at once, each job with a model of its own: on a CPU, N jobs of one
    /// thread each do more than one job on N threads. The results do not depend on it.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,
    /// GSM8K's calculator while writing (`<<EXPR=` gets its exact result): on, off, or both,
    /// which evaluates every problem with and without it and prints a table for each, labelled
    /// [default: the model's config, on for ours].
    #[arg(long, value_name = "on|off|both")]
    pub calculator: Option<Calculator>,
    #[command(flatten)]
    pub answers: super::AnswerArgs,
    /// One JSON line per problem (with `calculator` and the texts written), then one `report`
    /// line per calculator setting.
    #[arg(long)]
    pub json: bool,
    /// Also draw the results as an SVG with two panels: accuracy (%) against thinking steps, one
    /// line per calculator setting (and per rule when --samples > 1), on top; the ELBO bound
    /// (−ELBO per prompt token, in nats) against thinking steps below.
    #[arg(long, value_name = "FILE.svg")]
    pub chart: Option<PathBuf>,
    /// Go on from the `--json` output of an evaluation of the same model, problems and options
    /// that stopped midway: the runs it holds are taken from it, not asked again, and the rest
    /// are asked (write the new output to another file: it holds every run).
    #[arg(long, value_name = "FILE.jsonl")]
    pub resume: Option<PathBuf>,
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

fn shots(text: &str) -> Result<usize, String> {
    crate::limits::SHOTS.parse(text)
}

/// What the engine wrote for one request: each sample's answer, text and −ELBO, the prompt's
/// tokens as the engine took it (it may drop worked examples to fit), the check's drafts when
/// it checked, and its first warning (not recorded in `--json` lines).
struct Answered {
    answers: Vec<Option<String>>,
    texts: Vec<String>,
    nelbo: Vec<f64>,
    tokens: usize,
    check: Option<engine::Check>,
    warning: Option<String>,
}

/// The engine's answer to the request just submitted, `samples` thought samples.
fn answer(inbox: &mpsc::Receiver<Event>, samples: usize) -> Result<Answered> {
    let mut a = Answered {
        answers: vec![None; samples],
        texts: vec![String::new(); samples],
        nelbo: vec![f64::INFINITY; samples],
        tokens: 0,
        check: None,
        warning: None,
    };
    loop {
        match inbox.recv().context("the engine stopped")? {
            Event::Done { done, .. } => {
                a.answers[done.sample] = done.answer_in(&done.text);
                a.texts[done.sample] = done.text;
                a.nelbo[done.sample] = done.nelbo;
                a.tokens = done.prompt_tokens;
                a.check = done.check;
            }
            Event::Warning { message, .. } => {
                a.warning.get_or_insert(message);
            }
            Event::Finished { .. } => return Ok(a),
            Event::Error { message, .. } => bail!("{message}"),
            Event::Cancelled { .. } => bail!("cancelled"),
            _ => {}
        }
    }
}

/// A line of `--json` output, as written and as `--resume` reads it back.
#[derive(Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "lowercase")]
enum Line {
    /// One problem at one budget and calculator setting.
    Problem(ProblemLine),
    /// The report lines, which `--resume` passes over.
    #[serde(other)]
    Other,
}

#[derive(Serialize, Deserialize)]
struct ProblemLine {
    index: usize,
    thinking_steps: usize,
    calculator: bool,
    /// The thought seed the problem was asked with: `--seed` plus its index (absent from lines
    /// written before `--resume` was, which are taken unchecked).
    #[serde(default)]
    seed: Option<u64>,
    gold: String,
    answers: Vec<Option<String>>,
    texts: Vec<String>,
    /// Each sample's −ELBO; none where it was not finite (JSON has no infinity).
    nelbo: Vec<Option<f64>>,
    pass_at_k: bool,
    majority: bool,
    elbo_best: bool,
    prompt_tokens: usize,
    nelbo_per_token: Option<f64>,
    check: Option<engine::Check>,
}

impl From<ProblemLine> for Answered {
    fn from(line: ProblemLine) -> Self {
        Answered {
            answers: line.answers,
            texts: line.texts,
            nelbo: (line.nelbo.iter())
                .map(|v| v.unwrap_or(f64::INFINITY))
                .collect(),
            tokens: line.prompt_tokens,
            check: line.check,
            warning: None,
        }
    }
}

/// The thought seed of the problem at `index`: each its own, the same whichever runs are asked.
fn problem_seed(seed: u64, index: usize) -> u64 {
    seed.wrapping_add(index as u64)
}

/// A run, by its problem's index, thinking budget and calculator setting.
type RunKey = (usize, usize, bool);

/// The runs an earlier evaluation's `--json` output at `path` holds for these `problems`, asked
/// with `samples` thought samples from `seed`: its last line may be cut off (the evaluation was
/// stopped mid-write), and lines past the problems are passed over; a line of another problem
/// or seed is refused, since its answers would be another evaluation's.
fn recorded(
    path: &Path,
    problems: &[Record],
    samples: usize,
    seed: u64,
) -> Result<HashMap<RunKey, Answered>> {
    let text = crate::fsutil::read_text_limited(path, crate::fsutil::DATA_FILE)?;
    let mut runs = HashMap::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let at = || format!("{}, line {}", path.display(), n + 1);
        let line = match serde_json::from_str(line) {
            Ok(Line::Problem(line)) => line,
            Ok(Line::Other) => continue,
            // Only the last line can lack its end.
            Err(_) if !line.ends_with('\n') => {
                eprintln!("note: {}: cut off mid-write; its run is asked again", at());
                break;
            }
            Err(e) => bail!("{}: not a line of `ltm eval arith --json` ({e})", at()),
        };
        let Some(problem) = problems.get(line.index) else {
            continue;
        };
        if line.gold != problem.r#final {
            bail!(
                "{}: problem {}'s answer is {} there and {} here: not an evaluation of these problems",
                at(),
                line.index + 1,
                printable(&line.gold),
                printable(&problem.r#final)
            );
        }
        let asked_with = problem_seed(seed, line.index);
        if let Some(other) = line.seed.filter(|&s| s != asked_with) {
            bail!(
                "{}: problem {} was asked with seed {other} there and {asked_with} here: not an \
                 evaluation with this --seed",
                at(),
                line.index + 1
            );
        }
        let written = [line.answers.len(), line.texts.len(), line.nelbo.len()];
        if written != [samples; 3] {
            bail!(
                "{}: {written:?} answers, texts and −ELBOs, here --samples {samples}",
                at()
            );
        }
        runs.insert(
            (line.index, line.thinking_steps, line.calculator),
            line.into(),
        );
    }
    Ok(runs)
}

fn on_off(on: bool) -> &'static str {
    if on { "on" } else { "off" }
}

/// Accuracy (top) and the ELBO bound (bottom) against thinking steps.
fn chart(reports: &[Report], calcs: &[bool], samples: usize, problems: usize) -> Result<String> {
    type Rule = fn(&Tally) -> usize;
    let rules: Vec<(&str, Rule)> = if samples > 1 {
        vec![
            ("majority", |t| t.majority),
            ("ELBO-best", |t| t.elbo_best),
            ("pass@k", |t| t.pass_at_k),
        ]
    } else {
        vec![("", |t| t.majority)]
    };
    let mut accuracy = Vec::new();
    for (report, &calculator) in reports.iter().zip(calcs) {
        for (rule, count) in &rules {
            let rule = rule.replace("pass@k", &format!("pass@{samples}"));
            let name = format!("calculator {}", on_off(calculator));
            accuracy.push(Series {
                name: if rule.is_empty() {
                    name
                } else {
                    format!("{name}, {rule}")
                },
                points: report.accuracy(count),
            });
        }
    }
    // Thinking comes before writing, so the calculator does not change the ELBO: one line.
    let elbo = reports.first().map(|r| Series {
        name: "few-shot prompt (perplexity bound = e^y)".to_string(),
        points: r
            .elbo
            .iter()
            .map(|(&steps, e)| (steps, e.nelbo_per_token().unwrap_or(f64::NAN)))
            .collect(),
    });
    crate::chart::thinking_steps(&[
        StepsPanel {
            title: format!("Accuracy against thinking steps ({problems} problems)"),
            y_label: "accuracy (%)".to_string(),
            scale: Scale::Percent,
            series: accuracy,
        },
        StepsPanel {
            title: "ELBO bound against thinking steps".to_string(),
            y_label: "−ELBO per token (nats)".to_string(),
            scale: Scale::Linear,
            series: elbo.into_iter().collect(),
        },
    ])
}

fn write_chart(path: &Path, svg: &str) -> Result<()> {
    write_atomic(path, svg.as_bytes()).with_context(|| format!("cannot write {}", path.display()))
}

fn records(path: &Option<PathBuf>, default_seed: u64, n: usize) -> Result<Vec<Record>> {
    match path {
        Some(p) => {
            let text = crate::fsutil::read_text_limited(p, crate::fsutil::DATA_FILE)?;
            let records = load_jsonl(&text).map_err(|e| anyhow!("{}: {e}", p.display()))?;
            if records.is_empty() {
                bail!("{}: no problems in it (the file is empty)", p.display());
            }
            Ok(records)
        }
        None => Ok(problems(n, default_seed, Split::Train)
            .iter()
            .map(Record::from)
            .collect()),
    }
}

pub fn run(args: Args) -> Result<()> {
    let Task::Arith(args) = args.task;
    let mut problems = records(&args.data, 777, 100)?;
    problems.truncate(args.limit.unwrap_or(usize::MAX));
    let (engine, inbox, info) = engine::start(args.engine.source()?)?;
    let n_shots = args.shots.or(info.default_shots).unwrap_or(4);
    let shots: Vec<Example> = match &args.examples {
        Some(_) => records(&args.examples, 0, 0)?
            .iter()
            .take(n_shots)
            .map(Example::from_record)
            .collect(),
        None => default_examples(n_shots),
    };
    if shots.len() < n_shots {
        bail!("only {} worked examples for {} shots", shots.len(), n_shots);
    }
    let mut shortened_problems = 0;
    let calcs = Calculator::settings(args.calculator, info.calculator);
    let budgets = if args.steps.is_empty() {
        let mut b = vec![0, info.default_steps, 16];
        b.dedup();
        b
    } else {
        args.steps.clone()
    };
    let defaults = info.defaults();
    // Every run, in the order they are reported: each problem at each budget and setting.
    let mut runs: Vec<RunKey> = Vec::new();
    for i in 0..problems.len() {
        for &steps in &budgets {
            runs.extend(calcs.iter().map(|&calculator| (i, steps, calculator)));
        }
    }
    let mut recorded = match &args.resume {
        Some(path) => recorded(path, &problems, args.samples, args.seed)?,
        None => HashMap::new(),
    };
    let asked: Vec<usize> = (0..runs.len())
        .filter(|k| !recorded.contains_key(&runs[*k]))
        .collect();
    if let Some(path) = &args.resume {
        eprintln!(
            "resuming: {} of {} runs taken from {}, {} to ask",
            runs.len() - asked.len(),
            runs.len(),
            path.display(),
            asked.len()
        );
    }
    let bar = crate::progress::bar(runs.len() as u64, 0, "evaluating");
    let mut reports = vec![Report::default(); calcs.len()];
    let ask = |k: usize, engine: &engine::EngineHandle, inbox: &mpsc::Receiver<Event>| {
        let (i, steps, calculator) = runs[k];
        let choices = Choices {
            steps: Some(steps),
            lr: args.lr,
            samples: args.samples,
            // Greedy, whatever the model's temperature: thought samples are what vary.
            temperature: Some(0.0),
            max_tokens: args.max_tokens,
            calculator: Some(calculator),
            copy_numbers: args.answers.copy_numbers(),
            check: args.answers.check(),
            seed: problem_seed(args.seed, i),
            ..Choices::default()
        };
        let prompt = few_shot(&shots, &problems[i].question);
        engine.submit(choices.request(k as u64 + 1, prompt, &defaults));
        answer(inbox, args.samples).with_context(|| format!("problem {}", i + 1))
    };
    let jobs = usize::from(args.jobs).min(asked.len()).max(1);
    let (done, answered) = mpsc::channel();
    std::thread::scope(|scope| -> Result<()> {
        // Job j takes the runs to ask j, j + jobs, …; the first one has the engine already loaded.
        let mut first = Some((engine, inbox));
        for j in 0..jobs {
            let (done, first) = (done.clone(), first.take());
            let (ask, source, asked) = (&ask, &args.engine, &asked);
            scope.spawn(move || {
                let (engine, inbox) = match first {
                    Some(loaded) => loaded,
                    None => match source.source().and_then(engine::start) {
                        Ok((engine, inbox, _)) => (engine, inbox),
                        // In the place of its first run (only a job after the first starts
                        // an engine, so there are runs enough to ask).
                        Err(e) => return drop(done.send((asked[j], Err(e)))),
                    },
                };
                for &k in asked.iter().skip(j).step_by(jobs) {
                    let result = ask(k, &engine, &inbox);
                    let failed = result.is_err();
                    if done.send((k, result)).is_err() || failed {
                        break;
                    }
                }
                engine.shutdown();
            });
        }
        drop(done);
        // Results come as the jobs finish them and are taken in order. On an error the receiver
        // goes with this closure, and the other jobs stop at their next result.
        let answered = answered;
        let mut waiting = std::collections::BTreeMap::new();
        let mut first_warning = None;
        for k in 0..runs.len() {
            let run = match recorded.remove(&runs[k]) {
                Some(run) => run,
                None => loop {
                    if let Some(run) = waiting.remove(&k) {
                        break run;
                    }
                    let (j, result) = answered.recv().context("the evaluation stopped")?;
                    waiting.insert(j, result);
                }?,
            };
            let (i, steps, calculator) = runs[k];
            let problem = &problems[i];
            if let Some(message) = run.warning {
                first_warning.get_or_insert(message);
            }
            let scored = score(&problem.r#final, &run.answers, &run.nelbo);
            let c = calcs.iter().position(|&c| c == calculator).unwrap_or(0);
            reports[c].add(steps, reasoning_steps(problem.answer.as_deref()), scored);
            reports[c].add_elbo(steps, &run.nelbo, run.tokens);
            if args.json {
                let per_token =
                    run.nelbo.iter().sum::<f64>() / (run.nelbo.len() * run.tokens) as f64;
                let finite = |v: f64| Some(v).filter(|v| v.is_finite());
                let line = Line::Problem(ProblemLine {
                    index: i,
                    thinking_steps: steps,
                    calculator,
                    seed: Some(problem_seed(args.seed, i)),
                    gold: problem.r#final.clone(),
                    answers: run.answers,
                    texts: run.texts,
                    nelbo: run.nelbo.iter().copied().map(finite).collect(),
                    pass_at_k: scored.pass_at_k,
                    majority: scored.majority,
                    elbo_best: scored.elbo_best,
                    prompt_tokens: run.tokens,
                    nelbo_per_token: finite(per_token),
                    check: run.check,
                });
                println!("{}", serde_json::to_string(&line)?);
            }
            bar.set_message(format!(
                "problem {} of {}, {steps} thinking steps, calculator {}",
                i + 1,
                problems.len(),
                on_off(calculator)
            ));
            bar.inc(1);
            let problem_done = runs.get(k + 1).is_none_or(|next| next.0 != i);
            if let Some(message) = first_warning.take_if(|_| problem_done) {
                if shortened_problems == 0 {
                    bar.suspend(|| {
                        eprintln!("warning: problem {}: {}", i + 1, printable(&message))
                    });
                }
                shortened_problems += 1;
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if shortened_problems > 0 {
        eprintln!(
            "note: the prompt was shortened to fit the model's context in {shortened_problems} of {} problems",
            problems.len()
        );
    }
    if args.json {
        for (report, calculator) in reports.iter().zip(&calcs) {
            println!(
                "{}",
                json!({"event": "report", "samples": args.samples, "shots": n_shots, "calculator": calculator,
                       "tallies": report.tallies, "elbo": report.elbo})
            );
        }
    } else {
        println!(
            "{} problems, {}-shot, {} thought samples each, model {}",
            problems.len(),
            n_shots,
            args.samples,
            printable(&info.name)
        );
        for (n, (report, &calculator)) in reports.iter().zip(&calcs).enumerate() {
            if n > 0 {
                println!();
            }
            println!("calculator {}:", on_off(calculator));
            print!("{}", report.table(args.samples));
        }
        println!(
            "thinking: fast-learning steps on the prompt; solution: the calculation steps of the problems' \
             worked answers (all: every problem)"
        );
        println!(
            "−ELBO/tok: the final −ELBO of the thought fitted to each problem's few-shot prompt, the mean over \
             its samples, per prompt token over all problems; ppl bound = exp(−ELBO/tok)"
        );
        let skipped: usize = reports[0].elbo.values().map(|e| e.skipped).sum();
        if skipped > 0 {
            println!("({skipped} runs left out of −ELBO/tok: a −ELBO was not finite)");
        }
    }
    if let Some(path) = &args.chart {
        write_chart(
            path,
            &chart(&reports, &calcs, args.samples, problems.len())?,
        )?;
        eprintln!("chart: {}", path.display());
    }
    Ok(())
}
