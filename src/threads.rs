//! The threads that compute on the CPU: one per core, fewer while other programs keep cores
//! busy.
//!
//! Each parallel section of a step (rayon's: every matmul and our kernels) splits its work among
//! the pool's threads and waits for the last share. A thread that shares its core with another
//! program finishes late, and the whole section waits for it, tens of times per token: with one
//! of two cores busy elsewhere, two threads wrote 10–30 % slower than one. So each piece of work
//! first looks at how much CPU other programs used since the last look (Linux's `/proc`), and
//! runs on a pool with one thread per core they left free.

use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Other programs using at least this much of a core take it from us.
const CORE_TAKEN: f64 = 0.3;
/// The shortest interval a load estimate is made over (the kernel counts in 10 ms ticks).
const MIN_INTERVAL: Duration = Duration::from_millis(100);

struct Threads {
    cores: usize,
    /// `pools[n - 1]` has n threads; built when first needed (`None`: the system would not
    /// start them, and work runs on the caller's thread).
    pools: Vec<OnceLock<Option<rayon::ThreadPool>>>,
    load: Mutex<Option<Load>>,
}

/// The last look at the machine, and how many cores others kept busy before it.
struct Load {
    at: Instant,
    sample: Option<CpuTimes>,
    others: f64,
}

fn threads() -> &'static Threads {
    static THREADS: OnceLock<Threads> = OnceLock::new();
    THREADS.get_or_init(|| {
        let cores = candle_core::utils::get_num_threads().max(1);
        Threads {
            cores,
            pools: (0..cores).map(|_| OnceLock::new()).collect(),
            load: Mutex::new(None),
        }
    })
}

/// Starts watching the machine's load, so that the first piece of work has an interval to
/// judge it by (`main` calls this at startup). Until there is one, every core is used.
pub fn watch() {
    threads().look();
}

/// Runs `work` on the compute threads, as one of them (so that the many short parallel
/// sections of a step start on a running thread rather than wake one and put the caller to
/// sleep: decoding ran 25 % faster), on as many threads as the cores others left free.
pub fn run<R: Send>(work: impl FnOnce() -> R + Send) -> R {
    let t = threads();
    let n = t.available();
    let pool = t.pools[n - 1].get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(move |i| format!("ltm-compute-{n}.{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(pool) => pool.install(work),
        None => work(),
    }
}

impl Threads {
    fn available(&self) -> usize {
        let others = self.look();
        let taken = if others < CORE_TAKEN {
            0
        } else {
            1 + (others - CORE_TAKEN) as usize
        };
        self.cores.saturating_sub(taken).max(1)
    }

    /// Cores other programs kept busy between the last two looks at least `MIN_INTERVAL` apart.
    fn look(&self) -> f64 {
        let mut load = self.load.lock().unwrap_or_else(|e| e.into_inner());
        let last = load.get_or_insert_with(|| Load {
            at: Instant::now(),
            sample: CpuTimes::read(),
            others: 0.0,
        });
        let elapsed = last.at.elapsed();
        if elapsed < MIN_INTERVAL {
            return last.others;
        }
        let now = CpuTimes::read();
        if let (Some(before), Some(after)) = (&last.sample, &now) {
            last.others = after.others_since(before, elapsed);
        }
        last.at = Instant::now();
        last.sample = now;
        last.others
    }
}

/// CPU time used so far, in the kernel's clock ticks: by the whole machine and by this process.
struct CpuTimes {
    machine_busy: u64,
    machine_cpus: usize,
    ours: u64,
}

impl CpuTimes {
    #[cfg(target_os = "linux")]
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = std::fs::read_to_string("/proc/self/stat").ok()?;
        Self::parse(&stat, &own)
    }

    #[cfg(not(target_os = "linux"))]
    fn read() -> Option<Self> {
        None
    }

    /// `/proc/stat`'s first line (user nice system idle iowait irq softirq steal …) and
    /// `/proc/self/stat` (utime and stime are its 14th and 15th fields).
    fn parse(stat: &str, own: &str) -> Option<Self> {
        let ticks: Vec<u64> = stat
            .lines()
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let [user, nice, system, _idle, _iowait, irq, softirq, ..] = ticks[..] else {
            return None;
        };
        let machine_cpus = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .count();
        // The command name may hold spaces and parentheses; the fields follow the last ')'.
        let fields: Vec<&str> = own.rsplit_once(')')?.1.split_whitespace().collect();
        let (utime, stime): (u64, u64) =
            (fields.get(11)?.parse().ok()?, fields.get(12)?.parse().ok()?);
        Some(Self {
            machine_busy: user + nice + system + irq + softirq,
            machine_cpus,
            ours: utime + stime,
        })
    }

    /// Cores' worth of CPU time others used between `before` and this, `elapsed` apart.
    fn others_since(&self, before: &Self, elapsed: Duration) -> f64 {
        const TICKS_PER_S: f64 = 100.0; // USER_HZ, 100 on every Linux architecture
        let busy = self.machine_busy.saturating_sub(before.machine_busy);
        let ours = self.ours.saturating_sub(before.ours);
        let others = busy.saturating_sub(ours) as f64 / TICKS_PER_S / elapsed.as_secs_f64();
        others.clamp(0.0, self.machine_cpus as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "cpu  1000 20 300 5000 10 0 5 7 0 0\ncpu0 500 10 150 2500 5 0 3 3 0 0\ncpu1 500 10 150 2500 5 0 2 4 0 0\nintr 1\n";

    fn own(utime: u64, stime: u64) -> String {
        format!(
            "4242 (ltm (a) b) S 1 4242 4242 0 -1 4194304 100 0 0 0 {utime} {stime} 0 0 20 0 3 0 1 2 3"
        )
    }

    #[test]
    fn reads_the_machines_and_its_own_cpu_time() {
        let t = CpuTimes::parse(STAT, &own(70, 30)).unwrap();
        assert_eq!((t.machine_busy, t.machine_cpus, t.ours), (1325, 2, 100));
        assert!(CpuTimes::parse("intr 1\n", &own(1, 1)).is_none());
        assert!(CpuTimes::parse(STAT, "4242 (ltm) S 1").is_none());
    }

    #[test]
    fn others_are_the_machines_busy_time_less_ours() {
        let before = CpuTimes::parse(STAT, &own(70, 30)).unwrap();
        // One second later: the machine was busy 150 ticks, 50 of them ours: one core elsewhere.
        let after = CpuTimes {
            machine_busy: before.machine_busy + 150,
            ours: before.ours + 50,
            ..before
        };
        let others = after.others_since(&before, Duration::from_secs(1));
        assert!((others - 1.0).abs() < 1e-9, "{others}");
        // Our own work is never counted as someone else's.
        let alone = CpuTimes {
            machine_busy: before.machine_busy + 200,
            ours: before.ours + 200,
            ..before
        };
        assert_eq!(alone.others_since(&before, Duration::from_secs(1)), 0.0);
    }

    #[test]
    fn a_core_counts_as_taken_from_thirty_percent() {
        let t = Threads {
            cores: 4,
            pools: Vec::new(),
            load: Mutex::new(None),
        };
        let threads_for = |others: f64| {
            *t.load.lock().unwrap() = Some(Load {
                at: Instant::now(),
                sample: None,
                others,
            });
            t.available()
        };
        assert_eq!(threads_for(0.0), 4);
        assert_eq!(threads_for(0.29), 4);
        assert_eq!(threads_for(0.3), 3);
        assert_eq!(threads_for(1.0), 3);
        assert_eq!(threads_for(1.5), 2);
        assert_eq!(threads_for(9.0), 1);
    }

    #[test]
    fn work_runs_on_a_compute_thread() {
        let (name, threads_used) = run(|| {
            let name = std::thread::current().name().map(String::from);
            (name, rayon::current_num_threads())
        });
        assert!(name.unwrap().starts_with("ltm-compute-"));
        assert!((1..=threads().cores).contains(&threads_used));
    }
}
