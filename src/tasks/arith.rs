//! Synthetic GSM8K-style grade-school word problems.
//!
//! Two kinds of families: templates written as code below (each picks a scenario and a random
//! chain of 1 to 4 operations; all are training families) and families written as data in
//! `families/*.toml` (one equation structure each, see [`super::families`]), of which those
//! marked `test` make the held-out split. Every calculation is written with GSM8K's calculator
//! annotation (`48/2 = <<48/2=24>>24`), one step per line, and the solution ends with `#### N`.
//!
//! Invariants checked in the tests: every result is a positive integer (at most 100,000),
//! divisions are exact, the number of annotations (`steps`) is between 1 and 4, and no held-out
//! structure occurs in training.
//!
//! (Over 800 lines: 35 templates written as code, a function each, until they become data.)

use rand::distr::{Distribution, weighted::WeightedIndex};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use super::compose;
use super::families::{Family, families};
use super::problem::{MAX_DRAWS, NAMES, Person, Problem, Split};

type Built = Option<(String, i64)>;
type TemplateFn = fn(&mut G) -> Built;

const TRAIN: &[(&str, TemplateFn)] = &[
    ("shop_total", shop_total),
    ("chain_collect", chain_collect),
    ("bus_stops", bus_stops),
    ("piggy_bank", piggy_bank),
    ("compare_people", compare_people),
    ("sold_months", sold_months),
    ("age_sum", age_sum),
    ("fruit_basket", fruit_basket),
    ("hourly_wage", hourly_wage),
    ("reading_pages", reading_pages),
    ("minutes_hours", minutes_hours),
    ("speed_distance", speed_distance),
    ("boxes_packing", boxes_packing),
    ("savings_goal", savings_goal),
    ("garden_rows", garden_rows),
    ("class_groups", class_groups),
    ("baking_batches", baking_batches),
    ("tickets", tickets),
    ("weekly_routine", weekly_routine),
    ("price_discount", price_discount),
    ("leftover_money", leftover_money),
    ("animal_legs", animal_legs),
    ("pizza_slices", pizza_slices),
    ("sticker_album", sticker_album),
    ("time_tasks", time_tasks),
    ("machine_rate", machine_rate),
    ("share_equally", share_equally),
    ("fundraiser_profit", fundraiser_profit),
    ("train_trip", train_trip),
    ("library_shelf", library_shelf),
    ("recipe_scale", recipe_scale),
    ("paint_rooms", paint_rooms),
    ("fence_perimeter", fence_perimeter),
    ("field_trip_vans", field_trip_vans),
    ("aquarium_fish", aquarium_fish),
];

/// The templates written as code: all for training, since their structures (random chains)
/// overlap; the held-out test split is made of data families whose structures nothing else has.
fn templates(split: Split) -> &'static [(&'static str, TemplateFn)] {
    match split {
        Split::Train => TRAIN,
        Split::Test => &[],
    }
}

/// Names of the families of a split: the templates written as code, then those written as data,
/// then (for training) the composer's.
pub fn template_names(split: Split) -> Vec<&'static str> {
    templates(split)
        .iter()
        .map(|(n, _)| *n)
        .chain(families(split).map(|f| f.name.as_str()))
        .chain((split == Split::Train).then_some(compose::TEMPLATE))
        .collect()
}

/// Generate `n` problems, deterministically from `(n, seed, split)`. Every family is drawn in
/// proportion to its weight (1 for a template written as code); training also draws composed
/// problems ([`compose`]) at the composer's weight.
pub fn problems(n: usize, seed: u64, split: Split) -> Vec<Problem> {
    problem_stream(seed, split).take(n).collect()
}

/// Where a problem comes from: a template written as code, a data family, or the composer.
#[derive(Clone, Copy)]
enum Source {
    Code(&'static str, TemplateFn),
    Family(&'static Family),
    Composed,
}

/// The endless sequence that `problems` takes its first `n` from, made one at a time.
pub fn problem_stream(seed: u64, split: Split) -> impl Iterator<Item = Problem> {
    let salt = match split {
        Split::Train => 0,
        Split::Test => 0x9E37_79B9_7F4A_7C15,
    };
    let mut rng = StdRng::seed_from_u64(seed ^ salt);
    let mut sources: Vec<(Source, u32)> = templates(split)
        .iter()
        .map(|&(name, f)| (Source::Code(name, f), 1))
        .chain(families(split).map(|f| (Source::Family(f), f.weight)))
        .collect();
    if split == Split::Train {
        sources.push((Source::Composed, compose::weight()));
    }
    let draw =
        WeightedIndex::new(sources.iter().map(|(_, w)| *w)).expect("every split has families");
    std::iter::repeat_with(move || {
        loop {
            let problem = match sources[draw.sample(&mut rng)].0 {
                Source::Code(name, f) => run_template(&mut rng, name, f),
                Source::Family(family) => family.sample(&mut rng),
                Source::Composed => Some(compose::sample(&mut rng)),
            };
            if let Some(p) = problem {
                break p;
            }
        }
    })
}

/// Try a template until its random draws satisfy all constraints.
fn run_template(rng: &mut StdRng, name: &str, f: TemplateFn) -> Option<Problem> {
    for _ in 0..MAX_DRAWS {
        let mut g = G {
            rng: &mut *rng,
            lines: Vec::new(),
            steps: 0,
        };
        if let Some((question, fin)) = f(&mut g)
            && (1..=4).contains(&g.steps)
            && fin > 0
        {
            let mut answer = g.lines.join("\n");
            answer.push_str(&format!("\n#### {fin}"));
            return Some(Problem {
                question,
                answer,
                r#final: fin.to_string(),
                steps: g.steps,
                template: name.to_string(),
            });
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Vocabulary
// ---------------------------------------------------------------------------

const SURNAMES: &[&str] = &[
    "Smith", "Garcia", "Chen", "Patel", "Johnson", "Nguyen", "Brown", "Kim", "Lopez", "Okafor",
];

/// A countable noun: (singular, plural).
#[derive(Clone, Copy)]
struct Noun(&'static str, &'static str);

impl Noun {
    fn n(self, k: i64) -> &'static str {
        if k == 1 { self.0 } else { self.1 }
    }
    fn pl(self) -> &'static str {
        self.1
    }
}

const COLLECTIBLES: &[Noun] = &[
    Noun("marble", "marbles"),
    Noun("sticker", "stickers"),
    Noun("seashell", "seashells"),
    Noun("stamp", "stamps"),
    Noun("trading card", "trading cards"),
    Noun("bead", "beads"),
    Noun("rock", "rocks"),
    Noun("feather", "feathers"),
    Noun("button", "buttons"),
    Noun("apple", "apples"),
    Noun("book", "books"),
    Noun("cookie", "cookies"),
    Noun("pencil", "pencils"),
    Noun("toy car", "toy cars"),
];

const SCHOOL: &[Noun] = &[
    Noun("pencil", "pencils"),
    Noun("crayon", "crayons"),
    Noun("marker", "markers"),
    Noun("eraser", "erasers"),
    Noun("notebook", "notebooks"),
    Noun("sticker", "stickers"),
];

const SELLABLE: &[Noun] = &[
    Noun("clip", "clips"),
    Noun("bracelet", "bracelets"),
    Noun("cookie", "cookies"),
    Noun("cupcake", "cupcakes"),
    Noun("candle", "candles"),
    Noun("keychain", "keychains"),
    Noun("bookmark", "bookmarks"),
    Noun("muffin", "muffins"),
];

const BAKED: &[Noun] = &[
    Noun("cookie", "cookies"),
    Noun("cupcake", "cupcakes"),
    Noun("muffin", "muffins"),
    Noun("brownie", "brownies"),
    Noun("pretzel", "pretzels"),
];

const FRUITS: &[&str] = &[
    "apples", "oranges", "pears", "bananas", "plums", "peaches", "lemons", "mangoes",
];

/// Shop goods with a price range in dollars.
const SHOP: &[(Noun, i64, i64)] = &[
    (Noun("notebook", "notebooks"), 2, 6),
    (Noun("pen", "pens"), 2, 4),
    (Noun("toy car", "toy cars"), 3, 12),
    (Noun("T-shirt", "T-shirts"), 8, 20),
    (Noun("book", "books"), 5, 15),
    (Noun("sandwich", "sandwiches"), 3, 8),
    (Noun("juice box", "juice boxes"), 2, 4),
    (Noun("puzzle", "puzzles"), 6, 15),
    (Noun("pair of socks", "pairs of socks"), 2, 6),
    (Noun("bag of chips", "bags of chips"), 2, 5),
];

const THINGS: &[&str] = &[
    "a book",
    "a toy",
    "lunch",
    "a new hat",
    "a movie ticket",
    "snacks",
    "a gift for a friend",
    "art supplies",
];

const WORDS: [&str; 4] = ["first", "second", "third", "fourth"];
const DAYS: [&str; 5] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"];
const MONTHS: [&str; 6] = ["March", "April", "May", "June", "July", "August"];

fn times_word(m: i64) -> &'static str {
    match m {
        2 => "twice",
        3 => "three times",
        4 => "four times",
        _ => "five times",
    }
}

// ---------------------------------------------------------------------------
// Generator state
// ---------------------------------------------------------------------------

struct G<'a> {
    rng: &'a mut StdRng,
    lines: Vec<String>,
    steps: usize,
}

impl G<'_> {
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        self.rng.random_range(lo..=hi)
    }
    fn coin(&mut self) -> bool {
        self.rng.random_bool(0.5)
    }
    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        *xs.choose(self.rng).expect("non-empty choice")
    }
    /// Pick `k` distinct elements.
    fn distinct<T: Copy>(&mut self, xs: &[T], k: usize) -> Vec<T> {
        xs.choose_multiple(self.rng, k).copied().collect()
    }
    fn person(&mut self) -> Person {
        let (name, female) = self.pick(NAMES);
        Person { name, female }
    }
    fn people(&mut self, k: usize) -> Vec<Person> {
        self.distinct(NAMES, k)
            .into_iter()
            .map(|(name, female)| Person { name, female })
            .collect()
    }
    fn say(&mut self, line: String) {
        self.lines.push(line);
    }
    /// One annotated calculation. Fails (so the template retries) unless both
    /// operands and the result are positive, the result is below 1000 and a
    /// division is exact.
    fn calc(&mut self, a: i64, op: char, b: i64) -> Option<(i64, String)> {
        if a <= 0 || b <= 0 {
            return None;
        }
        let v = match op {
            '+' => a + b,
            '-' => a - b,
            '*' => a * b,
            '/' => {
                if a % b != 0 {
                    return None;
                }
                a / b
            }
            _ => return None,
        };
        if !(1..1000).contains(&v) {
            return None;
        }
        self.steps += 1;
        Some((v, format!("{a}{op}{b} = <<{a}{op}{b}={v}>>{v}")))
    }
    /// A relation to a base quantity that is valid for that base.
    fn rel(&mut self, base: i64) -> Rel {
        let mut opts = vec![0, 1];
        if base % 2 == 0 && base >= 4 {
            opts.push(2);
        }
        if base >= 5 {
            opts.push(3);
        }
        match self.pick(&opts) {
            0 => Rel::Times(if base <= 20 && self.coin() { 3 } else { 2 }),
            1 => Rel::More(self.int(2, 15)),
            2 => Rel::Half,
            _ => {
                let hi = (base - 2).min(15);
                Rel::Fewer(self.int(2, hi))
            }
        }
    }
    fn apply(&mut self, base: i64, r: Rel) -> Option<(i64, String)> {
        match r {
            Rel::Times(m) => self.calc(base, '*', m),
            Rel::Half => self.calc(base, '/', 2),
            Rel::More(k) => self.calc(base, '+', k),
            Rel::Fewer(k) => self.calc(base, '-', k),
        }
    }
    /// A bill (10, 20, 50, 100 or 200 dollars) larger than `total`.
    fn bill(&mut self, total: i64) -> Option<i64> {
        [10, 20, 50, 100, 200].into_iter().find(|&b| b > total)
    }
}

#[derive(Clone, Copy)]
enum Rel {
    Times(i64),
    Half,
    More(i64),
    Fewer(i64),
}

fn rel_count(r: Rel, noun: &str, than: &str) -> String {
    match r {
        Rel::Times(m) => format!("{} as many {noun} as {than}", times_word(m)),
        Rel::Half => format!("half as many {noun} as {than}"),
        Rel::More(k) => format!("{k} more {noun} than {than}"),
        Rel::Fewer(k) => format!("{k} fewer {noun} than {than}"),
    }
}

fn rel_age(r: Rel, than: &str) -> String {
    match r {
        Rel::Times(m) => format!("{} as old as {than}", times_word(m)),
        Rel::Half => format!("half as old as {than}"),
        Rel::More(k) => format!("{k} years older than {than}"),
        Rel::Fewer(k) => format!("{k} years younger than {than}"),
    }
}

fn rel_time(r: Rel) -> String {
    match r {
        Rel::Times(m) => format!("{} as long", times_word(m)),
        Rel::Half => "half as long".to_string(),
        Rel::More(k) => format!("{k} minutes longer"),
        Rel::Fewer(k) => format!("{k} minutes less"),
    }
}

/// Operations used by the chain templates.
#[derive(Clone, Copy)]
enum Ev {
    Add(i64),
    Sub(i64),
    Mul(i64),
    Half,
}

fn next_event(g: &mut G, cur: i64, allow_mul: bool) -> Ev {
    let mut opts = vec![0];
    if cur >= 5 {
        opts.push(1);
        opts.push(1);
    }
    if allow_mul && cur <= 150 {
        opts.push(2);
    }
    if cur % 2 == 0 && cur >= 4 {
        opts.push(3);
    }
    match g.pick(&opts) {
        0 => Ev::Add(g.int(2, 30)),
        1 => Ev::Sub(g.int(2, (cur - 2).min(30))),
        2 => Ev::Mul(if cur <= 30 && g.coin() { 3 } else { 2 }),
        _ => Ev::Half,
    }
}

fn ev_calc(g: &mut G, cur: i64, e: Ev) -> Option<(i64, String)> {
    match e {
        Ev::Add(k) => g.calc(cur, '+', k),
        Ev::Sub(k) => g.calc(cur, '-', k),
        Ev::Mul(m) => g.calc(cur, '*', m),
        Ev::Half => g.calc(cur, '/', 2),
    }
}

fn then_word(i: usize, last: bool) -> &'static str {
    match (i, last) {
        (0, _) => "Then",
        (_, true) => "Finally,",
        (1, _) => "After that,",
        _ => "Later,",
    }
}

// ---------------------------------------------------------------------------
// Train templates
// ---------------------------------------------------------------------------

fn shop_total(g: &mut G) -> Built {
    let p = g.person();
    let items = g.distinct(SHOP, 2);
    let (it1, lo1, hi1) = items[0];
    let (it2, lo2, hi2) = items[1];
    let a = g.int(2, 9);
    let pa = g.int(lo1, hi1);
    let verb = g.pick(&["goes to the store and buys", "buys", "picks up"]);
    let mut q = format!("{p} {verb} {a} {} for ${pa} each", it1.pl());
    let (c1, e1) = g.calc(a, '*', pa)?;
    let total = if g.coin() {
        let b = g.int(2, 9);
        let pb = g.int(lo2, hi2);
        q += &format!(" and {b} {} for ${pb} each.", it2.pl());
        g.say(format!("{p} spends {e1} dollars on {}.", it1.pl()));
        let (c2, e2) = g.calc(b, '*', pb)?;
        g.say(format!("{p} spends {e2} dollars on {}.", it2.pl()));
        let (t, e3) = g.calc(c1, '+', c2)?;
        g.say(format!("In total, {p} spends {e3} dollars."));
        t
    } else {
        q.push('.');
        g.say(format!("{p} spends {e1} dollars in total."));
        c1
    };
    if g.coin() {
        let bill = g.bill(total)?;
        q += &format!(
            " {} pays with a ${bill} bill. How much change does {} get back?",
            p.she_c(),
            p.she()
        );
        let (c, e) = g.calc(bill, '-', total)?;
        g.say(format!("{p} gets {e} dollars in change."));
        Some((q, c))
    } else {
        let ask = g.pick(&[
            "How much money does {P} spend in total?",
            "How many dollars does {P} spend?",
            "How much does {P} pay altogether?",
        ]);
        q += " ";
        q += &ask.replace("{P}", p.name);
        Some((q, total))
    }
}

fn chain_collect(g: &mut G) -> Built {
    let ps = g.people(3);
    let (p, f1, f2) = (ps[0], ps[1], ps[2]);
    let item = g.pick(COLLECTIBLES);
    let k = g.int(1, 4) as usize;
    let mut cur = g.int(6, 60);
    let mut q = match g.int(0, 2) {
        0 => format!("{p} has {cur} {}.", item.pl()),
        1 => format!("{p} collected {cur} {} last month.", item.pl()),
        _ => format!("{p} starts the day with {cur} {}.", item.pl()),
    };
    for i in 0..k {
        let friend = if i % 2 == 0 { f1 } else { f2 };
        let ev = next_event(g, cur, true);
        let w = then_word(i, i + 1 == k && k > 1);
        let (v, e) = ev_calc(g, cur, ev)?;
        match ev {
            Ev::Add(a) => {
                q += &match g.int(0, 2) {
                    0 => format!(" {w} {} finds {a} more.", p.she()),
                    1 => format!(" {w} {friend} gives {} {a} {}.", p.her(), item.n(a)),
                    _ => format!(" {w} {} buys {a} more {}.", p.she(), item.n(a)),
                };
                g.say(format!("{p} then has {e} {}.", item.n(v)));
            }
            Ev::Sub(a) => {
                q += &match g.int(0, 1) {
                    0 => format!(" {w} {} gives {a} {} to {friend}.", p.she(), item.n(a)),
                    _ => format!(" {w} {} loses {a} of them.", p.she()),
                };
                g.say(format!("{p} has {e} {} left.", item.n(v)));
            }
            Ev::Mul(m) => {
                q += &if m == 2 && g.coin() {
                    format!(
                        " {w} {friend} gives {} as many {} as {} already has.",
                        p.her(),
                        item.pl(),
                        p.she()
                    )
                } else {
                    format!(
                        " {w} {} collection grows to {} its size.",
                        p.hers(),
                        times_word(m)
                    )
                };
                g.say(format!("Now {p} has {e} {}.", item.n(v)));
            }
            Ev::Half => {
                q += &format!(" {w} {} gives half of them to {friend}.", p.she());
                g.say(format!(
                    "{p} gives away {e} {}, so {} keeps {v}.",
                    item.n(v),
                    p.she()
                ));
            }
        }
        cur = v;
    }
    let ask = g.pick(&["now", "at the end", "left"]);
    q += &format!(" How many {} does {p} have {ask}?", item.pl());
    Some((q, cur))
}

fn bus_stops(g: &mut G) -> Built {
    let k = g.int(1, 4) as usize;
    let mut cur = g.int(8, 45);
    let vehicle = g.pick(&["bus", "train", "tram"]);
    let mut q = format!("A {vehicle} leaves the station with {cur} passengers.");
    for ord in WORDS.iter().take(k) {
        let ev = next_event(g, cur, false);
        let (v, e) = ev_calc(g, cur, ev)?;
        match ev {
            Ev::Add(a) => {
                q += &format!(" At the {ord} stop, {a} people get on.");
                g.say(format!(
                    "After the {ord} stop, there are {e} passengers on the {vehicle}."
                ));
            }
            Ev::Sub(a) => {
                q += &format!(" At the {ord} stop, {a} people get off.");
                g.say(format!(
                    "After the {ord} stop, there are {e} passengers on the {vehicle}."
                ));
            }
            Ev::Half | Ev::Mul(_) => {
                q += &format!(" At the {ord} stop, half of the passengers get off.");
                g.say(format!(
                    "Half of {cur} is {e}, so {v} passengers stay on the {vehicle}."
                ));
            }
        }
        cur = v;
    }
    q += &format!(" How many passengers are on the {vehicle} now?");
    Some((q, cur))
}

fn piggy_bank(g: &mut G) -> Built {
    let ps = g.people(2);
    let (p, rel) = (ps[0], ps[1]);
    let k = g.int(1, 4) as usize;
    let mut cur = g.int(10, 80);
    let mut q = format!("{p} has ${cur} in {} piggy bank.", p.hers());
    let chores = [
        "mowing the lawn",
        "washing the car",
        "walking a dog",
        "raking leaves",
    ];
    for i in 0..k {
        let ev = next_event(g, cur, true);
        let w = then_word(i, i + 1 == k && k > 1);
        let (v, e) = ev_calc(g, cur, ev)?;
        match ev {
            Ev::Add(a) => {
                q += &if g.coin() {
                    let c = g.pick(&chores);
                    format!(" {w} {} earns ${a} for {c}.", p.she())
                } else {
                    format!(" {w} {rel} gives {} ${a}.", p.her())
                };
                g.say(format!("{p} then has {e} dollars."));
            }
            Ev::Sub(a) => {
                let t = g.pick(THINGS);
                q += &format!(" {w} {} spends ${a} on {t}.", p.she());
                g.say(format!("{p} has {e} dollars left."));
            }
            Ev::Mul(m) => {
                q += &format!(
                    " {w} {} grandmother {} the money in the piggy bank.",
                    p.hers(),
                    if m == 2 { "doubles" } else { "triples" }
                );
                g.say(format!("{p} now has {e} dollars."));
            }
            Ev::Half => {
                let t = g.pick(THINGS);
                q += &format!(" {w} {} spends half of {} money on {t}.", p.she(), p.hers());
                g.say(format!("{p} spends {e} dollars, so {v} dollars are left."));
            }
        }
        cur = v;
    }
    q += &format!(" How much money does {p} have now?");
    Some((q, cur))
}

fn compare_people(g: &mut G) -> Built {
    let ps = g.people(3);
    let (a, b, c) = (ps[0], ps[1], ps[2]);
    let item = g.pick(COLLECTIBLES);
    let n = g.int(4, 40);
    let r1 = g.rel(n);
    let mut q = format!(
        "{a} has {n} {}. {b} has {}.",
        item.pl(),
        rel_count(r1, item.pl(), a.name)
    );
    let (bv, e) = g.apply(n, r1)?;
    g.say(format!("{b} has {e} {}.", item.n(bv)));
    let three = g.coin();
    let total = g.coin();
    if !three {
        if total {
            q += &format!(" How many {} do {a} and {b} have together?", item.pl());
            let (t, e) = g.calc(n, '+', bv)?;
            g.say(format!("Together they have {e} {}.", item.pl()));
            return Some((q, t));
        }
        q += &format!(" How many {} does {b} have?", item.pl());
        return Some((q, bv));
    }
    let r2 = g.rel(bv);
    q += &format!(" {c} has {}.", rel_count(r2, item.pl(), b.name));
    let (cv, e) = g.apply(bv, r2)?;
    g.say(format!("{c} has {e} {}.", item.n(cv)));
    if total {
        q += &format!(
            " How many {} do the three children have altogether?",
            item.pl()
        );
        let (s, e) = g.calc(n, '+', bv)?;
        g.say(format!("{a} and {b} have {e} {}.", item.pl()));
        let (t, e) = g.calc(s, '+', cv)?;
        g.say(format!("All three have {e} {} altogether.", item.pl()));
        Some((q, t))
    } else {
        q += &format!(" How many {} does {c} have?", item.pl());
        Some((q, cv))
    }
}

fn sold_months(g: &mut G) -> Built {
    let p = g.person();
    let item = g.pick(SELLABLE);
    let m0 = g.int(0, 3) as usize;
    let (m1, m2, m3) = (MONTHS[m0], MONTHS[m0 + 1], MONTHS[m0 + 2]);
    let n = g.int(6, 60);
    let r1 = g.rel(n);
    let mut q = format!(
        "{p} sold {n} {} in {m1}, and then in {m2} {} sold {}.",
        item.pl(),
        p.she(),
        rel_count(r1, item.pl(), &format!("in {m1}"))
    );
    let (v2, e) = g.apply(n, r1)?;
    g.say(format!("{p} sold {e} {} in {m2}.", item.n(v2)));
    match g.int(0, 3) {
        0 => {
            q += &format!(" How many {} did {p} sell in {m2}?", item.pl());
            Some((q, v2))
        }
        1 => {
            q += &format!(
                " How many {} did {p} sell altogether in {m1} and {m2}?",
                item.pl()
            );
            let (t, e) = g.calc(n, '+', v2)?;
            g.say(format!(
                "{p} sold {e} {} altogether in {m1} and {m2}.",
                item.pl()
            ));
            Some((q, t))
        }
        k => {
            let r2 = g.rel(v2);
            q += &format!(
                " In {m3}, {} sold {}.",
                p.she(),
                rel_count(r2, item.pl(), &format!("in {m2}"))
            );
            let (v3, e) = g.apply(v2, r2)?;
            g.say(format!("{p} sold {e} {} in {m3}.", item.n(v3)));
            if k == 2 {
                q += &format!(" How many {} did {p} sell in {m3}?", item.pl());
                return Some((q, v3));
            }
            q += &format!(" How many {} did {p} sell in the three months?", item.pl());
            let (s, e) = g.calc(n, '+', v2)?;
            g.say(format!("In {m1} and {m2}, {p} sold {e} {}.", item.pl()));
            let (t, e) = g.calc(s, '+', v3)?;
            g.say(format!("In all three months, {p} sold {e} {}.", item.pl()));
            Some((q, t))
        }
    }
}

fn age_sum(g: &mut G) -> Built {
    let ps = g.people(3);
    let (a, b, c) = (ps[0], ps[1], ps[2]);
    let n = g.int(4, 20);
    let r1 = g.rel(n);
    let mut q = format!("{a} is {n} years old. {b} is {}.", rel_age(r1, a.name));
    let (bv, e) = g.apply(n, r1)?;
    g.say(format!("{b} is {e} years old."));
    match g.int(0, 3) {
        0 => {
            q += &format!(" How old is {b}?");
            Some((q, bv))
        }
        1 => {
            let k = g.int(2, 15);
            q += &format!(" How old will {b} be in {k} years?");
            let (v, e) = g.calc(bv, '+', k)?;
            g.say(format!("In {k} years, {b} will be {e} years old."));
            Some((q, v))
        }
        k => {
            let r2 = g.rel(bv);
            q += &format!(" {c} is {}.", rel_age(r2, b.name));
            let (cv, e) = g.apply(bv, r2)?;
            g.say(format!("{c} is {e} years old."));
            if k == 2 {
                q += &format!(" How old is {c}?");
                return Some((q, cv));
            }
            q += " What is the sum of their ages?";
            let (s, e) = g.calc(n, '+', bv)?;
            g.say(format!("{a} and {b} are {e} years old together."));
            let (t, e) = g.calc(s, '+', cv)?;
            g.say(format!("The sum of their ages is {e} years."));
            Some((q, t))
        }
    }
}

fn fruit_basket(g: &mut G) -> Built {
    let fr = g.distinct(FRUITS, 3);
    let (f1, f2, f3) = (fr[0], fr[1], fr[2]);
    let a = g.int(4, 30);
    let holder = g.pick(&["basket", "box", "bowl", "crate"]);
    let r = g.rel(a);
    match g.int(0, 2) {
        0 => {
            let q = format!(
                "A {holder} has {a} {f1}. There are {} in the {holder}. How many {f2} are there?",
                rel_count(r, f2, f1)
            );
            let (v, e) = g.apply(a, r)?;
            g.say(format!("There are {e} {f2}."));
            Some((q, v))
        }
        1 => {
            let q = format!(
                "A {holder} has {a} {f1}. There are {} in the {holder}. How many pieces of fruit are in the {holder}?",
                rel_count(r, f2, f1)
            );
            let (v, e) = g.apply(a, r)?;
            g.say(format!("There are {e} {f2}."));
            let (t, e) = g.calc(a, '+', v)?;
            g.say(format!("There are {e} pieces of fruit in the {holder}."));
            Some((q, t))
        }
        _ => {
            let b = g.int(3, 30);
            let q = format!(
                "A {holder} contains {a} {f1} and {b} {f2}. There are also {} in the {holder}. How many pieces of fruit are in the {holder}?",
                rel_count(r, f3, f1)
            );
            let (v, e) = g.apply(a, r)?;
            g.say(format!("There are {e} {f3}."));
            let (s, e) = g.calc(a, '+', b)?;
            g.say(format!("There are {e} {f1} and {f2}."));
            let (t, e) = g.calc(s, '+', v)?;
            g.say(format!("There are {e} pieces of fruit in the {holder}."));
            Some((q, t))
        }
    }
}

fn hourly_wage(g: &mut G) -> Built {
    let p = g.person();
    let job = g.pick(&[
        "babysitting",
        "walking dogs",
        "tutoring",
        "working at the bakery",
        "washing cars",
    ]);
    let r = g.int(5, 15);
    let h = g.int(2, 8);
    let mut q = format!("{p} earns ${r} an hour {job}.");
    let variant = g.int(0, 3);
    if variant == 0 {
        q += &format!(
            " {} works for {h} hours. How much money does {} earn?",
            p.she_c(),
            p.she()
        );
        let (v, e) = g.calc(r, '*', h)?;
        g.say(format!("{p} earns {e} dollars."));
        return Some((q, v));
    }
    let d = g.int(2, 6);
    q += &format!(" {} works {h} hours a day for {d} days.", p.she_c());
    let (day, e) = g.calc(r, '*', h)?;
    g.say(format!("{p} earns {e} dollars each day."));
    let (tot, e) = g.calc(day, '*', d)?;
    g.say(format!("In {d} days, {p} earns {e} dollars."));
    if variant == 1 {
        q += &format!(" How much money does {} earn in total?", p.she());
        return Some((q, tot));
    }
    let s = g.int(5, 60);
    let t = g.pick(THINGS);
    q += &format!(" {} spends ${s} on {t}.", p.she_c());
    let (left, e) = g.calc(tot, '-', s)?;
    g.say(format!("{p} has {e} dollars left."));
    if variant == 2 {
        q += &format!(" How much money does {} have left?", p.she());
        return Some((q, left));
    }
    q += &format!(
        " {} puts half of the rest into savings. How much money does {} save?",
        p.she_c(),
        p.she()
    );
    let (v, e) = g.calc(left, '/', 2)?;
    g.say(format!("{p} saves {e} dollars."));
    Some((q, v))
}

fn reading_pages(g: &mut G) -> Built {
    let p = g.person();
    match g.int(0, 3) {
        0 => {
            let r = g.int(5, 30);
            let d = g.int(2, 15);
            let total = r * d;
            let q = format!(
                "A book has {total} pages. {p} reads {r} pages every day. How many days will it take {} to finish the book?",
                p.her()
            );
            let (v, e) = g.calc(total, '/', r)?;
            g.say(format!("It will take {p} {e} days to finish the book."));
            Some((q, v))
        }
        1 => {
            let r = g.int(5, 30);
            let d = g.int(2, 9);
            let total = g.int(r * d + 5, 400);
            let q = format!(
                "{p} is reading a {total}-page book. {} reads {r} pages a day for {d} days. How many pages does {} still have to read?",
                p.she_c(),
                p.she()
            );
            let (read, e) = g.calc(r, '*', d)?;
            g.say(format!("{p} reads {e} pages in {d} days."));
            let (v, e) = g.calc(total, '-', read)?;
            g.say(format!("{p} still has {e} pages to read."));
            Some((q, v))
        }
        k => {
            let a = g.int(5, 40);
            let rel = g.rel(a);
            let total = g.int(100, 500);
            let mut q = format!(
                "{p} has a book with {total} pages. On Monday, {} read {a} pages, and on Tuesday {} read {}.",
                p.she(),
                p.she(),
                rel_count(rel, "pages", "on Monday")
            );
            let (t, e) = g.apply(a, rel)?;
            g.say(format!("On Tuesday, {p} read {e} pages."));
            let (s, e) = g.calc(a, '+', t)?;
            g.say(format!("In two days, {p} read {e} pages."));
            let (left, e) = g.calc(total, '-', s)?;
            g.say(format!("There are {e} pages left."));
            if k == 2 {
                q += " How many pages are left to read?";
                return Some((q, left));
            }
            q += &format!(
                " If {} wants to read half of the remaining pages on Wednesday, how many pages should {} read?",
                p.she(),
                p.she()
            );
            let (v, e) = g.calc(left, '/', 2)?;
            g.say(format!("{p} should read {e} pages on Wednesday."));
            Some((q, v))
        }
    }
}

fn minutes_hours(g: &mut G) -> Built {
    let p = g.person();
    let act = g.pick(&[
        "practicing the piano",
        "reading",
        "jogging",
        "drawing",
        "playing chess",
        "doing homework",
    ]);
    match g.int(0, 3) {
        0 => {
            let h = g.int(2, 9);
            let q = format!(
                "{p} spent {h} hours {act} last week. How many minutes did {} spend {act}?",
                p.she()
            );
            let (v, e) = g.calc(h, '*', 60)?;
            g.say(format!("{p} spent {e} minutes {act}."));
            Some((q, v))
        }
        1 => {
            let m = g.pick(&[10, 15, 20, 30, 40, 45]);
            let ds: Vec<i64> = (2..=14).filter(|d| (m * d) % 60 == 0).collect();
            let d = g.pick(&ds);
            let q = format!(
                "{p} spends {m} minutes {act} every day. How many hours does {} spend {act} in {d} days?",
                p.she()
            );
            let (t, e) = g.calc(m, '*', d)?;
            g.say(format!("{p} spends {e} minutes {act}."));
            let (v, e) = g.calc(t, '/', 60)?;
            g.say(format!("That is {e} hours."));
            Some((q, v))
        }
        2 => {
            let m = g.pick(&[12, 20, 24, 30, 36, 40, 45, 60]);
            let n = g.pick(&[10, 15, 20, 30, 40, 45, 60, 90]);
            let q = format!(
                "{p} spends {m} minutes {act} on each weekday and {n} minutes on Saturday. How many hours does {} spend {act} in a week?",
                p.she()
            );
            let (w, e) = g.calc(m, '*', 5)?;
            g.say(format!("On weekdays, {p} spends {e} minutes {act}."));
            let (t, e) = g.calc(w, '+', n)?;
            g.say(format!("In a week, {p} spends {e} minutes {act}."));
            let (v, e) = g.calc(t, '/', 60)?;
            g.say(format!("That is {e} hours."));
            Some((q, v))
        }
        _ => {
            let m = g.pick(&[12, 20, 24, 30, 36, 40, 45, 60]);
            let n = g.pick(&[10, 15, 20, 30, 40, 45, 60, 90]);
            let q = format!(
                "{p} spends {m} minutes {act} each weekday and {n} minutes each day of the weekend. How many hours does {} spend {act} in a week?",
                p.she()
            );
            let (w, e) = g.calc(m, '*', 5)?;
            g.say(format!("On the five weekdays, {p} spends {e} minutes."));
            let (we, e) = g.calc(n, '*', 2)?;
            g.say(format!("On the weekend, {p} spends {e} minutes."));
            let (t, e) = g.calc(w, '+', we)?;
            g.say(format!("In a week, {p} spends {e} minutes {act}."));
            let (v, e) = g.calc(t, '/', 60)?;
            g.say(format!("That is {e} hours."));
            Some((q, v))
        }
    }
}

fn speed_distance(g: &mut G) -> Built {
    let p = g.person();
    let s = g.int(2, 12) * 5;
    let h = g.int(2, 5);
    match g.int(0, 4) {
        0 => {
            let v = g.pick(&["car", "truck", "bus", "motorcycle"]);
            let q = format!(
                "A {v} travels at {s} miles per hour. How many miles does it travel in {h} hours?"
            );
            let (d, e) = g.calc(s, '*', h)?;
            g.say(format!("The {v} travels {e} miles."));
            Some((q, d))
        }
        1 => {
            let s = g.int(4, 15);
            let d = s * h;
            let q = format!(
                "{p} rides {} bike {d} miles at a speed of {s} miles per hour. How many hours does the ride take?",
                p.hers()
            );
            let (v, e) = g.calc(d, '/', s)?;
            g.say(format!("The ride takes {e} hours."));
            Some((q, v))
        }
        2 => {
            let dist = g.int(s * h + 10, 900);
            let q = format!(
                "{p} is driving to a city that is {dist} miles away. {} drives at {s} miles per hour for {h} hours. How many more miles does {} need to drive?",
                p.she_c(),
                p.she()
            );
            let (d, e) = g.calc(s, '*', h)?;
            g.say(format!("{p} drives {e} miles."));
            let (v, e) = g.calc(dist, '-', d)?;
            g.say(format!("{p} still needs to drive {e} miles."));
            Some((q, v))
        }
        k => {
            let s2 = g.int(2, 12) * 5;
            let h2 = g.int(2, 4);
            let mut q = format!(
                "{p} drives for {h} hours at {s} miles per hour and then for {h2} hours at {s2} miles per hour."
            );
            let (d1, e) = g.calc(s, '*', h)?;
            g.say(format!("First, {p} drives {e} miles."));
            let (d2, e) = g.calc(s2, '*', h2)?;
            g.say(format!("Then {p} drives {e} miles."));
            let (t, e) = g.calc(d1, '+', d2)?;
            g.say(format!("In total, {p} drives {e} miles."));
            if k == 3 {
                q += &format!(" How many miles does {} drive in total?", p.she());
                return Some((q, t));
            }
            let dist = g.int(t + 5, t + 200);
            q += &format!(
                " If {} trip is {dist} miles long, how many miles are left?",
                p.hers()
            );
            let (v, e) = g.calc(dist, '-', t)?;
            g.say(format!("{p} has {e} miles left."));
            Some((q, v))
        }
    }
}

fn boxes_packing(g: &mut G) -> Built {
    let p = g.person();
    let item = g.pick(SCHOOL);
    let b = g.int(2, 9);
    let k = g.int(4, 24);
    let variant = g.int(0, 3);
    let had = if variant == 3 { g.int(3, 20) } else { 0 };
    let mut q = if had > 0 {
        format!(
            "{p} has {had} {}. {} buys {b} boxes of {} with {k} {} in each box.",
            item.pl(),
            p.she_c(),
            item.pl(),
            item.pl()
        )
    } else {
        format!(
            "{p} buys {b} boxes of {}. Each box has {k} {}.",
            item.pl(),
            item.pl()
        )
    };
    let (mut cur, e) = g.calc(b, '*', k)?;
    g.say(format!("{p} buys {e} {}.", item.pl()));
    if had > 0 {
        let (v, e) = g.calc(cur, '+', had)?;
        g.say(format!("{p} now has {e} {}.", item.pl()));
        cur = v;
    }
    if variant == 0 {
        q += &format!(" How many {} does {p} buy?", item.pl());
        return Some((q, cur));
    }
    let give = g.int(2, 30);
    q += &format!(
        " {} gives {give} {} to {} classmates.",
        p.she_c(),
        item.n(give),
        p.hers()
    );
    let (left, e) = g.calc(cur, '-', give)?;
    g.say(format!("{p} has {e} {} left.", item.n(left)));
    if variant == 1 {
        q += &format!(" How many {} does {p} have left?", item.pl());
        return Some((q, left));
    }
    let m = g.int(2, 8);
    q += &format!(
        " {} puts the rest into {m} cups with the same number in each cup. How many {} are in each cup?",
        p.she_c(),
        item.pl()
    );
    let (v, e) = g.calc(left, '/', m)?;
    g.say(format!("Each cup has {e} {}.", item.n(v)));
    Some((q, v))
}

fn savings_goal(g: &mut G) -> Built {
    let ps = g.people(2);
    let (p, rel) = (ps[0], ps[1]);
    let thing = g.pick(&[
        "bike",
        "video game",
        "skateboard",
        "guitar",
        "tablet",
        "tent",
    ]);
    let w = g.int(3, 20);
    let weeks = g.int(2, 12);
    let saved = g.int(5, 100);
    let variant = g.int(0, 3);
    let gift = if variant >= 2 { g.int(5, 50) } else { 0 };
    let cost = saved + gift + w * weeks;
    let mut q = format!(
        "{p} wants to buy a {thing} that costs ${cost}. {} has already saved ${saved}.",
        p.she_c()
    );
    if gift > 0 {
        q += &format!(" {rel} gives {} ${gift} to help.", p.her());
    }
    let (need, e) = g.calc(cost, '-', saved)?;
    g.say(format!("{p} still needs {e} dollars."));
    let mut need = need;
    if gift > 0 {
        let (v, e) = g.calc(need, '-', gift)?;
        g.say(format!("After the gift, {p} needs {e} dollars."));
        need = v;
    }
    if variant == 0 {
        q += &format!(" How much more money does {} need?", p.she());
        return Some((q, need));
    }
    let weekly = if variant == 3 {
        let chores = g.int(2, 5);
        if w % chores != 0 {
            return None;
        }
        let per = w / chores;
        q += &format!(
            " {} earns ${per} for each chore and does {chores} chores every week.",
            p.she_c()
        );
        let (v, e) = g.calc(per, '*', chores)?;
        g.say(format!("{p} earns {e} dollars a week."));
        v
    } else {
        q += &format!(" {} saves ${w} every week.", p.she_c());
        w
    };
    q += &format!(
        " How many weeks will it take {} to have enough money?",
        p.her()
    );
    let (v, e) = g.calc(need, '/', weekly)?;
    g.say(format!("It will take {p} {e} weeks."));
    Some((q, v))
}

fn garden_rows(g: &mut G) -> Built {
    let p = g.person();
    let (plant, fruit) = g.pick(&[
        ("tomato plants", "tomatoes"),
        ("pepper plants", "peppers"),
        ("strawberry plants", "strawberries"),
        ("rose bushes", "roses"),
        ("bean plants", "beans"),
        ("sunflowers", "seeds"),
    ]);
    let r = g.int(2, 10);
    let k = g.int(3, 12);
    let mut q = format!("{p} plants {r} rows of {plant} with {k} in each row.");
    let (t, e) = g.calc(r, '*', k)?;
    g.say(format!("{p} plants {e} {plant}."));
    let variant = g.int(0, 3);
    if variant == 0 {
        q += &format!(" How many {plant} does {p} plant?");
        return Some((q, t));
    }
    let dead = g.int(2, 10);
    q += &format!(" {dead} of them do not survive.");
    let (alive, e) = g.calc(t, '-', dead)?;
    g.say(format!("{e} {plant} survive."));
    if variant == 1 {
        q += &format!(" How many {plant} are left?");
        return Some((q, alive));
    }
    let f = g.int(2, 9);
    q += &format!(" Each remaining plant gives {f} {fruit}.");
    let (tot, e) = g.calc(alive, '*', f)?;
    g.say(format!("{p} picks {e} {fruit}."));
    if variant == 2 {
        q += &format!(" How many {fruit} does {p} pick?");
        return Some((q, tot));
    }
    let n = g.int(2, 6);
    q += &format!(
        " {} shares the {fruit} equally among {n} neighbors. How many {fruit} does each neighbor get?",
        p.she_c()
    );
    let (v, e) = g.calc(tot, '/', n)?;
    g.say(format!("Each neighbor gets {e} {fruit}."));
    Some((q, v))
}

fn class_groups(g: &mut G) -> Built {
    let teacher = g.pick(&[
        "Mr. Lee",
        "Ms. Diaz",
        "Mrs. Walker",
        "Mr. Osei",
        "Ms. Rossi",
    ]);
    let k = g.int(2, 6);
    let groups = g.int(3, 10);
    let variant = g.int(0, 3);
    let absent = if variant >= 2 { g.int(1, 5) } else { 0 };
    let n = k * groups + absent;
    let mut q = format!("There are {n} students in {teacher}'s class.");
    let mut present = n;
    if absent > 0 {
        q += &format!(
            " {absent} {} absent today.",
            if absent == 1 {
                "student is"
            } else {
                "students are"
            }
        );
        let (v, e) = g.calc(n, '-', absent)?;
        g.say(format!("{e} students are in class today."));
        present = v;
    }
    q += &format!(
        " {teacher} puts the {}students into groups of {k}.",
        if absent > 0 { "other " } else { "" }
    );
    let (gr, e) = g.calc(present, '/', k)?;
    g.say(format!("There are {e} groups."));
    if variant == 0 || (variant == 2 && g.coin()) {
        q += " How many groups are there?";
        return Some((q, gr));
    }
    let item = g.pick(SCHOOL);
    let m = g.int(2, 12);
    q += &format!(
        " Each group gets {m} {}. How many {} does {teacher} hand out?",
        item.pl(),
        item.pl()
    );
    let (v, e) = g.calc(gr, '*', m)?;
    g.say(format!("{teacher} hands out {e} {}.", item.pl()));
    Some((q, v))
}

fn baking_batches(g: &mut G) -> Built {
    let p = g.person();
    let food = g.pick(BAKED);
    let b = g.int(2, 6);
    let k = g.int(6, 24);
    let mut q = format!(
        "{p} bakes {b} batches of {} with {k} {} in each batch.",
        food.pl(),
        food.pl()
    );
    let (t, e) = g.calc(b, '*', k)?;
    g.say(format!("{p} bakes {e} {}.", food.pl()));
    let variant = g.int(0, 3);
    if variant == 0 {
        q += &format!(" How many {} does {p} bake?", food.pl());
        return Some((q, t));
    }
    let eat = g.int(2, 12);
    q += &format!(" {} family eats {eat} of them.", p.hers_c());
    let (left, e) = g.calc(t, '-', eat)?;
    g.say(format!("There are {e} {} left.", food.n(left)));
    if variant == 1 {
        q += &format!(" How many {} are left?", food.pl());
        return Some((q, left));
    }
    let m = g.int(2, 8);
    q += &format!(" {} packs the rest into bags of {m}.", p.she_c());
    let (bags, e) = g.calc(left, '/', m)?;
    g.say(format!("{p} fills {e} bags."));
    if variant == 2 {
        q += &format!(" How many bags does {} fill?", p.she());
        return Some((q, bags));
    }
    let price = g.int(2, 9);
    q += &format!(
        " {} sells each bag for ${price}. How much money does {} make?",
        p.she_c(),
        p.she()
    );
    let (v, e) = g.calc(bags, '*', price)?;
    g.say(format!("{p} makes {e} dollars."));
    Some((q, v))
}

fn tickets(g: &mut G) -> Built {
    let place = g.pick(&[
        "zoo",
        "museum",
        "aquarium",
        "movie theater",
        "water park",
        "circus",
    ]);
    let fam = g.pick(SURNAMES);
    let a = g.int(8, 25);
    let c = g.int(3, a - 2);
    match g.int(0, 3) {
        0 => {
            let n = g.int(2, 12);
            let q = format!("Tickets to the {place} cost ${c} each. How much do {n} tickets cost?");
            let (v, e) = g.calc(n, '*', c)?;
            g.say(format!("{n} tickets cost {e} dollars."));
            Some((q, v))
        }
        1 => {
            let n = g.int(3, 20);
            let s = g.int(2, 6);
            let q = format!(
                "A teacher takes {n} children to the {place}. Each ticket costs ${c} and each child also gets a snack for ${s}. How much does the teacher pay in total?"
            );
            let (per, e) = g.calc(c, '+', s)?;
            g.say(format!("Each child costs {e} dollars."));
            let (v, e) = g.calc(per, '*', n)?;
            g.say(format!("The teacher pays {e} dollars in total."));
            Some((q, v))
        }
        k => {
            let x = g.int(2, 4);
            let y = g.int(2, 6);
            let mut q = format!(
                "Tickets to the {place} cost ${a} for adults and ${c} for children. The {fam} family buys {x} adult tickets and {y} child tickets."
            );
            let (ca, e) = g.calc(x, '*', a)?;
            g.say(format!("The adult tickets cost {e} dollars."));
            let (cc, e) = g.calc(y, '*', c)?;
            g.say(format!("The child tickets cost {e} dollars."));
            let (t, e) = g.calc(ca, '+', cc)?;
            g.say(format!("The {fam} family pays {e} dollars."));
            if k == 2 {
                q += " How much do they pay in total?";
                return Some((q, t));
            }
            let bill = g.bill(t)?;
            q += &format!(" They pay with a ${bill} bill. How much change do they get?");
            let (v, e) = g.calc(bill, '-', t)?;
            g.say(format!("They get {e} dollars in change."));
            Some((q, v))
        }
    }
}

fn weekly_routine(g: &mut G) -> Built {
    let p = g.person();
    let (act, unit, verb, verbs) = g.pick(&[
        ("swims {} laps", "laps", "swim", "swims"),
        ("reads {} pages", "pages", "read", "reads"),
        ("jogs for {} minutes", "minutes", "jog", "jogs"),
        ("does {} push-ups", "push-ups", "do", "does"),
        ("walks {} blocks", "blocks", "walk", "walks"),
    ]);
    let m = g.int(3, 40);
    let n = g.int(3, 50);
    let am = act.replace("{}", &m.to_string());
    let an = act.replace("{}", &n.to_string());
    match g.int(0, 4) {
        0 => {
            let d = g.int(2, 14);
            let q = format!(
                "{p} {am} every day. How many {unit} does {} {verb} in {d} days?",
                p.she()
            );
            let (v, e) = g.calc(m, '*', d)?;
            g.say(format!("In {d} days, {p} {verbs} {e} {unit}."));
            Some((q, v))
        }
        1 => {
            let q = format!(
                "{p} {am} every weekday and {an} on Saturday. How many {unit} does {} {verb} in a week?",
                p.she()
            );
            let (w, e) = g.calc(m, '*', 5)?;
            g.say(format!("On weekdays, {p} {verbs} {e} {unit}."));
            let (v, e) = g.calc(w, '+', n)?;
            g.say(format!("In a week, {p} {verbs} {e} {unit}."));
            Some((q, v))
        }
        k => {
            let mut q = format!("{p} {am} on each weekday and {an} on each day of the weekend.");
            let (w, e) = g.calc(m, '*', 5)?;
            g.say(format!("On the five weekdays, {p} {verbs} {e} {unit}."));
            let (we, e) = g.calc(n, '*', 2)?;
            g.say(format!("On the two weekend days, {p} {verbs} {e} {unit}."));
            if k == 2 {
                q += &format!(
                    " How many more {unit} does {} {verb} on weekdays than on the weekend?",
                    p.she()
                );
                let (v, e) = g.calc(w, '-', we)?;
                g.say(format!("{p} {verbs} {e} more {unit} on weekdays."));
                return Some((q, v));
            }
            let (t, e) = g.calc(w, '+', we)?;
            g.say(format!("In one week, {p} {verbs} {e} {unit}."));
            if k == 3 {
                q += &format!(" How many {unit} does {} {verb} in a week?", p.she());
                return Some((q, t));
            }
            let wk = g.int(2, 4);
            q += &format!(" How many {unit} does {} {verb} in {wk} weeks?", p.she());
            let (v, e) = g.calc(t, '*', wk)?;
            g.say(format!("In {wk} weeks, {p} {verbs} {e} {unit}."));
            Some((q, v))
        }
    }
}

fn price_discount(g: &mut G) -> Built {
    let p = g.person();
    let (thing, lo, hi) = g.pick(SHOP);
    let price = g.int(lo.max(4), hi + 10);
    let off = g.int(1, price / 2);
    let n = g.int(2, 8);
    match g.int(0, 4) {
        0 => {
            let q = format!(
                "A {} usually costs ${price}. This week it is ${off} off. How much money does {p} save by buying {n} {} this week?",
                thing.0,
                thing.pl()
            );
            let (v, e) = g.calc(off, '*', n)?;
            g.say(format!("{p} saves {e} dollars."));
            Some((q, v))
        }
        1 => {
            let q = format!(
                "A {} usually costs ${price}. During a sale, the price is reduced by ${off}. How much does {p} pay for {n} {} at the sale price?",
                thing.0,
                thing.pl()
            );
            let (s, e) = g.calc(price, '-', off)?;
            g.say(format!("The sale price is {e} dollars."));
            let (v, e) = g.calc(s, '*', n)?;
            g.say(format!("{p} pays {e} dollars."));
            Some((q, v))
        }
        2 => {
            let bill = g.bill(price / 2 * n)?;
            let q = format!(
                "A {} costs ${price}, but today everything is half price. {p} buys {n} {} and pays with a ${bill} bill. How much change does {} get?",
                thing.0,
                thing.pl(),
                p.she()
            );
            let (s, e) = g.calc(price, '/', 2)?;
            g.say(format!("Each {} costs {e} dollars today.", thing.0));
            let (t, e) = g.calc(s, '*', n)?;
            g.say(format!("{p} pays {e} dollars."));
            let (v, e) = g.calc(bill, '-', t)?;
            g.say(format!("{p} gets {e} dollars in change."));
            Some((q, v))
        }
        _ => {
            let m = g.int(2, 5);
            let q = format!(
                "A {} usually costs ${price}. Today it is ${off} off, so {p} buys {n} of them. Next week {} buys {m} more at the full price. How much does {p} spend in all?",
                thing.0,
                p.she()
            );
            let (s, e) = g.calc(price, '-', off)?;
            g.say(format!("The sale price is {e} dollars."));
            let (a, e) = g.calc(s, '*', n)?;
            g.say(format!("Today {p} spends {e} dollars."));
            let (b, e) = g.calc(m, '*', price)?;
            g.say(format!("Next week {p} spends {e} dollars."));
            let (v, e) = g.calc(a, '+', b)?;
            g.say(format!("{p} spends {e} dollars in all."));
            Some((q, v))
        }
    }
}

fn leftover_money(g: &mut G) -> Built {
    let p = g.person();
    let m = g.int(20, 200);
    let ts = g.distinct(THINGS, 2);
    let a = g.int(3, 40);
    let mut q = format!("{p} has ${m}. {} spends ${a} on {}", p.she_c(), ts[0]);
    let (mut cur, e) = g.calc(m, '-', a)?;
    let variant = g.int(0, 3);
    if variant == 0 {
        q += &format!(". How much money does {} have left?", p.she());
        g.say(format!("{p} has {e} dollars left."));
        return Some((q, cur));
    }
    g.say(format!("After buying {}, {p} has {e} dollars.", ts[0]));
    if variant == 1 || variant == 3 {
        let b = g.int(3, 40);
        q += &format!(" and ${b} on {}.", ts[1]);
        let (v, e) = g.calc(cur, '-', b)?;
        g.say(format!("After buying {}, {p} has {e} dollars.", ts[1]));
        cur = v;
    } else {
        let (item, lo, hi) = g.pick(SHOP);
        let k = g.int(2, 5);
        let pr = g.int(lo, hi);
        q += &format!(". Then {} buys {k} {} for ${pr} each.", p.she(), item.pl());
        let (c, e) = g.calc(k, '*', pr)?;
        g.say(format!("The {} cost {e} dollars.", item.pl()));
        let (v, e) = g.calc(cur, '-', c)?;
        g.say(format!("{p} has {e} dollars left.",));
        cur = v;
    }
    if variant == 3 {
        q += &format!(
            " {} puts half of what is left in the bank. How much money does {} put in the bank?",
            p.she_c(),
            p.she()
        );
        let (v, e) = g.calc(cur, '/', 2)?;
        g.say(format!("{p} puts {e} dollars in the bank."));
        return Some((q, v));
    }
    if !q.ends_with('.') {
        q.push('.');
    }
    q += &format!(" How much money does {} have left?", p.she());
    Some((q, cur))
}

fn animal_legs(g: &mut G) -> Built {
    let four = g.pick(&[
        Noun("cow", "cows"),
        Noun("horse", "horses"),
        Noun("sheep", "sheep"),
        Noun("pig", "pigs"),
        Noun("goat", "goats"),
        Noun("dog", "dogs"),
    ]);
    let two = g.pick(&[
        Noun("chicken", "chickens"),
        Noun("duck", "ducks"),
        Noun("goose", "geese"),
        Noun("turkey", "turkeys"),
    ]);
    let owner = g.pick(&["A farmer", "A farm", "The petting zoo"]);
    let has = "has";
    let d = g.int(2, 30);
    let c = g.int(2, 40);
    match g.int(0, 3) {
        0 => {
            let q = format!(
                "{owner} {has} {d} {}. How many legs do the {} have in total?",
                four.pl(),
                four.pl()
            );
            let (v, e) = g.calc(d, '*', 4)?;
            g.say(format!("The {} have {e} legs.", four.pl()));
            Some((q, v))
        }
        1 => {
            let k = g.int(2, 10);
            let q = format!(
                "{owner} {has} {d} {}. Then {k} more {} arrive. How many legs do all the {} have now?",
                four.pl(),
                four.n(k),
                four.pl()
            );
            let (n, e) = g.calc(d, '+', k)?;
            g.say(format!("There are {e} {} now.", four.pl()));
            let (v, e) = g.calc(n, '*', 4)?;
            g.say(format!("They have {e} legs."));
            Some((q, v))
        }
        2 => {
            let q = format!(
                "{owner} {has} {d} {} and {c} {}. How many legs do the animals have altogether?",
                four.pl(),
                two.pl()
            );
            let (a, e) = g.calc(d, '*', 4)?;
            g.say(format!("The {} have {e} legs.", four.pl()));
            let (b, e) = g.calc(c, '*', 2)?;
            g.say(format!("The {} have {e} legs.", two.pl()));
            let (v, e) = g.calc(a, '+', b)?;
            g.say(format!("Altogether there are {e} legs."));
            Some((q, v))
        }
        _ => {
            let q = format!(
                "{owner} {has} {d} {} and {c} {}. How many more legs do the {} have than the {}?",
                four.pl(),
                two.pl(),
                four.pl(),
                two.pl()
            );
            let (a, e) = g.calc(d, '*', 4)?;
            g.say(format!("The {} have {e} legs.", four.pl()));
            let (b, e) = g.calc(c, '*', 2)?;
            g.say(format!("The {} have {e} legs.", two.pl()));
            let (v, e) = g.calc(a, '-', b)?;
            g.say(format!("The {} have {e} more legs.", four.pl()));
            Some((q, v))
        }
    }
}

fn pizza_slices(g: &mut G) -> Built {
    let p = g.person();
    let n = g.int(2, 9);
    let s = g.pick(&[6, 8, 10, 12]);
    match g.int(0, 3) {
        0 => {
            let q = format!(
                "{p} orders {n} pizzas for a party. Each pizza is cut into {s} slices. How many slices are there in total?"
            );
            let (v, e) = g.calc(n, '*', s)?;
            g.say(format!("There are {e} slices."));
            Some((q, v))
        }
        1 => {
            let c = g.int(6, 18);
            let f = g.int(3, 8);
            let q = format!(
                "{p} and {} friends order {n} pizzas. Each pizza costs ${c}. If the {} of them split the cost equally, how much does each person pay?",
                f - 1,
                f
            );
            let (t, e) = g.calc(n, '*', c)?;
            g.say(format!("The pizzas cost {e} dollars."));
            let (v, e) = g.calc(t, '/', f)?;
            g.say(format!("Each person pays {e} dollars."));
            Some((q, v))
        }
        2 => {
            let f = g.int(3, 12);
            let q = format!(
                "{p} orders {n} pizzas, and each pizza is cut into {s} slices. If {f} people share the slices equally, how many slices does each person get?"
            );
            let (t, e) = g.calc(n, '*', s)?;
            g.say(format!("There are {e} slices."));
            let (v, e) = g.calc(t, '/', f)?;
            g.say(format!("Each person gets {e} slices."));
            Some((q, v))
        }
        _ => {
            let f = g.int(3, 12);
            let left = g.int(2, 9);
            let q = format!(
                "{p} orders {n} pizzas with {s} slices each. At the end of the party, {left} slices are left. The {f} guests each ate the same number of slices. How many slices did each guest eat?"
            );
            let (t, e) = g.calc(n, '*', s)?;
            g.say(format!("There were {e} slices."));
            let (ate, e) = g.calc(t, '-', left)?;
            g.say(format!("The guests ate {e} slices."));
            let (v, e) = g.calc(ate, '/', f)?;
            g.say(format!("Each guest ate {e} slices."));
            Some((q, v))
        }
    }
}

fn sticker_album(g: &mut G) -> Built {
    let ps = g.people(2);
    let (p, sib) = (ps[0], ps[1]);
    let thing = g.pick(&["stickers", "photos", "stamps", "trading cards"]);
    let s = g.int(3, 12);
    let pages = g.int(4, 30);
    let mut q = format!(
        "{p} puts {s} {thing} on each page of {} album. The album has {pages} pages.",
        p.hers()
    );
    let (a, e) = g.calc(s, '*', pages)?;
    g.say(format!("The album holds {e} {thing}."));
    let variant = g.int(0, 3);
    if variant == 0 {
        q += &format!(" How many {thing} are in the album when it is full?");
        return Some((q, a));
    }
    let k = g.int(2, 20);
    q += &format!(
        " After filling the album, {} has {k} {thing} left over.",
        p.she()
    );
    let (had, e) = g.calc(a, '+', k)?;
    g.say(format!("{p} had {e} {thing} at first."));
    if variant == 1 {
        q += &format!(" How many {thing} did {p} have at first?");
        return Some((q, had));
    }
    let r = g.rel(had);
    q += &format!(
        " {sib} has {}.",
        rel_count(r, thing, &format!("{p} had at first"))
    );
    let (sv, e) = g.apply(had, r)?;
    g.say(format!("{sib} has {e} {thing}."));
    if variant == 2 {
        q += &format!(" How many {thing} does {sib} have?");
        return Some((q, sv));
    }
    q += &format!(" How many {thing} did {p} and {sib} have together?");
    let (v, e) = g.calc(had, '+', sv)?;
    g.say(format!("Together they had {e} {thing}."));
    Some((q, v))
}

fn time_tasks(g: &mut G) -> Built {
    let p = g.person();
    let tasks = g.distinct(
        &[
            "homework",
            "cleaning {his} room",
            "practicing the violin",
            "reading",
            "walking the dog",
            "cooking dinner",
        ],
        3,
    );
    let t: Vec<String> = tasks.iter().map(|s| s.replace("{his}", p.hers())).collect();
    let m = g.int(2, 9) * 5;
    let r = g.rel(m);
    let mut q = format!(
        "{p} spends {m} minutes on {} and {} on {}",
        t[0],
        rel_time(r),
        t[1]
    );
    let (b, e) = g.apply(m, r)?;
    g.say(format!("{p} spends {e} minutes on {}.", t[1]));
    match g.int(0, 3) {
        0 => {
            q += &format!(". How many minutes does {p} spend on {}?", t[1]);
            Some((q, b))
        }
        1 => {
            q += &format!(". How many minutes does {p} spend on both tasks?");
            let (v, e) = g.calc(m, '+', b)?;
            g.say(format!("{p} spends {e} minutes in total."));
            Some((q, v))
        }
        k => {
            let c = g.int(2, 12) * 5;
            q += &format!(". Then {} spends {c} minutes on {}.", p.she(), t[2]);
            let (s, e) = g.calc(m, '+', b)?;
            g.say(format!("The first two tasks take {e} minutes."));
            let (v, e) = g.calc(s, '+', c)?;
            g.say(format!("All three tasks take {e} minutes."));
            if k == 2 {
                q += &format!(" How many minutes does {p} spend on the three tasks?");
                return Some((q, v));
            }
            q += &format!(" How many hours does {p} spend on the three tasks?");
            let (h, e) = g.calc(v, '/', 60)?;
            g.say(format!("That is {e} hours."));
            Some((q, h))
        }
    }
}

fn machine_rate(g: &mut G) -> Built {
    let item = g.pick(&[
        Noun("toy", "toys"),
        Noun("bottle", "bottles"),
        Noun("brick", "bricks"),
        Noun("can", "cans"),
        Noun("shirt", "shirts"),
        Noun("candle", "candles"),
    ]);
    let r = g.int(5, 40);
    let h = g.int(2, 8);
    match g.int(0, 3) {
        0 => {
            let q = format!(
                "A machine makes {r} {} per hour. How many {} does it make in {h} hours?",
                item.pl(),
                item.pl()
            );
            let (v, e) = g.calc(r, '*', h)?;
            g.say(format!("The machine makes {e} {}.", item.pl()));
            Some((q, v))
        }
        1 => {
            let k = g.int(2, 12);
            let q = format!(
                "A machine makes {r} {} per hour. The {} are packed into boxes of {k}. How many boxes can be filled with the {} made in {h} hours?",
                item.pl(),
                item.pl(),
                item.pl()
            );
            let (t, e) = g.calc(r, '*', h)?;
            g.say(format!("The machine makes {e} {}.", item.pl()));
            let (v, e) = g.calc(t, '/', k)?;
            g.say(format!("They fill {e} boxes."));
            Some((q, v))
        }
        k => {
            let r2 = g.int(5, 40);
            let mut q = format!(
                "A factory has two machines. One makes {r} {} per hour and the other makes {r2} {} per hour.",
                item.pl(),
                item.pl()
            );
            let (s, e) = g.calc(r, '+', r2)?;
            g.say(format!(
                "Together the machines make {e} {} per hour.",
                item.pl()
            ));
            let (t, e) = g.calc(s, '*', h)?;
            g.say(format!("In {h} hours they make {e} {}.", item.pl()));
            if k == 2 {
                q += &format!(
                    " How many {} do they make together in {h} hours?",
                    item.pl()
                );
                return Some((q, t));
            }
            let bad = g.int(2, 15);
            q += &format!(
                " In {h} hours, {bad} of the {} turn out broken. How many good {} are made in those {h} hours?",
                item.pl(),
                item.pl()
            );
            let (v, e) = g.calc(t, '-', bad)?;
            g.say(format!("There are {e} good {}.", item.pl()));
            Some((q, v))
        }
    }
}

fn share_equally(g: &mut G) -> Built {
    let ps = g.people(3);
    let (a, b, c) = (ps[0], ps[1], ps[2]);
    let item = g.pick(COLLECTIBLES);
    let group = g.pick(&["friends", "classmates", "cousins", "teammates"]);
    let n = g.int(2, 8);
    let x = g.int(4, 40);
    match g.int(0, 3) {
        0 => {
            let q = format!(
                "{a} has {x} {} and shares them equally among {n} {group}. How many {} does each of the {group} get?",
                item.pl(),
                item.pl()
            );
            let (v, e) = g.calc(x, '/', n)?;
            g.say(format!("Each gets {e} {}.", item.n(v)));
            Some((q, v))
        }
        1 => {
            let y = g.int(4, 40);
            let q = format!(
                "{a} collected {x} {} and {b} collected {y} {}. They put them together and share them equally among {n} {group}. How many {} does each of the {group} get?",
                item.pl(),
                item.pl(),
                item.pl()
            );
            let (t, e) = g.calc(x, '+', y)?;
            g.say(format!("Together they have {e} {}.", item.pl()));
            let (v, e) = g.calc(t, '/', n)?;
            g.say(format!("Each gets {e} {}.", item.n(v)));
            Some((q, v))
        }
        2 => {
            let y = g.int(4, 40);
            let z = g.int(4, 40);
            let q = format!(
                "{a} has {x} {}, {b} has {y}, and {c} has {z}. They put all of them together and share them equally among {n} {group}. How many {} does each of the {group} get?",
                item.pl(),
                item.pl()
            );
            let (s, e) = g.calc(x, '+', y)?;
            g.say(format!("{a} and {b} have {e} {}.", item.pl()));
            let (t, e) = g.calc(s, '+', z)?;
            g.say(format!("All three have {e} {}.", item.pl()));
            let (v, e) = g.calc(t, '/', n)?;
            g.say(format!("Each gets {e} {}.", item.n(v)));
            Some((q, v))
        }
        _ => {
            let r = g.rel(x);
            let q = format!(
                "{a} has {x} {}. {b} has {}. They put them together and share them equally among {n} {group}. How many {} does each of the {group} get?",
                item.pl(),
                rel_count(r, item.pl(), a.name),
                item.pl()
            );
            let (y, e) = g.apply(x, r)?;
            g.say(format!("{b} has {e} {}.", item.pl()));
            let (t, e) = g.calc(x, '+', y)?;
            g.say(format!("Together they have {e} {}.", item.pl()));
            let (v, e) = g.calc(t, '/', n)?;
            g.say(format!("Each gets {e} {}.", item.n(v)));
            Some((q, v))
        }
    }
}

// ---------------------------------------------------------------------------
// More templates (once held out; their structures occur in the ones above)
// ---------------------------------------------------------------------------

fn fundraiser_profit(g: &mut G) -> Built {
    let club = g.pick(&[
        "The school band",
        "The art club",
        "The soccer team",
        "The chess club",
    ]);
    let (good, unit) = g.pick(&[
        ("lemonade", "cup"),
        ("popcorn", "bag"),
        ("hot cocoa", "cup"),
        ("raffle tickets", "ticket"),
    ]);
    let price = g.int(2, 6);
    let a = g.int(10, 60);
    let b = g.int(10, 60);
    let mut q = format!(
        "{club} sells {good} for ${price} a {unit}. They sell {a} {unit}s on Saturday and {b} {unit}s on Sunday."
    );
    let (n, e) = g.calc(a, '+', b)?;
    g.say(format!("They sell {e} {unit}s over the weekend."));
    let (money, e) = g.calc(n, '*', price)?;
    g.say(format!("They collect {e} dollars."));
    let variant = g.int(0, 2);
    if variant == 0 {
        q += " How much money do they collect?";
        return Some((q, money));
    }
    let cost = g.int(10, 80);
    q += &format!(" The supplies cost ${cost}.");
    let (profit, e) = g.calc(money, '-', cost)?;
    g.say(format!("Their profit is {e} dollars."));
    if variant == 1 {
        q += " How much profit do they make?";
        return Some((q, profit));
    }
    let k = g.int(2, 6);
    q += &format!(
        " The profit is split equally among {k} charities. How much does each charity receive?"
    );
    let (v, e) = g.calc(profit, '/', k)?;
    g.say(format!("Each charity receives {e} dollars."));
    Some((q, v))
}

fn train_trip(g: &mut G) -> Built {
    let s1 = g.int(4, 16) * 5;
    let h1 = g.int(2, 4);
    match g.int(0, 2) {
        0 => {
            let dist = g.int(s1 * h1 + 10, 900);
            let q = format!(
                "Two cities are {dist} kilometers apart. A train leaves one city and goes {s1} kilometers every hour. How far from the other city is the train after {h1} hours?"
            );
            let (d, e) = g.calc(s1, '*', h1)?;
            g.say(format!("The train covers {e} kilometers."));
            let (v, e) = g.calc(dist, '-', d)?;
            g.say(format!("It is {e} kilometers from the other city."));
            Some((q, v))
        }
        _ => {
            let s2 = g.int(4, 16) * 5;
            let h2 = g.int(2, 4);
            let q = format!(
                "A train goes {s1} kilometers per hour for {h1} hours, stops at a station, and then goes {s2} kilometers per hour for {h2} hours. How many kilometers does the train cover on the whole journey?"
            );
            let (a, e) = g.calc(s1, '*', h1)?;
            g.say(format!(
                "Before the station, the train covers {e} kilometers."
            ));
            let (b, e) = g.calc(s2, '*', h2)?;
            g.say(format!(
                "After the station, the train covers {e} kilometers."
            ));
            let (v, e) = g.calc(a, '+', b)?;
            g.say(format!("The whole journey is {e} kilometers."));
            Some((q, v))
        }
    }
}

fn library_shelf(g: &mut G) -> Built {
    let k = g.int(1, 4) as usize;
    let mut cur = g.int(20, 120);
    let mut q = format!("A library shelf holds {cur} books on Monday morning.");
    let mut last_day = "";
    for day in DAYS.iter().take(k) {
        let ev = next_event(g, cur, false);
        let (v, e) = ev_calc(g, cur, ev)?;
        match ev {
            Ev::Add(a) => {
                q += &format!(" On {day}, readers return {a} books to the shelf.");
                g.say(format!("After {day}, the shelf holds {e} books."));
            }
            Ev::Sub(a) => {
                q += &format!(" On {day}, {a} books are borrowed from the shelf.");
                g.say(format!("After {day}, the shelf holds {e} books."));
            }
            Ev::Half | Ev::Mul(_) => {
                q +=
                    &format!(" On {day}, half of the books on the shelf are sent away for repair.");
                g.say(format!(
                    "{cur} divided by 2 is {e}, so {v} books stay on the shelf."
                ));
            }
        }
        cur = v;
        last_day = day;
    }
    q += &format!(" How many books are on the shelf at the end of {last_day}?");
    Some((q, cur))
}

fn recipe_scale(g: &mut G) -> Built {
    let p = g.person();
    let (thing, ingr, unit) = g.pick(&[
        ("pancakes", "flour", "cups"),
        ("muffins", "sugar", "spoons"),
        ("cookies", "butter", "ounces"),
        ("waffles", "milk", "cups"),
    ]);
    let b = g.int(4, 12);
    let c = g.int(2, 6);
    let times = g.int(2, 6);
    let want = b * times;
    let mut q = format!(
        "A recipe uses {c} {unit} of {ingr} to make {b} {thing}. {p} wants to make {want} {thing}."
    );
    let (batches, e) = g.calc(want, '/', b)?;
    g.say(format!("{p} needs to make the recipe {e} times."));
    let (need, e) = g.calc(batches, '*', c)?;
    g.say(format!("{p} needs {e} {unit} of {ingr}."));
    if g.coin() {
        q += &format!(" How many {unit} of {ingr} does {} need?", p.she());
        return Some((q, need));
    }
    let has = g.int(1, need - 1);
    q += &format!(
        " {} already has {has} {unit} of {ingr} at home. How many more {unit} does {} need to buy?",
        p.she_c(),
        p.she()
    );
    let (v, e) = g.calc(need, '-', has)?;
    g.say(format!("{p} needs to buy {e} more {unit}."));
    Some((q, v))
}

fn paint_rooms(g: &mut G) -> Built {
    let p = g.person();
    let r = g.int(2, 6);
    let k = g.int(2, 5);
    let price = g.int(8, 30);
    let variant = g.int(0, 2);
    let mut q = format!(
        "{p} is painting {r} rooms. Each room needs {k} cans of paint, and one can of paint costs ${price}."
    );
    let (cans, e) = g.calc(r, '*', k)?;
    g.say(format!("{p} needs {e} cans of paint."));
    let mut buy = cans;
    if variant >= 1 {
        let have = g.int(1, cans - 1);
        q += &format!(
            " {} already has {have} {} of paint in the garage.",
            p.she_c(),
            if have == 1 { "can" } else { "cans" }
        );
        let (v, e) = g.calc(cans, '-', have)?;
        g.say(format!("{p} has to buy {e} cans."));
        buy = v;
    }
    let (cost, e) = g.calc(buy, '*', price)?;
    g.say(format!("The paint costs {e} dollars."));
    if variant <= 1 {
        q += &format!(" How much does {} spend on paint?", p.she());
        return Some((q, cost));
    }
    let bill = g.bill(cost)?;
    q += &format!(
        " {} pays with ${bill}. How much money does {} get back?",
        p.she_c(),
        p.she()
    );
    let (v, e) = g.calc(bill, '-', cost)?;
    g.say(format!("{p} gets {e} dollars back."));
    Some((q, v))
}

fn fence_perimeter(g: &mut G) -> Built {
    let p = g.person();
    let l = g.int(5, 40);
    let w = g.int(3, l);
    let place = g.pick(&["garden", "yard", "playground", "dog pen"]);
    let mut q = format!("{p}'s rectangular {place} is {l} meters long and {w} meters wide.");
    let (half, e) = g.calc(l, '+', w)?;
    g.say(format!("One length and one width add up to {e} meters."));
    let (per, e) = g.calc(half, '*', 2)?;
    g.say(format!("The fence around the {place} is {e} meters long."));
    if g.coin() {
        q += &format!(
            " How many meters of fence does {} need to go all the way around it?",
            p.she()
        );
        return Some((q, per));
    }
    let c = g.int(2, 9);
    q += &format!(
        " Fencing costs ${c} per meter. How much will it cost to fence the whole {place}?"
    );
    let (v, e) = g.calc(per, '*', c)?;
    g.say(format!("The fence costs {e} dollars."));
    Some((q, v))
}

fn field_trip_vans(g: &mut G) -> Built {
    let seats = g.int(5, 12);
    let vans = g.int(2, 8);
    if g.int(0, 2) == 0 {
        let n = seats * vans;
        let q = format!(
            "{n} students are going to the museum. Each minibus can carry {seats} students. How many minibuses are needed if every minibus is full?"
        );
        let (v, e) = g.calc(n, '/', seats)?;
        g.say(format!("They need {e} minibuses."));
        return Some((q, v));
    }
    let teachers = g.int(2, 6);
    let kids = seats * vans - teachers;
    let mut q = format!(
        "{kids} students and {teachers} teachers are going on a field trip. Each van holds exactly {seats} people, and every van is full."
    );
    let (people, e) = g.calc(kids, '+', teachers)?;
    g.say(format!("There are {e} people going."));
    let (nv, e) = g.calc(people, '/', seats)?;
    g.say(format!("They need {e} vans."));
    if g.coin() {
        q += " How many vans do they use?";
        return Some((q, nv));
    }
    let rent = g.int(20, 90);
    q += &format!(" Renting one van costs ${rent}. How much do the vans cost in total?");
    let (v, e) = g.calc(nv, '*', rent)?;
    g.say(format!("The vans cost {e} dollars."));
    Some((q, v))
}

fn aquarium_fish(g: &mut G) -> Built {
    let gold = g.int(3, 25);
    let r1 = g.rel(gold);
    let mut q = format!(
        "An aquarium tank has {gold} goldfish. The tank holds {}.",
        rel_count(r1, "guppies", "goldfish")
    );
    let (gu, e) = g.apply(gold, r1)?;
    g.say(format!("There are {e} guppies."));
    let variant = g.int(0, 3);
    if variant == 0 {
        q += " How many guppies are in the tank?";
        return Some((q, gu));
    }
    let r2 = g.rel(gu);
    q += &format!(" It also holds {}.", rel_count(r2, "angelfish", "guppies"));
    let (an, e) = g.apply(gu, r2)?;
    g.say(format!("There are {e} angelfish."));
    if variant == 1 {
        q += " How many angelfish are in the tank?";
        return Some((q, an));
    }
    q += " How many fish live in the tank?";
    let (s, e) = g.calc(gold, '+', gu)?;
    g.say(format!("There are {e} goldfish and guppies."));
    let (v, e) = g.calc(s, '+', an)?;
    g.say(format!("There are {e} fish in the tank."));
    Some((q, v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::calculator::compute;
    use std::collections::{HashMap, HashSet};

    /// All `<<expr=value>>` annotations of an answer, as (expression, value).
    fn annotations(answer: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut rest = answer;
        while let Some(start) = rest.find("<<") {
            let end = rest[start..].find(">>").expect("unclosed annotation") + start;
            let inner = &rest[start + 2..end];
            let (expr, val) = inner.split_once('=').expect("annotation without =");
            // The visible text must repeat the expression and the value.
            assert!(
                rest[..start].ends_with(&format!("{expr} = ")),
                "annotation not preceded by its expression: {answer}"
            );
            assert!(
                rest[end + 2..].starts_with(val),
                "value not repeated: {answer}"
            );
            out.push((expr.to_string(), val.to_string()));
            rest = &rest[end + 2..];
        }
        out
    }

    fn check(p: &Problem) {
        let anns = annotations(&p.answer);
        assert_eq!(anns.len(), p.steps, "steps mismatch: {p:?}");
        assert!((1..=4).contains(&p.steps), "steps out of range: {p:?}");
        for (expr, c) in &anns {
            // The annotation holds what the calculator would write.
            assert_eq!(
                compute(expr),
                Some(c.to_string()),
                "bad annotation in {p:?}"
            );
            let c: i64 = c.parse().expect("an integer");
            assert!((1..=100_000).contains(&c), "range: {p:?}");
        }
        let last = p.answer.lines().last().unwrap();
        assert_eq!(last, format!("#### {}", p.r#final), "{p:?}");
        assert_eq!(p.answer.matches("####").count(), 1);
        let fin: i64 = p.r#final.parse().expect("final is an integer");
        assert!((1..=100_000).contains(&fin));
        // The final answer is one of the computed quantities.
        assert!(
            anns.iter().any(|x| x.1 == p.r#final),
            "final not computed: {p:?}"
        );
        assert!(!p.question.contains('\n'));
        assert!(p.question.ends_with('?'), "question: {}", p.question);
        assert!(
            !p.question.contains("{"),
            "unfilled placeholder: {}",
            p.question
        );
        assert!(
            !p.answer.contains("{"),
            "unfilled placeholder: {}",
            p.answer
        );
        assert!(!p.question.contains(".."), "double period: {}", p.question);
        // Each step is its own line; the `####` line follows them.
        assert_eq!(p.answer.lines().count(), p.steps + 1, "{p:?}");
    }

    #[test]
    fn all_invariants_hold_for_both_splits() {
        // Composed problems have decimals and invariants of their own (`compose`'s tests).
        for split in [Split::Train, Split::Test] {
            for p in problems(3000, 7, split)
                .into_iter()
                .filter(|p| p.template != compose::TEMPLATE)
            {
                check(&p);
            }
        }
    }

    #[test]
    fn every_step_count_appears() {
        let ps: Vec<Problem> = problem_stream(1, Split::Train)
            .filter(|p| p.template != compose::TEMPLATE)
            .take(2000)
            .collect();
        let counts: HashSet<usize> = ps.iter().map(|p| p.steps).collect();
        assert_eq!(counts, HashSet::from([1, 2, 3, 4]));
        // ...and none is rare.
        for k in 1..=4 {
            let c = ps.iter().filter(|p| p.steps == k).count();
            assert!(c >= 200, "only {c} problems with {k} steps");
        }
        let test: HashSet<usize> = problems(2000, 1, Split::Test)
            .iter()
            .map(|p| p.steps)
            .collect();
        assert!(test.len() >= 3, "{test:?}");
    }

    /// The equation structure of a worked answer, read from its annotations: a number that an
    /// earlier step computed is `r<i>`, one the question gives is `v<j>` (in order of first use),
    /// any other (the 2 of "twice") is `k`.
    fn structure(p: &Problem) -> String {
        let given_in_question: HashSet<&str> = p
            .question
            .split(|c: char| !c.is_ascii_digit())
            .filter(|w| !w.is_empty())
            .collect();
        let (mut given, mut results, mut steps) = (Vec::new(), Vec::new(), Vec::new());
        for (expr, value) in annotations(&p.answer) {
            let mut s = String::new();
            for piece in expr.split_inclusive(['+', '-', '*', '/', '(', ')']) {
                let (number, op) =
                    piece.split_at(piece.trim_end_matches(['+', '-', '*', '/', '(', ')']).len());
                if !number.is_empty() {
                    if let Some(i) = results.iter().rposition(|r: &String| r == number) {
                        s.push_str(&format!("r{i}"));
                    } else if given_in_question.contains(number) {
                        let i = given.iter().position(|g| g == number).unwrap_or_else(|| {
                            given.push(number.to_string());
                            given.len() - 1
                        });
                        s.push_str(&format!("v{i}"));
                    } else {
                        s.push('k');
                    }
                }
                s.push_str(op);
            }
            results.push(value.to_string());
            steps.push(s);
        }
        steps.join(" ; ")
    }

    #[test]
    fn held_out_structures_never_occur_in_training() {
        let mut train: HashSet<String> = problems(30_000, 3, Split::Train)
            .iter()
            .map(structure)
            .collect();
        train.extend(families(Split::Train).map(Family::signature));
        let seen: Vec<String> = families(Split::Test)
            .filter(|f| train.contains(&f.signature()))
            .map(|f| format!("{}: {}", f.name, f.signature()))
            .collect();
        assert!(
            seen.is_empty(),
            "held-out structures seen in training: {seen:#?}"
        );
        assert!(families(Split::Test).count() >= 15);
    }

    #[test]
    fn deterministic_by_seed() {
        assert_eq!(problems(50, 3, Split::Train), problems(50, 3, Split::Train));
        assert_eq!(problems(50, 3, Split::Test), problems(50, 3, Split::Test));
        assert_ne!(problems(50, 3, Split::Train), problems(50, 4, Split::Train));
        assert_ne!(problems(50, 3, Split::Test), problems(50, 4, Split::Test));
        // A prefix of a longer run is the shorter run.
        assert_eq!(
            problems(80, 9, Split::Train)[..20],
            problems(20, 9, Split::Train)[..]
        );
    }

    #[test]
    fn splits_are_disjoint_and_all_templates_used() {
        let train: HashSet<&str> = template_names(Split::Train).into_iter().collect();
        let test: HashSet<&str> = template_names(Split::Test).into_iter().collect();
        assert!(train.len() >= 24, "{}", train.len());
        assert!(test.len() >= 6, "{}", test.len());
        assert!(train.is_disjoint(&test));
        for (split, names) in [(Split::Train, &train), (Split::Test, &test)] {
            let used: HashSet<String> = problems(10_000, 11, split)
                .into_iter()
                .map(|p| p.template)
                .collect();
            for t in &used {
                assert!(names.contains(t.as_str()), "{t} produced for {split:?}");
            }
            assert_eq!(
                used.len(),
                names.len(),
                "not every template used for {split:?}"
            );
        }
    }

    #[test]
    fn every_template_asks_at_least_50_distinct_questions() {
        let mut per: HashMap<String, HashSet<String>> = HashMap::new();
        // Templates written as code and data families; the composer is varied by its own tests.
        for p in problem_stream(5, Split::Train)
            .filter(|p| p.template != compose::TEMPLATE)
            .take(20_000)
        {
            per.entry(p.template).or_default().insert(p.question);
        }
        for (t, qs) in per {
            assert!(
                qs.len() >= 50,
                "template {t} has only {} distinct questions",
                qs.len()
            );
        }
    }

    #[test]
    fn every_template_succeeds_often() {
        // A template that rarely satisfies its constraints would be drawn less.
        for split in [Split::Train, Split::Test] {
            let mut rng = StdRng::seed_from_u64(42);
            for &(name, f) in templates(split) {
                let ok = (0..200)
                    .filter(|_| run_template(&mut rng, name, f).is_some())
                    .count();
                assert_eq!(ok, 200, "{name}");
            }
        }
    }

    #[test]
    fn serializes_final_field() {
        let p = &problems(1, 0, Split::Train)[0];
        let v: serde_json::Value = serde_json::to_value(p).unwrap();
        assert_eq!(v["final"], serde_json::Value::String(p.r#final.clone()));
        let back: Problem = serde_json::from_value(v).unwrap();
        assert_eq!(&back, p);
    }

    #[test]
    fn gsm8k_example_format_parses() {
        let ans = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether in April and May.\n#### 72";
        assert_eq!(
            annotations(ans),
            vec![("48/2".into(), "24".into()), ("48+24".into(), "72".into())]
        );
    }
}
