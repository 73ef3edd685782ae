//! The engine: one worker thread owns the model, the tokenizer and the device, takes requests in
//! order and answers with typed events (`protocol`). Front ends never touch tensors.

mod check;
mod choices;
pub mod protocol;
mod writer;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use candle_core::Tensor;

use crate::device::describe;
use crate::generate::{Codec, Ended, Flow, Hold, Sampling, Token, flaws, generate};
use crate::model::Ltm;
use crate::noise::{gaussian, rng};
use crate::runtime::{Intro, ModelSource};
use crate::tasks::verdict::verdict_prompt;
use crate::tasks::{default_examples, few_shot_prompt, last_text};
use crate::text::Tokenizer;
use crate::think::{Cancelled, FastLearning, Posterior, Sequences, Step, Thought, fast_learning};
use crate::threads;
pub use check::AGREEMENT;
pub use choices::{Choices, Defaults, ladder};
pub use protocol::{
    Check, Done, Draft, Event, Fit, ModelInfo, Request, SampleSettings, ThinkLevel, ThinkSettings,
    ThinkStep,
};
use writer::Writer;

pub struct EngineHandle {
    requests: mpsc::Sender<(u64, Request)>,
    /// Bumped by `cancel`; a request submitted under an older epoch is cancelled. (A flag would
    /// also cancel a request submitted just after the cancel, before the worker saw it.)
    epoch: Arc<AtomicU64>,
    worker: JoinHandle<()>,
}

impl EngineHandle {
    /// Queues a request; it is answered through the event callback.
    pub fn submit(&self, request: Request) {
        // A send fails only when the worker has stopped after a failed load, already reported.
        let _ = self
            .requests
            .send((self.epoch.load(Ordering::SeqCst), request));
    }

    /// Cancels the request in flight and any queued ones, at once.
    pub fn cancel(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// Cancels everything and waits for the worker to stop.
    pub fn shutdown(self) {
        self.cancel();
        drop(self.requests);
        let _ = self.worker.join();
    }
}

/// Starts the engine thread; it loads the model, then emits `Event::Ready` (or
/// `Event::Error { request: None, .. }` and stops).
pub fn spawn(
    source: ModelSource,
    on_event: impl Fn(Event) + Send + Sync + 'static,
) -> EngineHandle {
    let (requests, inbox) = mpsc::channel();
    let epoch = Arc::new(AtomicU64::new(0));
    let worker = {
        let epoch = epoch.clone();
        std::thread::spawn(move || work(&source, &epoch, inbox, &on_event))
    };
    EngineHandle {
        requests,
        epoch,
        worker,
    }
}

/// Starts the engine and returns once the model is loaded: the engine, its events from then
/// on, and the model's description. A model that fails to load is the error.
pub fn start(source: ModelSource) -> Result<(EngineHandle, mpsc::Receiver<Event>, ModelInfo)> {
    let (events, inbox) = mpsc::channel();
    let engine = spawn(source, move |event| {
        // The receiver goes away only when its front end is done.
        let _ = events.send(event);
    });
    match inbox.recv() {
        Ok(Event::Ready(info)) => Ok((engine, inbox, info)),
        Ok(Event::Error { message, .. }) => {
            engine.shutdown();
            Err(anyhow!(message))
        }
        Ok(_) => bail!("internal error: the engine answered before the model was loaded"),
        Err(_) => bail!("the engine stopped before it was ready"),
    }
}

fn work(
    source: &ModelSource,
    epoch: &AtomicU64,
    inbox: mpsc::Receiver<(u64, Request)>,
    emit: &(dyn Fn(Event) + Sync),
) {
    let mut worker = match guarded(|| Worker::load(source)) {
        Ok(worker) => worker,
        Err(message) => {
            return emit(Event::Error {
                request: None,
                message,
            });
        }
    };
    emit(Event::Ready(worker.info.clone()));
    for (submitted, request) in inbox {
        let id = request.id;
        let cancelled = || epoch.load(Ordering::SeqCst) != submitted;
        let outcome = if cancelled() {
            Ok(Ended::Cancelled)
        } else {
            guarded(|| threads::run(|| worker.serve(&request, &cancelled, emit)))
        };
        emit(match outcome {
            Ok(Ended::Finished) => Event::Finished { request: id },
            Ok(Ended::Cancelled) => Event::Cancelled { request: id },
            Err(message) => Event::Error {
                request: Some(id),
                message,
            },
        });
    }
}

/// Runs `f`, turning its error or panic into a one-line message: the thread outlives bad requests.
fn guarded<T>(f: impl FnOnce() -> Result<T>) -> std::result::Result<T, String> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result.map_err(|e| format!("{e:#}")),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned());
            Err(format!(
                "internal error: {}",
                what.unwrap_or_else(|| "panic".into())
            ))
        }
    }
}

struct Worker {
    model: Ltm,
    tokenizer: Tokenizer,
    info: ModelInfo,
    /// μ of the last thought, for warm starts.
    last_mu: Option<candle_core::Tensor>,
}

impl Worker {
    fn load(source: &ModelSource) -> Result<Self> {
        let (model, tokenizer) = source.load()?;
        let c = model.config();
        let info = ModelInfo {
            name: source.name(),
            device: describe(model.device()).to_string(),
            parameters: model.parameter_count(),
            n_layers: c.n_layers,
            z_per_layer: c.z_per_layer(),
            dim: c.dim,
            max_seq_len: c.max_seq_len,
            default_steps: c.num_steps,
            default_lr: c.fast_lr,
            levels: c.level_steps(),
            prompt_format: c.prompt_format.clone(),
            calculator: c.calculator,
            copy_numbers: c.copy_numbers,
            check: c.check,
            default_temperature: c.temperature,
            default_shots: c.shots,
            scope: c.scope.clone(),
            intro: Intro::read(&source.path),
            bytes_per_token: bytes_per_token(&tokenizer)?,
        };
        Ok(Self {
            model,
            tokenizer,
            info,
            last_mu: None,
        })
    }

    fn serve(
        &mut self,
        r: &Request,
        cancelled: &dyn Fn() -> bool,
        emit: &dyn Fn(Event),
    ) -> Result<Ended> {
        r.validate().map_err(|e| anyhow!(e))?;
        let ids = self.prompt_ids(r, emit)?;
        match self.think(&ids, r, cancelled, emit)? {
            Some(thinking) => self.write(ids, &thinking, r, cancelled, emit),
            None => Ok(Ended::Cancelled),
        }
    }

    fn prompt_ids(&self, r: &Request, emit: &dyn Fn(Event)) -> Result<Vec<u32>> {
        let (mut ids, text_cut) = match &r.prompt_ids {
            Some(ids) => (ids.clone(), false),
            // Only the prompt's end can be kept: a prompt of any size is cut before tokenising.
            None => self
                .tokenizer
                .encode_tail(&r.prompt, self.model.config().max_seq_len)?,
        };
        let c = self.model.config();
        if let Some(bad) = ids.iter().find(|&&id| id as usize >= c.vocab_size) {
            bail!(
                "prompt token id {bad} is outside the model's vocabulary (vocab_size {})",
                c.vocab_size
            );
        }
        let max = c.max_seq_len;
        let prefix = self.tokenizer.encode(&r.answer_prefix)?.len();
        if prefix > max / 4 {
            bail!(
                "the answer prefix has {prefix} tokens; the model's context of {max} leaves room for {} at most",
                max / 4
            );
        }
        // Room for the answer: worked examples are dropped whole, oldest first, rather than cut.
        let budget = self.info.prompt_budget(r.sample.max_tokens, prefix);
        if let Some(bos) = c.bos_token_id
            && let Some((dropped, of, start)) = examples_to_drop(&ids, bos, budget)
        {
            emit(Event::Warning {
                request: r.id,
                message: format!(
                    "dropped {dropped} of {of} worked examples so that the prompt fits the model's context of {max} tokens"
                ),
            });
            ids.drain(..start);
        }
        if ids.len() > max || text_cut {
            let message = if text_cut {
                format!(
                    "the prompt ({} KiB) is longer than the model's context of {max} tokens: keeping its last {max}",
                    r.prompt.len().div_ceil(1024)
                )
            } else {
                format!(
                    "the prompt has {} tokens, more than the model's context of {max}: keeping the last {max}",
                    ids.len()
                )
            };
            emit(Event::Warning {
                request: r.id,
                message,
            });
            ids.drain(..ids.len().saturating_sub(max));
        }
        Ok(ids)
    }

    /// Fits the posterior to the prompt, and for a check the drafts' thoughts; `None` when
    /// cancelled.
    fn think(
        &mut self,
        ids: &[u32],
        r: &Request,
        cancelled: &dyn Fn() -> bool,
        emit: &dyn Fn(Event),
    ) -> Result<Option<Thinking>> {
        let s = &r.think;
        if s.samples == 0 {
            bail!("at least one thought sample is needed");
        }
        let device = self.model.device().clone();
        let shape = self.model.thought_shape(s.samples);
        let mut rng = rng(r.sample.seed);
        // ε first, so that it depends on the seed alone: a saved thought reused with the same seed gives the same z.
        let eps = gaussian(shape, &mut rng, &device)?;
        // Several samples start apart so that they can find different thoughts.
        let mut init = Posterior::initial(
            shape,
            if s.samples == 1 { 0.0 } else { 0.01 },
            &mut rng,
            &device,
        )?;
        if let Some(path) = &s.thought {
            init = Posterior::load(path, &device)?;
            if init.mu.dims() != [shape.0, shape.1, shape.2] {
                bail!(
                    "{}: the thought has shape {:?}; this model with {} sample(s) needs {shape:?}",
                    path.display(),
                    init.mu.dims(),
                    s.samples
                );
            }
        } else if let Some(mu) = self
            .last_mu
            .as_ref()
            .filter(|mu| s.warm_start && mu.dims() == init.mu.dims())
        {
            init.mu = mu.clone();
        }
        let text = Sequences::new(ids, s.samples, &device)?;
        let settings = FastLearning {
            steps: s.steps,
            lr: s.lr,
            tolerance: s.tolerance,
            measure_final: true,
        };
        let start = Instant::now();
        let fitted = fast_learning(&self.model, &text, &init, &eps, &settings, |step| {
            for sample in 0..s.samples {
                emit(Event::Think {
                    request: r.id,
                    step: think_step(sample, step),
                });
            }
            !cancelled()
        });
        let thought = match fitted {
            Err(e) if e.is::<Cancelled>() => return Ok(None),
            fitted => fitted?,
        };
        // A check's other drafts, unseen: the same start fitted for fewer steps, then thoughts
        // drawn from the prior.
        let drafts = match s.check && s.samples == 1 {
            true => check::drafts(thought.steps),
            false => Vec::new(),
        };
        let mut z = vec![thought.z()?];
        let fitted = drafts.iter().filter(|d| !d.drawn);
        for draft in fitted.skip(1) {
            let settings = FastLearning {
                steps: draft.steps,
                tolerance: None,
                measure_final: false,
                ..settings
            };
            match fast_learning(&self.model, &text, &init, &eps, &settings, |_| !cancelled()) {
                Err(e) if e.is::<Cancelled>() => return Ok(None),
                draft => z.push(draft?.z()?),
            }
        }
        let drawn = drafts.iter().filter(|d| d.drawn).count();
        if drawn > 0 {
            z.push(gaussian(
                self.model.thought_shape(drawn),
                &mut rng,
                &device,
            )?);
        }
        let ms = start.elapsed().as_secs_f64() * 1e3;
        if let Some(path) = &s.save_thought {
            thought.posterior.save(path)?;
        }
        self.last_mu = Some(thought.posterior.mu.clone());
        Ok(Some(Thinking {
            thought,
            z: Tensor::cat(&z, 0)?,
            drafts,
            ms,
        }))
    }

    /// Writes a continuation per thought sample, streaming tokens, or a check's drafts,
    /// streaming the request's own; `Ended::Cancelled` when cancelled.
    fn write(
        &self,
        mut ids: Vec<u32>,
        thinking: &Thinking,
        r: &Request,
        cancelled: &dyn Fn() -> bool,
        emit: &dyn Fn(Event),
    ) -> Result<Ended> {
        let Thinking {
            thought,
            z,
            drafts,
            ms: think_ms,
        } = thinking;
        let checking = !drafts.is_empty();
        // The check reads the numbers of the question asked, not of worked examples before it.
        let question = last_text(&r.prompt);
        ids.extend(self.tokenizer.encode(&r.answer_prefix)?);
        let s = &r.sample;
        let c = self.model.config();
        let sampling = Sampling {
            settings: s.clone(),
            stop_tokens: [c.eos_token_id, c.bos_token_id]
                .into_iter()
                .flatten()
                .collect(),
            hold: Hold {
                question: question.to_string(),
                samples: drafts.iter().map(|d| d.held).collect(),
            },
        };
        let mut writers: Vec<_> = (0..z.dim(0)?)
            .map(|_| Writer::new(self.tokenizer.stream(), &s.stop))
            .collect();
        let mut failure = None;
        let mut first_finished = None;
        let start = Instant::now();
        let codec: &dyn Codec = &self.tokenizer;
        let (_, ended) = generate(&self.model, &ids, z, &sampling, Some(codec), |token| {
            let Token {
                sample,
                id,
                computed,
            } = token;
            if cancelled() {
                return Flow::Cancel;
            }
            let writer = &mut writers[sample];
            let last = writer.tokens + 1 == s.max_tokens || sampling.stop_tokens.contains(&id);
            match writer.push(id, last) {
                Ok((text, stopped)) => {
                    // A check's other drafts are not shown as they are written.
                    if !checking || sample == 0 {
                        emit(Event::Token {
                            request: r.id,
                            sample,
                            id,
                            text,
                            calc: computed,
                        });
                    }
                    writer.finished = stopped || sampling.stop_tokens.contains(&id);
                    if stopped || last {
                        writer.ms = Some(start.elapsed().as_secs_f64() * 1e3);
                        first_finished.get_or_insert(writer.tokens);
                    }
                    let rambles = checking
                        && sample > 0
                        && check::rambles(&writer.text, writer.tokens, first_finished);
                    if stopped || rambles {
                        Flow::StopSample
                    } else {
                        Flow::Continue
                    }
                }
                Err(e) => {
                    failure = Some(e);
                    Flow::Cancel
                }
            }
        })?;
        if let Some(e) = failure {
            return Err(e);
        }
        if ended == Ended::Cancelled {
            return Ok(Ended::Cancelled);
        }
        let total_ms = start.elapsed().as_secs_f64() * 1e3;
        let mut check = None;
        if checking {
            let mut drafts = drafts.clone();
            for (d, w) in drafts.iter_mut().zip(&writers) {
                d.answer = w.answer();
                d.flaw = flaws::flaw(question, &w.text);
                d.unused = flaws::unused(question, &w.text);
                d.text = w.text.clone();
            }
            let chosen = check::choose(drafts, |judged| {
                if cancelled() {
                    return Err(Cancelled.into());
                }
                let texts: Vec<&str> = judged.iter().map(|&i| writers[i].text.as_str()).collect();
                let (steps, lr, seed) = (thought.steps, r.think.lr, r.sample.seed);
                if !self.model.config().verdicts || r.prompt_ids.is_some() {
                    return check::judge(
                        &self.model,
                        &self.tokenizer,
                        &ids,
                        &texts,
                        steps,
                        lr,
                        seed,
                    );
                }
                let prompts: Vec<String> = texts
                    .iter()
                    .map(|draft| verdict_prompt(&r.prompt, &r.answer_prefix, draft))
                    .collect();
                check::verdicts(&self.model, &self.tokenizer, &prompts, steps, lr, seed)
            });
            let chosen = match chosen {
                Err(e) if e.is::<Cancelled>() => return Ok(Ended::Cancelled),
                chosen => chosen?,
            };
            // The kept draft stands as the request's one sample.
            writers.swap(0, chosen.kept);
            writers.truncate(1);
            check = Some(chosen);
        }
        for (sample, w) in writers.into_iter().enumerate() {
            let gen_ms = w.ms.unwrap_or(total_ms);
            let done = Done {
                sample,
                tokens: w.tokens,
                tok_s: if w.tokens == 0 {
                    0.0
                } else {
                    w.tokens as f64 / (gen_ms / 1e3)
                },
                answer: w.answer(),
                text: w.text,
                nelbo: thought.elbo.nelbo(sample),
                fit: Some(Fit {
                    nll_per_token: thought.elbo.nll_per_token(sample),
                    kl: thought.elbo.kl[sample],
                    start_nll_per_token: thought.start.nll_per_token(sample),
                    start_kl: thought.start.kl[sample],
                }),
                prompt_tokens: thought.elbo.tokens,
                think_steps: thought.steps,
                level: ThinkLevel::of(r.think.steps, r.think.tolerance, &self.info.levels),
                think_ms: *think_ms,
                gen_ms,
                check: check.take(),
            };
            emit(Event::Done {
                request: r.id,
                done,
            });
        }
        Ok(Ended::Finished)
    }
}

/// What thinking gives writing: the request's thought, the thoughts to write under (one per
/// sample, or one per check's draft, the request's own first), the check's drafts to write
/// (none without a check), and thinking's wall time.
struct Thinking {
    thought: Thought,
    z: Tensor,
    drafts: Vec<Draft>,
    ms: f64,
}

fn think_step(sample: usize, step: &Step) -> ThinkStep {
    let e = &step.elbo;
    ThinkStep {
        sample,
        step: step.step,
        steps: step.steps,
        lr: step.lr,
        nelbo: e.nelbo(sample),
        nll_per_token: e.nll_per_token(sample),
        kl: e.kl[sample],
        ppl_bound: e.ppl_bound(sample),
        layer_kl: e.layer_kl[sample].clone(),
        ms: step.ms,
    }
}

/// Bytes per token of `tokenizer` on the stock worked examples ([`ModelInfo::bytes_per_token`]).
fn bytes_per_token(tokenizer: &Tokenizer) -> Result<Option<f64>> {
    let text = few_shot_prompt(&default_examples(8), "");
    let tokens = tokenizer.encode(&text)?.len();
    Ok((tokens > 0).then(|| text.len() as f64 / tokens as f64))
}

/// When a prompt of several texts, each starting with `bos` (worked examples, then the question),
/// is longer than `budget`, how many leading texts to drop so that it fits (keeping at least the
/// last): (dropped, examples, index of the first token kept). `None` when nothing need be dropped.
fn examples_to_drop(ids: &[u32], bos: u32, budget: usize) -> Option<(usize, usize, usize)> {
    if ids.len() <= budget {
        return None;
    }
    let mut starts: Vec<usize> = (0..ids.len()).filter(|&i| ids[i] == bos).collect();
    if starts.first() != Some(&0) {
        starts.insert(0, 0);
    }
    let examples = starts.len() - 1;
    let kept = starts
        .iter()
        .position(|&s| ids.len() - s <= budget)
        .unwrap_or(examples);
    (kept > 0).then(|| (kept, examples, starts[kept]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::DeviceChoice;
    use crate::model::Checkpoint;

    fn request(id: u64, prompt: &str, steps: usize) -> Request {
        let mut r = Request::new(id, crate::tasks::Prompt::raw(prompt));
        r.answer_prefix = " =".into();
        (r.think.steps, r.think.lr, r.think.samples) = (steps, 0.3, 2);
        r.think.warm_start = true;
        (r.sample.max_tokens, r.sample.seed) = (3, 1);
        r
    }

    #[test]
    fn worked_examples_are_dropped_whole_and_only_when_needed() {
        // Three texts of 4 tokens each, BOS = 9.
        let ids = [9, 1, 1, 1, 9, 2, 2, 2, 9, 3, 3, 3];
        assert_eq!(examples_to_drop(&ids, 9, 12), None);
        assert_eq!(examples_to_drop(&ids, 9, 11), Some((1, 2, 4)));
        assert_eq!(examples_to_drop(&ids, 9, 8), Some((1, 2, 4)));
        assert_eq!(examples_to_drop(&ids, 9, 7), Some((2, 2, 8)));
        // The question is kept even when it alone is too long (it is then cut from the left).
        assert_eq!(examples_to_drop(&ids, 9, 2), Some((2, 2, 8)));
        // Text before the first BOS counts as an example; no BOS at all: nothing to drop.
        assert_eq!(examples_to_drop(&[5, 9, 3, 3], 9, 3), Some((1, 1, 1)));
        assert_eq!(examples_to_drop(&[5, 5, 5], 9, 2), None);
    }

    #[test]
    fn the_engine_survives_bad_requests_and_cancels_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = serde_json::from_str(
            r#"{"dim":16,"n_layers":1,"n_heads":2,"vocab_size":50258,"multiple_of":16,"max_seq_len":32,"max_z_len":2}"#,
        )
        .unwrap();
        Checkpoint::random(config, 0)
            .unwrap()
            .save_dir(dir.path())
            .unwrap();
        std::fs::write(
            dir.path().join("tokenizer.json"),
            crate::text::GPT2_TOKENIZER_JSON,
        )
        .unwrap();
        let (tx, events) = mpsc::channel();
        let source = ModelSource {
            path: dir.path().into(),
            tokenizer: None,
            device: DeviceChoice::Cpu,
            decode_weights: Default::default(),
        };
        let engine = spawn(source, move |e| tx.send(e).unwrap());
        let next = || {
            events
                .recv_timeout(std::time::Duration::from_secs(60))
                .unwrap()
        };
        assert!(matches!(
            next(),
            Event::Ready(ModelInfo {
                n_layers: 1,
                z_per_layer: 2,
                ..
            })
        ));

        engine.submit(request(1, "", 2));
        assert!(
            matches!(next(), Event::Error { request: Some(1), message } if message.contains("at least 2 tokens"))
        );

        engine.submit(request(2, "Hello world, again", 10_000));
        engine.submit(request(3, "queued", 2));
        assert!(matches!(next(), Event::Think { request: 2, .. }));
        engine.cancel();
        let mut event = next();
        while matches!(event, Event::Think { request: 2, .. }) {
            event = next();
        }
        assert_eq!(event, Event::Cancelled { request: 2 });
        assert_eq!(next(), Event::Cancelled { request: 3 });

        engine.submit(request(4, "Hello world", 2));
        let mut done = 0;
        loop {
            match next() {
                Event::Think { request: 4, .. } | Event::Token { request: 4, .. } => {}
                Event::Done {
                    request: 4,
                    done: Done { tokens: 3, .. },
                } => done += 1,
                Event::Finished { request: 4 } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(done, 2);

        // A checked answer: drafts of 2, 1 and 0 steps and the drawn, the request's own
        // streamed, one done.
        let mut checked = request(5, "Hello world", 2);
        (checked.think.samples, checked.think.check) = (1, true);
        engine.submit(checked);
        let mut check = None;
        loop {
            match next() {
                Event::Think { request: 5, .. } => {}
                Event::Token {
                    request: 5, sample, ..
                } => assert_eq!(sample, 0, "only the request's own draft is streamed"),
                Event::Done { request: 5, done } => {
                    assert!(check.is_none(), "one sample is done");
                    assert_eq!(done.sample, 0);
                    check = Some(done.check.expect("the done event says how it was checked"));
                }
                Event::Finished { request: 5 } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        let thoughts = |d: &[Draft]| d.iter().map(|d| (d.steps, d.drawn)).collect::<Vec<_>>();
        assert_eq!(
            thoughts(&check.unwrap().drafts),
            thoughts(&check::drafts(2))
        );
        engine.shutdown();
    }
}
