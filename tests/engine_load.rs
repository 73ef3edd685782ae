//! A load test of the engine: batches of requests from several threads, with cancels at random
//! moments. Every request ends exactly once, nothing deadlocks, and memory does not grow from
//! one batch to the next.

mod common;

use std::collections::HashMap;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use ltm::device::DeviceChoice;
use ltm::engine::{self, EngineHandle, Event, Request};
use ltm::runtime::ModelSource;
use ltm::tasks::Prompt;
use rand::{Rng, SeedableRng, rngs::StdRng};

const THREADS: u64 = 4;
const PER_THREAD: u64 = 300;

/// Submits a batch from `THREADS` threads (a cancel now and then), then waits for every
/// request's end. Returns (requests, cancelled ones).
fn batch(engine: &EngineHandle, events: &Receiver<Event>, batch: u64) -> (usize, usize) {
    std::thread::scope(|s| {
        for t in 0..THREADS {
            s.spawn(move || {
                let mut rng = StdRng::seed_from_u64(batch * 100 + t);
                for i in 0..PER_THREAD {
                    let id = (batch * THREADS + t) * PER_THREAD + i + 1;
                    let mut r = Request::new(id, Prompt::raw(format!("load test {id}: ")));
                    r.think.steps = rng.random_range(0..3);
                    r.sample.max_tokens = rng.random_range(1..4);
                    r.sample.seed = id;
                    engine.submit(r);
                    if rng.random_bool(0.004) {
                        engine.cancel();
                    }
                    if rng.random_bool(0.1) {
                        std::thread::sleep(Duration::from_micros(rng.random_range(0..500)));
                    }
                }
            });
        }
    });
    let expected = (THREADS * PER_THREAD) as usize;
    let mut ends: HashMap<u64, &'static str> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while ends.len() < expected {
        let left = deadline.saturating_duration_since(Instant::now());
        let event = events.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "batch {batch}: {} of {expected} ended: deadlock?",
                ends.len()
            )
        });
        let end = match event {
            Event::Finished { request } => Some((request, "finished")),
            Event::Cancelled { request } => Some((request, "cancelled")),
            Event::Error {
                request: Some(request),
                message,
            } => panic!("request {request} failed: {message}"),
            Event::Error {
                request: None,
                message,
            } => panic!("the engine stopped: {message}"),
            _ => None,
        };
        if let Some((id, how)) = end
            && let Some(before) = ends.insert(id, how)
        {
            panic!("request {id} ended twice: {before}, then {how}");
        }
    }
    // Nothing more arrives for this batch.
    if let Ok(event) = events.recv_timeout(Duration::from_millis(200)) {
        panic!("an event after every request ended: {event:?}");
    }
    let cancelled = ends.values().filter(|&&how| how == "cancelled").count();
    (expected, cancelled)
}

/// Resident memory in KiB (Linux).
fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4
}

#[test]
fn every_request_ends_exactly_once_under_load_with_cancels() {
    let dir = tempfile::tempdir().unwrap();
    let source = ModelSource {
        path: common::tiny_model(dir.path()),
        tokenizer: None,
        device: DeviceChoice::Cpu,
        decode_weights: Default::default(),
    };
    let (engine, events, _) = engine::start(source).unwrap();
    let mut rss = Vec::new();
    for b in 0..3 {
        let (requests, cancelled) = batch(&engine, &events, b);
        assert!(
            cancelled > 0 && cancelled < requests,
            "batch {b}: {cancelled} cancelled"
        );
        eprintln!(
            "batch {b}: {requests} requests, {cancelled} cancelled, rss {} KiB",
            rss_kib()
        );
        rss.push(rss_kib());
    }
    let growth = rss[2].saturating_sub(rss[1]);
    assert!(
        growth < 4 * 1024,
        "memory grew by {growth} KiB from the second batch to the third"
    );
    engine.shutdown();
}
