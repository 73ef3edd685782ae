//! Word problems composed from parts (`compose.toml`): a situation of grade-school arithmetic
//! (a change with its start, change or result unknown; combining; comparing; equal groups,
//! people counted by name among them; prices; units of a known size; mixtures; trips; two-step
//! stories), said in one of its sentence frames, over a lexicon of people,
//! things and the verbs that fit them, counts, amounts of money or measures (decimals), number
//! words, numbers that do not matter, the question first or last. Where `families.rs` fixes one
//! wording of one structure, this draws every part independently, so that a model learns what
//! the words of a situation ask for rather than which listed sentence it resembles.
//!
//! Numbers are exact decimals (thousandths) and results are written as the calculator writes
//! them, so a worked answer's `<<a+b=c>>c` is what the calculator would force.
//!
//! (Over 800 lines with its tests, which check every frame and kind the lexicon can draw.)

use std::collections::BTreeMap;
use std::sync::LazyLock;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde::Deserialize;

use super::extract::COUNT_WORDS;
use super::problem::{Problem, with_thousands};
use crate::generate::calculator;

/// The template name every composed problem carries.
pub const TEMPLATE: &str = "composed";

/// Probability that a sentence with a number that does not matter is added.
const DISTRACTOR_RATE: f64 = 0.25;
/// Probability that a small count is written as a word ("seven").
const NUMBER_WORD_RATE: f64 = 0.15;
/// Every number is held as an integer count of 1/36000ths, so that thousandths (money, decimal
/// measures), ninths and twelfths (measures given as fractions) are all exact.
const SCALE: i64 = 36000;
/// A thousandth and a cent, in those units.
const MILLI: i64 = SCALE / 1000;
const CENT: i64 = SCALE / 100;

static COMPOSER: LazyLock<Composer> = LazyLock::new(|| {
    Composer::parse(include_str!("compose.toml"))
        .unwrap_or_else(|e| panic!("src/tasks/compose.toml: {e}"))
});

/// How often composed problems are drawn, against a data family of weight 1.
pub fn weight() -> u32 {
    COMPOSER.weight
}

/// One composed problem (the situation, frame and words drawn from `rng`).
pub fn sample(rng: &mut StdRng) -> Problem {
    loop {
        let situation = COMPOSER.situations.choose(rng).expect("situations");
        if let Some(p) = COMPOSER.compose(situation, rng) {
            return p;
        }
    }
}

/// The situations' names, for tests and error messages.
pub fn situation_names() -> Vec<&'static str> {
    COMPOSER
        .situations
        .iter()
        .map(|s| s.name.as_str())
        .collect()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    weight: u32,
    names: Names,
    times: Vec<String>,
    legs: Vec<String>,
    places: Vec<String>,
    containers: Vec<String>,
    items: Vec<String>,
    shops: Vec<String>,
    givers: Vec<String>,
    category: Vec<Category>,
    measure: Vec<Measure>,
    mixture: Vec<Mixture>,
    money: Verbs,
    situation: Vec<SituationSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Names {
    female: Vec<String>,
    male: Vec<String>,
}

/// Verbs as `past/base`: what adds to what one has, takes from it, or just does it.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct Verbs {
    gain: Vec<String>,
    lose: Vec<String>,
    act: Vec<String>,
}

/// Countable things that share verbs (`apple/apples`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Category {
    things: Vec<String>,
    #[serde(flatten)]
    verbs: Verbs,
    /// Whether counts in the thousands make sense (books in a library, apples in an orchard; not
    /// balloons at a party).
    #[serde(default)]
    large: bool,
}

/// Stuff measured in units with decimals (`cup/cups` of `flour`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Measure {
    units: Vec<String>,
    stuff: Vec<String>,
    #[serde(flatten)]
    verbs: Verbs,
    /// Whether it is a distance gone along a trip's legs (`{leg}` … in a frame).
    #[serde(default)]
    trip: bool,
}

/// Kinds of stuff measured in one unit that make one thing together (`oats`, `pumpkin seeds` …
/// in `cups` of `granola`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Mixture {
    units: Vec<String>,
    stuff: Vec<String>,
    /// What the stuff makes together, as a question names it ("granola", "fruit drink").
    whole: Vec<String>,
    #[serde(flatten)]
    verbs: Verbs,
}

/// A situation: its equation (`schema`, one of [`Schema`]'s names), the kinds of quantity it
/// may be told in, its question frames and its worked answer (one line per step).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SituationSpec {
    name: String,
    schema: String,
    kinds: Vec<String>,
    question: Vec<String>,
    answer: Vec<String>,
    /// Units of a known size for the conversions (`k*u`, `a/u`): `one/many=size`, or
    /// `one/many=size=small/smalls` where the smaller unit is named ("week/weeks=7=day/days").
    #[serde(default)]
    units: Vec<String>,
    /// Whether `k` is how many people `{people}` names ("Sam, Ann and Joe each have 14").
    #[serde(default)]
    people: bool,
}

struct Situation {
    name: String,
    schema: Schema,
    people: bool,
    kinds: Vec<Kind>,
    question: Vec<String>,
    answer: Vec<String>,
    units: Vec<Unit>,
}

/// A unit of a known size in a smaller one (a dozen is 12, a quarter 25 cents, a week 7
/// days): `{big}` / `{bigs}` in a frame, `{small}` / `{smalls}` the smaller unit, `{u}` the size.
struct Unit {
    big: (String, String),
    small: (String, String),
    size: i64,
}

impl Unit {
    fn parse(s: &str) -> Result<Unit, String> {
        let bad = || format!("unit {s:?} is not `one/many=size` or `one/many=size=small/smalls`");
        let mut parts = s.split('=');
        let (big, size) = (parts.next().ok_or_else(bad)?, parts.next().ok_or_else(bad)?);
        let small = parts.next().unwrap_or("");
        let size = (size.parse::<f64>().ok())
            .map(|v| (v * SCALE as f64).round() as i64)
            .filter(|&v| v > 0 && parts.next().is_none())
            .ok_or_else(bad)?;
        let forms = |f: &str| {
            let (one, many) = split_forms(f);
            (one.to_string(), many.to_string())
        };
        Ok(Unit {
            big: forms(big),
            small: forms(small),
            size,
        })
    }
}

struct Composer {
    spec: Spec,
    weight: u32,
    situations: Vec<Situation>,
}

/// What a quantity is: a count of things, an amount of money, a measure of stuff, or a measure
/// of one of several kinds of stuff that make a whole.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    Count,
    Money,
    Measure,
    Mixture,
    /// A distance gone on one leg of a trip.
    Trip,
}

impl Kind {
    fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "count" => Ok(Kind::Count),
            "money" => Ok(Kind::Money),
            "measure" => Ok(Kind::Measure),
            "mixture" => Ok(Kind::Mixture),
            "trip" => Ok(Kind::Trip),
            _ => Err(format!(
                "kind {s:?} is not count, money, measure, mixture or trip"
            )),
        }
    }
}

/// The equations a situation may have. Given numbers are `a, b, c` (and `k`, a small whole
/// multiplier or divisor); steps are computed in order.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Schema {
    /// a + b
    Sum,
    /// a + b + c
    Sum3,
    /// a − b, a > b
    Difference,
    /// a − b − c, a > b + c
    Difference3,
    /// a · k
    Times,
    /// a ÷ k, whole when a is a count
    Share,
    /// (a + b) − c
    SumThenDifference,
    /// (a − b) + c
    DifferenceThenSum,
    /// b' = a + b, then a + b'
    MoreThenTotal,
    /// b' = a · k, then a + b'
    TimesThenTotal,
    /// bill − (a + b)
    Change,
    /// k · u: k of a unit of size u in the smaller unit (5 dozen, 12 each)
    Convert,
    /// a ÷ u: a of the smaller unit in units of size u, whole
    ConvertBack,
    /// k · u, then j · v, then their sum: two units of known sizes in one (7 quarters and 9
    /// pennies in dollars)
    ConvertTwo,
    /// (a − b) · k: what is left, each worth k (all but b sold at k dollars)
    LeftTimes,
    /// (a + b) · k: two counts together, each worth k
    SumTimes,
    /// a · k − b: k groups of a, then b taken away
    TimesLess,
    /// a · k + b: k groups of a beside b already had
    TimesMore,
    /// a − b · k: b given to each of k
    LessTimes,
    /// (a + b) ÷ k: two counts together, shared by k, whole
    SumShare,
    /// (a − b) ÷ k: what is left, shared by k, whole
    LeftShare,
    /// a ÷ k − b: a packed in groups of k, then b groups taken away
    ShareLess,
}

impl Schema {
    fn parse(s: &str) -> Result<Schema, String> {
        Ok(match s {
            "a+b" => Schema::Sum,
            "a+b+c" => Schema::Sum3,
            "a-b" => Schema::Difference,
            "a-b-c" => Schema::Difference3,
            "a*k" => Schema::Times,
            "a/k" => Schema::Share,
            "(a+b)-c" => Schema::SumThenDifference,
            "(a-b)+c" => Schema::DifferenceThenSum,
            "a+(a+b)" => Schema::MoreThenTotal,
            "a+(a*k)" => Schema::TimesThenTotal,
            "bill-(a+b)" => Schema::Change,
            "k*u" => Schema::Convert,
            "a/u" => Schema::ConvertBack,
            "k*u+j*v" => Schema::ConvertTwo,
            "(a-b)*k" => Schema::LeftTimes,
            "(a+b)*k" => Schema::SumTimes,
            "a*k-b" => Schema::TimesLess,
            "a*k+b" => Schema::TimesMore,
            "a-b*k" => Schema::LessTimes,
            "(a+b)/k" => Schema::SumShare,
            "(a-b)/k" => Schema::LeftShare,
            "a/k-b" => Schema::ShareLess,
            _ => return Err(format!("schema {s:?} is not one of the known equations")),
        })
    }
}

impl Composer {
    fn parse(text: &str) -> Result<Composer, String> {
        let mut spec: Spec = toml::from_str(text).map_err(|e| e.to_string())?;
        let lists = [
            &spec.names.female,
            &spec.names.male,
            &spec.times,
            &spec.legs,
            &spec.places,
            &spec.containers,
            &spec.items,
            &spec.shops,
            &spec.givers,
        ];
        let mixtures_too_small = spec.mixture.iter().any(|m| m.stuff.len() < 3);
        if lists.iter().any(|l| l.is_empty())
            || spec.category.is_empty()
            || spec.measure.is_empty()
            || spec.mixture.is_empty()
            || !spec.measure.iter().any(|m| m.trip)
            || mixtures_too_small
        {
            return Err(
                "every list of the lexicon needs entries, a mixture three kinds of stuff, and one \
                 measure the distances of trips"
                    .into(),
            );
        }
        let situations = std::mem::take(&mut spec.situation)
            .into_iter()
            .map(|s| {
                let context = |e: String| format!("situation `{}`: {e}", s.name);
                if s.kinds.is_empty() || s.question.is_empty() || s.answer.is_empty() {
                    return Err(context("needs kinds, questions and answer lines".into()));
                }
                let schema = Schema::parse(&s.schema).map_err(context)?;
                let converts = matches!(
                    schema,
                    Schema::Convert | Schema::ConvertBack | Schema::ConvertTwo
                );
                if converts == s.units.is_empty()
                    || schema == Schema::ConvertTwo && s.units.len() < 2
                {
                    return Err(context(
                        "a conversion (`k*u`, `a/u`; `k*u+j*v` with two or more) needs units, and \
                         only a conversion has them"
                            .into(),
                    ));
                }
                if s.people && !matches!(schema, Schema::Times | Schema::Share) {
                    return Err(context(
                        "people are counted only as `k` (`a*k`, `a/k`)".into(),
                    ));
                }
                Ok(Situation {
                    schema,
                    people: s.people,
                    units: parse_each(&s.units, Unit::parse).map_err(context)?,
                    kinds: parse_each(&s.kinds, Kind::parse).map_err(context)?,
                    name: s.name,
                    question: s.question,
                    answer: s.answer,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Composer {
            weight: spec.weight,
            spec,
            situations,
        })
    }

    fn compose(&self, s: &Situation, rng: &mut StdRng) -> Option<Problem> {
        let (schema, kind) = (s.schema, *s.kinds.choose(rng)?);
        let mut words = self.words(kind, rng);
        // A conversion's unit, and a second one for `k*u+j*v`.
        let first = s.units.choose(rng);
        let others = |f: &Unit| {
            s.units
                .iter()
                .filter(|u| !std::ptr::eq(*u, f))
                .collect::<Vec<_>>()
        };
        let second = first.and_then(|f| others(f).choose(rng).copied());
        let units: Vec<&Unit> = first.into_iter().chain(second).collect();
        for (unit, suffix) in units.iter().zip(["", "2"]) {
            for (name, (one, many)) in [("big", &unit.big), ("small", &unit.small)] {
                words.set(&format!("{name}{suffix}"), one.clone());
                words.set(&format!("{name}s{suffix}"), many.clone());
            }
            words.set(&format!("u{suffix}"), decimal(unit.size));
        }
        let size = |i: usize| units.get(i).map_or(0, |u| u.size);
        let numbers = Numbers::draw(schema, kind, words.large, [size(0), size(1)], s.people, rng)?;
        let steps = numbers.steps(schema)?;
        for (i, (name, value)) in [("a", numbers.a), ("b", numbers.b), ("c", numbers.c)]
            .into_iter()
            .enumerate()
        {
            let (quantity, bare) = (
                words.quantity(value, kind, i, rng),
                words.bare(value, kind, rng),
            );
            words.set(&name.to_uppercase(), quantity);
            words.set(name, bare);
        }
        words.set("k", say_count(numbers.k / SCALE, rng));
        words.set("j", say_count(numbers.j / SCALE, rng));
        if s.people {
            let names: Vec<String> = ["P", "P2", "P3", "P4"]
                .iter()
                .take((numbers.k / SCALE) as usize)
                .map(|p| words.get(p).to_string())
                .collect();
            words.set("people", listed(&names, rng));
        }
        words.set("bill", format!("${}", numbers.bill / SCALE));
        let mut answer = Vec::new();
        for (i, Step { shown, written, .. }) in steps.iter().enumerate() {
            words.set(
                &format!("s{}", i + 1),
                format!("{shown} = <<{shown}={written}>>{written}"),
            );
            words.set(&format!("r{}", i + 1), written.clone());
        }
        for line in &s.answer {
            answer.push(words.fill(line, rng));
        }
        let final_value = steps.last()?.written.clone();
        answer.push(format!("#### {final_value}"));
        let frame = s.question.choose(rng)?;
        let mut question = words.fill(frame, rng);
        if rng.random_bool(DISTRACTOR_RATE) {
            question = self.with_distractor(&question, kind, schema, &words, rng);
        }
        Some(Problem {
            question,
            answer: answer.join("\n"),
            r#final: final_value,
            steps: steps.len(),
            template: TEMPLATE.to_string(),
        })
    }

    /// The words of one problem: three people, a kind's nouns and verbs, places and times.
    fn words(&self, kind: Kind, rng: &mut StdRng) -> Words {
        let mut w = Words::default();
        let mut used = Vec::new();
        for person in ["P", "P2", "P3", "P4"] {
            let female = rng.random_bool(0.5);
            let names = if female {
                &self.spec.names.female
            } else {
                &self.spec.names.male
            };
            let name = loop {
                let n = names.choose(rng).expect("names").clone();
                if !used.contains(&n) {
                    break n;
                }
            };
            used.push(name.clone());
            let suffix = &person[1..];
            let (he, him, his) = if female {
                ("she", "her", "her")
            } else {
                ("he", "him", "his")
            };
            w.set(person, name);
            w.set(&format!("he{suffix}"), he.into());
            w.set(&format!("He{suffix}"), capitalised(he));
            w.set(&format!("him{suffix}"), him.into());
            w.set(&format!("his{suffix}"), his.into());
            w.set(&format!("His{suffix}"), capitalised(his));
        }
        let pick = |list: &[String], rng: &mut StdRng| list.choose(rng).expect("non-empty").clone();
        w.forms("time", &pick(&self.spec.times, rng));
        w.forms("leg", &pick(&self.spec.legs, rng));
        w.forms("place", &pick(&self.spec.places, rng));
        w.forms("container", &pick(&self.spec.containers, rng));
        w.forms("giver", &pick(&self.spec.givers, rng));
        w.set("shop", pick(&self.spec.shops, rng));
        let items: Vec<&String> = self.spec.items.choose_multiple(rng, 3).collect();
        for (i, item) in items.iter().enumerate() {
            w.set(&format!("item{}", i + 1), (*item).clone());
        }
        let verbs = match kind {
            Kind::Count => {
                let cat = self.spec.category.choose(rng).expect("categories");
                let thing = pick(&cat.things, rng);
                let (one, many) = thing.split_once('/').unwrap_or((&thing, &thing));
                w.set("thing", one.into());
                w.set("things", many.into());
                w.set("How", format!("How many {many}"));
                w.set("HowMore", format!("How many more {many}"));
                w.set("HowFewer", format!("How many fewer {many}"));
                w.set("fewer", "fewer".into());
                w.set("unit", many.into());
                w.large = cat.large;
                w.noun = (one.to_string(), many.to_string());
                w.sibling = cat
                    .things
                    .iter()
                    .filter(|t| **t != thing)
                    .collect::<Vec<_>>()
                    .choose(rng)
                    .map(|t| split_forms(t).1.to_string());
                cat.verbs.clone()
            }
            Kind::Money => {
                w.set("thing", "dollar".into());
                w.set("things", "dollars".into());
                w.set("How", "How much money".into());
                w.set("HowMore", "How much more money".into());
                w.set("HowFewer", "How much less money".into());
                w.set("fewer", "less".into());
                w.set("unit", "dollars".into());
                self.spec.money.clone()
            }
            Kind::Measure | Kind::Trip => {
                let trips: Vec<&Measure> = self.spec.measure.iter().filter(|m| m.trip).collect();
                let m = match kind {
                    Kind::Trip => *trips.choose(rng).expect("a trip's measure"),
                    _ => self.spec.measure.choose(rng).expect("measures"),
                };
                let unit = pick(&m.units, rng);
                let (one, many) = unit.split_once('/').unwrap_or((&unit, &unit));
                let stuff = pick(&m.stuff, rng);
                let with_of = |u: &str| {
                    if stuff.is_empty() {
                        u.to_string()
                    } else {
                        format!("{u} of {stuff}")
                    }
                };
                w.set("thing", with_of(one));
                w.set("things", with_of(many));
                w.set("How", format!("How many {}", with_of(many)));
                let what = if stuff.is_empty() { many } else { &stuff };
                w.set("HowMore", format!("How much more {what}"));
                w.set("HowFewer", format!("How much less {what}"));
                w.set("fewer", "less".into());
                w.set("unit", with_of(many));
                w.noun = (with_of(one), with_of(many));
                m.verbs.clone()
            }
            Kind::Mixture => {
                let m = self.spec.mixture.choose(rng).expect("mixtures");
                let unit = pick(&m.units, rng);
                let (one, many) = split_forms(&unit);
                let whole = pick(&m.whole, rng);
                w.set("whole", whole.clone());
                w.set("units", many.into());
                w.set("How", format!("How many {many} of {whole}"));
                w.set("unit", format!("{many} of {whole}"));
                w.noun = (one.into(), many.into());
                w.stuffs = m.stuff.choose_multiple(rng, 3).cloned().collect();
                for (i, stuff) in w.stuffs.clone().into_iter().enumerate() {
                    w.set(&format!("stuff{}", i + 1), stuff);
                }
                m.verbs.clone()
            }
        };
        for (name, list) in [
            ("gain", &verbs.gain),
            ("lose", &verbs.lose),
            ("act", &verbs.act),
        ] {
            w.forms(name, &pick(list, rng));
        }
        let how = w.get("How").replacen("How", "how", 1);
        w.set("how", how);
        w
    }

    /// The question with a number that does not matter: a span of time before it ("In 2
    /// weeks, …"); beside the first given count, other things of its kind ("42 turnips and 38
    /// carrots"); else a sentence about something else before its last sentence (or first,
    /// when the question comes first).
    fn with_distractor(
        &self,
        question: &str,
        kind: Kind,
        schema: Schema,
        words: &Words,
        rng: &mut StdRng,
    ) -> String {
        // A span of time that is not a rate ("In 1 week, …") before a sum or difference, whose
        // answer no "per day" could change.
        let additive = matches!(
            schema,
            Schema::Sum | Schema::Sum3 | Schema::Difference | Schema::Difference3
        );
        if additive && rng.random_bool(0.25) {
            let n = rng.random_range(1..=12);
            let unit = ["day", "week", "hour", "month", "year"]
                .choose(rng)
                .expect("units");
            let when = ["In", "Over", "During"].choose(rng).expect("words");
            let s = if n == 1 { "" } else { "s" };
            let named = ["P", "P2", "P3"]
                .iter()
                .map(|p| words.get(p))
                .any(|name| !name.is_empty() && question.starts_with(name));
            let rest = if named {
                question.to_string()
            } else {
                let mut c = question.chars();
                c.next()
                    .map(|f| f.to_lowercase().chain(c).collect())
                    .unwrap_or_default()
            };
            return format!("{when} {} {unit}{s}, {rest}", say_count(n, rng));
        }
        let first = words.get("A");
        // Where the first count is written, not inside a longer number ("4 apples" in "14 apples").
        let at = question.match_indices(first).map(|(i, _)| i).find(|&i| {
            !question[..i].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '.' || c == ',')
        });
        // Only where the other counts name their things too: "11 times as many" or "5 more
        // than Sam" beside two kinds of things would not say which.
        if let (Some(sibling), Some(at)) = (&words.sibling, at)
            && kind == Kind::Count
            && question.contains(words.get("B"))
            && !first.is_empty()
            && rng.random_bool(0.5)
        {
            let n = say_count(quantity(kind, words.large, rng) / SCALE, rng);
            let other = format!("{n} {sibling}");
            let pair = if rng.random_bool(0.5) {
                format!("{first} and {other}")
            } else {
                format!("{other} and {first}")
            };
            let rest = &question[at + first.len()..];
            return capitalised(&format!("{}{pair}{rest}", &question[..at]));
        }
        let cat = self.spec.category.choose(rng).expect("categories");
        let other = cat.things.choose(rng).expect("things");
        let many = other.split_once('/').map_or(other.as_str(), |(_, m)| m);
        if kind == Kind::Count && many == words.get("things") {
            return question.to_string();
        }
        let n = rng.random_range(2..=40);
        let (act, _) = split_forms(cat.verbs.act.choose(rng).expect("verbs"));
        let cut = question
            .trim_end()
            .rfind(". ")
            .map(|i| i + 2)
            .filter(|_| question.trim_end().ends_with('?'));
        // "He" only where the sentences before have told who he is, and no one else.
        let before = &question[..cut.unwrap_or(0)];
        let told = before.contains(words.get("P")) && !question.contains(words.get("P2"));
        let sentence = match rng.random_range(0..3) {
            0 if told => format!("{} also has {n} {many}.", words.get("He")),
            2 if told => format!("{} {act} {n} {many} too.", words.get("He")),
            _ => format!("{} {act} {n} {many} last week.", words.get("P3")),
        };
        match cut {
            Some(i) => format!("{}{sentence} {}", &question[..i], &question[i..]),
            None => format!("{sentence} {question}"),
        }
    }
}

/// One step of a worked answer: what it shows, what the calculator writes for it (for thirds
/// not the exact value), and the exact value.
struct Step {
    shown: String,
    written: String,
    value: i64,
}

impl Step {
    fn new(shown: String, value: i64) -> Option<Step> {
        let written = calculator::compute(&shown)?;
        Some(Step {
            shown,
            written,
            value,
        })
    }
}

/// The numbers of one problem, in units of 1/SCALE.
struct Numbers {
    a: i64,
    b: i64,
    c: i64,
    k: i64,
    /// A second multiplier, of a conversion's second unit.
    j: i64,
    bill: i64,
    /// The sizes of a conversion's units.
    u: i64,
    v: i64,
}

impl Numbers {
    /// `[u, v]`: the sizes of a conversion's units; `people`: whether `k` counts two to four people.
    fn draw(
        schema: Schema,
        kind: Kind,
        large: bool,
        [u, v]: [i64; 2],
        people: bool,
        rng: &mut StdRng,
    ) -> Option<Numbers> {
        let mut n = Numbers {
            a: quantity(kind, large, rng),
            b: quantity(kind, large, rng),
            c: quantity(kind, large, rng),
            k: rng.random_range(if people { 2..=4 } else { 2..=12 }) * SCALE,
            j: rng.random_range(2..=40) * SCALE,
            bill: 0,
            u,
            v,
        };
        match schema {
            Schema::Difference if n.a <= n.b => std::mem::swap(&mut n.a, &mut n.b),
            Schema::Difference3 if n.a <= n.b + n.c => n.a += n.b + n.c,
            Schema::Times | Schema::TimesThenTotal if kind == Kind::Count && !large => {
                n.a = rng.random_range(2..=30) * SCALE
            }
            // A whole share: the total is drawn as a multiple of the divisor.
            Schema::Share => {
                let each = match kind {
                    Kind::Count => rng.random_range(2..=25) * SCALE,
                    _ => n.a / 4,
                };
                let each = match kind {
                    Kind::Money => each / CENT * CENT,
                    _ => each / MILLI * MILLI,
                };
                n.a = each * n.k / SCALE;
            }
            // More of a unit than the small multipliers of groups: 2 to 40 dozen or quarters.
            Schema::Convert | Schema::ConvertTwo => n.k = rng.random_range(2..=40) * SCALE,
            // A whole number of the larger unit.
            Schema::ConvertBack => n.a = u * rng.random_range(2..=60),
            Schema::SumThenDifference if n.c >= n.a + n.b => return None,
            Schema::DifferenceThenSum if n.a <= n.b => std::mem::swap(&mut n.a, &mut n.b),
            // Two steps of counts as people's problems give them: tens, not thousands, and
            // whole shares.
            Schema::LeftTimes
            | Schema::SumTimes
            | Schema::TimesLess
            | Schema::TimesMore
            | Schema::LessTimes
            | Schema::SumShare
            | Schema::LeftShare
            | Schema::ShareLess => {
                if kind != Kind::Count {
                    return None;
                }
                n.a = rng.random_range(2..=60) * SCALE;
                n.b = rng.random_range(1..=40) * SCALE;
                let k = n.k / SCALE;
                match schema {
                    Schema::LeftTimes if n.a <= n.b => std::mem::swap(&mut n.a, &mut n.b),
                    Schema::TimesLess => {
                        n.a = rng.random_range(2..=25) * SCALE;
                        n.b = rng.random_range(1..n.a * k / SCALE) * SCALE;
                    }
                    Schema::LessTimes => {
                        n.b = rng.random_range(2..=12) * SCALE;
                        n.a = n.b * k + rng.random_range(1..=40) * SCALE;
                    }
                    Schema::SumShare | Schema::LeftShare => {
                        let whole = rng.random_range(2..=15) * k * SCALE;
                        let (a, b) = if schema == Schema::SumShare {
                            let a = rng.random_range(1..whole / SCALE) * SCALE;
                            (a, whole - a)
                        } else {
                            (whole + n.b, n.b)
                        };
                        (n.a, n.b) = (a, b);
                    }
                    Schema::ShareLess => {
                        let groups = rng.random_range(3..=20);
                        n.a = groups * k * SCALE;
                        n.b = rng.random_range(1..groups) * SCALE;
                    }
                    _ => {}
                }
            }
            Schema::Change => {
                let spent = n.a + n.b;
                n.bill = [10, 20, 50, 100, 200, 500]
                    .into_iter()
                    .map(|d| d * SCALE)
                    .find(|&d| d > spent)?;
            }
            _ => {}
        }
        (n.a > 0 && n.b > 0 && n.c > 0).then_some(n)
    }

    /// The steps of the answer; a later step writes an earlier result as the calculator wrote it.
    fn steps(&self, schema: Schema) -> Option<Vec<Step>> {
        let (a, b, c, k, j) = (self.a, self.b, self.c, self.k / SCALE, self.j / SCALE);
        let (da, db, dc) = (decimal(a), decimal(b), decimal(c));
        let steps = match schema {
            Schema::Sum => vec![Step::new(format!("{da}+{db}"), a + b)?],
            Schema::Sum3 => vec![Step::new(format!("{da}+{db}+{dc}"), a + b + c)?],
            Schema::Difference => vec![Step::new(format!("{da}-{db}"), a - b)?],
            Schema::Difference3 => vec![Step::new(format!("{da}-{db}-{dc}"), a - b - c)?],
            Schema::Times => vec![Step::new(format!("{da}*{k}"), a * k)?],
            Schema::Share => vec![Step::new(format!("{da}/{k}"), a / k)?],
            Schema::Convert => vec![Step::new(format!("{k}*{}", decimal(self.u)), k * self.u)?],
            Schema::ConvertBack => {
                vec![Step::new(
                    format!("{da}/{}", decimal(self.u)),
                    a * SCALE / self.u,
                )?]
            }
            Schema::ConvertTwo => {
                let first = Step::new(format!("{k}*{}", decimal(self.u)), k * self.u)?;
                let second = Step::new(format!("{j}*{}", decimal(self.v)), j * self.v)?;
                let sum = format!("{}+{}", first.written, second.written);
                let third = Step::new(sum, k * self.u + j * self.v)?;
                vec![first, second, third]
            }
            Schema::SumThenDifference => {
                let first = Step::new(format!("{da}+{db}"), a + b)?;
                let second = Step::new(format!("{}-{dc}", first.written), a + b - c)?;
                vec![first, second]
            }
            Schema::DifferenceThenSum => {
                let first = Step::new(format!("{da}-{db}"), a - b)?;
                let second = Step::new(format!("{}+{dc}", first.written), a - b + c)?;
                vec![first, second]
            }
            Schema::MoreThenTotal => {
                let first = Step::new(format!("{da}+{db}"), a + b)?;
                let second = Step::new(format!("{da}+{}", first.written), a + a + b)?;
                vec![first, second]
            }
            Schema::TimesThenTotal => {
                let first = Step::new(format!("{da}*{k}"), a * k)?;
                let second = Step::new(format!("{da}+{}", first.written), a + a * k)?;
                vec![first, second]
            }
            Schema::LeftTimes | Schema::SumTimes | Schema::LeftShare | Schema::SumShare => {
                let (op, first) = match schema {
                    Schema::LeftTimes | Schema::LeftShare => ('-', a - b),
                    _ => ('+', a + b),
                };
                let first = Step::new(format!("{da}{op}{db}"), first)?;
                let second = match schema {
                    Schema::LeftTimes | Schema::SumTimes => {
                        Step::new(format!("{}*{k}", first.written), first.value * k)?
                    }
                    _ => Step::new(format!("{}/{k}", first.written), first.value / k)?,
                };
                vec![first, second]
            }
            Schema::TimesLess | Schema::TimesMore => {
                let first = Step::new(format!("{da}*{k}"), a * k)?;
                let second = match schema {
                    Schema::TimesLess => Step::new(format!("{}-{db}", first.written), a * k - b)?,
                    _ => Step::new(format!("{}+{db}", first.written), a * k + b)?,
                };
                vec![first, second]
            }
            Schema::LessTimes => {
                let first = Step::new(format!("{db}*{k}"), b * k)?;
                let second = Step::new(format!("{da}-{}", first.written), a - b * k)?;
                vec![first, second]
            }
            Schema::ShareLess => {
                let first = Step::new(format!("{da}/{k}"), a / k)?;
                let second = Step::new(format!("{}-{db}", first.written), a / k - b)?;
                vec![first, second]
            }
            Schema::Change => {
                let first = Step::new(format!("{da}+{db}"), a + b)?;
                let bill = decimal(self.bill);
                let second = Step::new(format!("{bill}-{}", first.written), self.bill - a - b)?;
                vec![first, second]
            }
        };
        steps.iter().all(|s| s.value > 0).then_some(steps)
    }
}

/// A quantity of a kind, in units of 1/SCALE: counts mostly small, sometimes in the hundreds or
/// the thousands (half of the time for things that come in thousands); money in whole dollars
/// or with cents; measures in tenths, quarters, eighths or hundredths, or in sixths, ninths or
/// twelfths, which people's problems give as the doubles computers print and mostly below one.
fn quantity(kind: Kind, large: bool, rng: &mut StdRng) -> i64 {
    match kind {
        Kind::Count => {
            // Things that come in thousands (books in a library, a farm's chickens) are counted
            // in them half of the time, others one time in twenty: people's problems give
            // numbers of four to six digits in about one problem in six.
            let n = match (rng.random_range(0..20u32), large) {
                (0..=7, true) | (0..=13, false) => rng.random_range(2..=99),
                (8 | 9, true) | (14..=16, false) => rng.random_range(100..=999),
                (10.., true) | (17, false) => {
                    // Thousands to hundreds of thousands, each as often.
                    let digits = rng.random_range(4..=6);
                    rng.random_range(10i64.pow(digits - 1)..10i64.pow(digits))
                }
                (_, false) => rng.random_range(10..=200),
            };
            n * SCALE
        }
        Kind::Money => {
            let dollars = rng.random_range(1..=150);
            let cents = if rng.random_bool(0.35) {
                0
            } else {
                rng.random_range(1..=99)
            };
            dollars * SCALE + cents * CENT
        }
        Kind::Measure | Kind::Mixture | Kind::Trip => {
            let (frac, fraction) = match rng.random_range(0..7) {
                0 => (rng.random_range(1..=9) * 100 * MILLI, false),
                1 => (rng.random_range(1..=3) * 250 * MILLI, false),
                2 => (rng.random_range(1..=7) * 125 * MILLI, false),
                3 => (rng.random_range(1..=99) * 10 * MILLI, false),
                4 => (rng.random_range(1..=5) * SCALE / 6, true),
                5 => (rng.random_range(1..=11) * SCALE / 12, true),
                _ => (rng.random_range(1..=8) * SCALE / 9, true),
            };
            let whole = if rng.random_bool(if fraction { 0.8 } else { 0.5 }) {
                0
            } else {
                rng.random_range(1..=9)
            };
            whole * SCALE + frac
        }
    }
}

/// A value as a problem states it: thousandths as the calculator writes them (no trailing
/// zeros); thirds, sixths, ninths and twelfths as the nearest double, the way computers print
/// them ("0.3333333333333333", "2.3333333333333335"), as people's problems often give fractions.
fn decimal(v: i64) -> String {
    if v % MILLI != 0 {
        return (v as f64 / SCALE as f64).to_string();
    }
    let (whole, frac) = (v / SCALE, (v % SCALE).abs() / MILLI);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{}", format!("{frac:03}").trim_end_matches('0'))
    }
}

/// A count, sometimes with thousands separators.
fn grouped(n: i64, rng: &mut StdRng) -> String {
    if n < 1000 || rng.random_bool(0.5) {
        return n.to_string();
    }
    with_thousands(&n.to_string())
}

/// Names as a sentence lists them: "Ann and Joe", "Ann, Joe(,) and Sam".
fn listed(names: &[String], rng: &mut StdRng) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [rest @ .., last] => {
            let comma = if rest.len() > 1 && rng.random_bool(0.5) {
                ","
            } else {
                ""
            };
            format!("{}{comma} and {last}", rest.join(", "))
        }
    }
}

/// A small count, sometimes as a word.
fn say_count(n: i64, rng: &mut StdRng) -> String {
    match COUNT_WORDS.get(n as usize) {
        Some(w) if rng.random_bool(NUMBER_WORD_RATE) => w.to_string(),
        _ => grouped(n, rng),
    }
}

/// Each of `items` parsed, or the first refusal.
fn parse_each<T>(items: &[String], parse: fn(&str) -> Result<T, String>) -> Result<Vec<T>, String> {
    items.iter().map(|item| parse(item)).collect()
}

fn split_forms(s: &str) -> (&str, &str) {
    s.split_once('/').unwrap_or((s, s))
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().chain(c).collect())
        .unwrap_or_default()
}

/// The words a frame's `{name}` placeholders are filled with; `{a|b}` picks one at each use.
#[derive(Default)]
struct Words {
    values: BTreeMap<String, String>,
    /// The counted noun (singular, plural).
    noun: (String, String),
    /// Whether counts in the thousands fit the things.
    large: bool,
    /// Other things of the counted things' kind (plural), for a number that does not matter.
    sibling: Option<String>,
    /// A mixture's kinds of stuff, one for each given quantity.
    stuffs: Vec<String>,
}

impl Words {
    fn set(&mut self, name: &str, value: String) {
        self.values.insert(name.to_string(), value);
    }

    fn get(&self, name: &str) -> &str {
        self.values.get(name).map_or("", String::as_str)
    }

    /// `past/base` (or more forms) as `{name}`, `{name_base}`, `{name3}`.
    fn forms(&mut self, name: &str, entry: &str) {
        let forms: Vec<&str> = entry.split('/').collect();
        self.set(name, forms[0].to_string());
        self.set(
            &format!("{name}_base"),
            forms.get(1).unwrap_or(&forms[0]).to_string(),
        );
        for (i, f) in forms.iter().enumerate().skip(1) {
            self.set(&format!("{name}{}", i + 1), f.to_string());
        }
    }

    /// The `i`th quantity with its noun: "14 apples", "$6.95", "0.5 cup of flour", "0.5 of a
    /// cup of raisins".
    fn quantity(&self, v: i64, kind: Kind, i: usize, rng: &mut StdRng) -> String {
        match kind {
            Kind::Count => {
                let n = v / SCALE;
                let noun = if n == 1 { &self.noun.0 } else { &self.noun.1 };
                format!("{} {noun}", say_count(n, rng))
            }
            Kind::Money => self.bare(v, kind, rng),
            Kind::Measure | Kind::Mixture | Kind::Trip => {
                let noun = if v <= SCALE {
                    &self.noun.0
                } else {
                    &self.noun.1
                };
                let noun = match self.stuffs.get(i) {
                    Some(stuff) => format!("{noun} of {stuff}"),
                    None => noun.clone(),
                };
                // People write a part of a unit both ways: "0.5 cup", "0.5 of a cup".
                if v < SCALE && rng.random_bool(0.4) {
                    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
                        "an"
                    } else {
                        "a"
                    };
                    format!("{} of {article} {noun}", decimal(v))
                } else {
                    format!("{} {noun}", decimal(v))
                }
            }
        }
    }

    /// A quantity without its noun: "14", "$6.95", "0.5".
    fn bare(&self, v: i64, kind: Kind, rng: &mut StdRng) -> String {
        match kind {
            Kind::Count => say_count(v / SCALE, rng),
            Kind::Money => {
                let amount = if v % SCALE == 0 {
                    decimal(v)
                } else {
                    format!("{}.{:02}", v / SCALE, (v % SCALE) / CENT)
                };
                if v % SCALE == 0 && rng.random_bool(0.2) {
                    format!("{amount} dollars")
                } else if rng.random_bool(0.1) {
                    format!("$ {amount}")
                } else {
                    format!("${amount}")
                }
            }
            Kind::Measure | Kind::Mixture | Kind::Trip => decimal(v),
        }
    }

    /// A frame with its placeholders filled; the first letter of the result capitalised.
    fn fill(&self, frame: &str, rng: &mut StdRng) -> String {
        capitalised(&self.fill_inner(frame, rng))
    }

    /// `{name}` is a word; `{a|b}` picks one option, which may hold placeholders of its own.
    fn fill_inner(&self, frame: &str, rng: &mut StdRng) -> String {
        let mut out = String::new();
        let mut rest = frame;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let Some(close) = matching_brace(&rest[open..]) else {
                break;
            };
            let inner = &rest[open + 1..open + close];
            let options = top_level_options(inner);
            if options.len() > 1 {
                let option = options.choose(rng).expect("options");
                out.push_str(&self.fill_inner(option, rng));
            } else {
                out.push_str(self.get(inner));
            }
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        out
    }
}

/// The offset of the `}` that closes the `{` at the start of `s`.
fn matching_brace(s: &str) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `a|{b|c} d|e` as `a`, `{b|c} d`, `e`: the options of one alternative, nested ones kept whole.
fn top_level_options(inner: &str) -> Vec<&str> {
    let mut options = Vec::new();
    let (mut depth, mut start) = (0usize, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '|' if depth == 0 => {
                options.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    options.push(&inner[start..]);
    options
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn many(n: usize) -> Vec<Problem> {
        let mut rng = StdRng::seed_from_u64(7);
        (0..n).map(|_| sample(&mut rng)).collect()
    }

    #[test]
    fn every_placeholder_of_every_frame_is_filled() {
        for p in many(3000) {
            for text in [&p.question, &p.answer] {
                assert!(
                    !text.contains('{') && !text.contains('}'),
                    "unfilled: {text}"
                );
                assert!(
                    !text.contains("  ") && !text.contains(" ."),
                    "spacing: {text}"
                );
            }
        }
    }

    #[test]
    fn an_option_may_hold_placeholders_and_alternatives_of_its_own() {
        let mut words = Words::default();
        words.set("P", "Sam".into());
        words.set("place", "box".into());
        let mut rng = StdRng::seed_from_u64(3);
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            seen.insert(words.fill("{P} has 3{| in the {place}| {in|on} a {place}}.", &mut rng));
        }
        let expected = [
            "Sam has 3 in a box.",
            "Sam has 3 in the box.",
            "Sam has 3 on a box.",
            "Sam has 3.",
        ];
        assert_eq!(
            seen.iter().map(String::as_str).collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn every_step_is_what_the_calculator_computes_and_the_final_is_the_last() {
        for p in many(3000) {
            let mut last = None;
            for part in p.answer.split("<<").skip(1) {
                let (expr, rest) = part.split_once('=').expect("an `=` in every step");
                let written = rest.split_once(">>").expect("closed").0;
                assert_eq!(
                    calculator::compute(expr).as_deref(),
                    Some(written),
                    "{}",
                    p.answer
                );
                last = Some(written.to_string());
            }
            assert_eq!(last.as_deref(), Some(p.r#final.as_str()), "{}", p.answer);
            assert!(p.answer.ends_with(&format!("#### {}", p.r#final)));
        }
    }

    #[test]
    fn measures_come_in_thirds_ninths_and_twelfths_and_counts_in_thousands_too() {
        let problems = many(6000);
        let thirds = problems
            .iter()
            .find(|p| p.question.contains("3333333333333"))
            .expect("a third, written as a double");
        // The calculator's result of the double, to six decimals the exact third's.
        assert!(thirds.answer.contains("<<"), "{}", thirds.answer);
        for part in ["1111111111111", "08333333333333", " of a ", " of an "] {
            assert!(
                problems.iter().any(|p| p.question.contains(part)),
                "no {part:?}: ninths, twelfths and \"0.5 of a cup\" are written too"
            );
        }
        let thousands = problems
            .iter()
            .filter(|p| {
                let digits = |w: &str| w.chars().filter(char::is_ascii_digit).count();
                p.question
                    .split_whitespace()
                    .any(|w| digits(w) >= 4 && !w.contains('.'))
            })
            .count();
        assert!(
            thousands * 50 >= problems.len(),
            "{thousands} of {}",
            problems.len()
        );
    }

    #[test]
    fn a_mixture_gives_each_quantity_its_own_stuff_and_asks_for_the_whole() {
        for p in composed("mixture_three", 8, 300) {
            // " of milk" but not " of milkshake".
            let names = |text: &str, word: &str| {
                text.match_indices(&format!(" of {word}"))
                    .any(|(i, m)| !text[i + m.len()..].starts_with(char::is_alphabetic))
            };
            let fits = |m: &&Mixture| {
                let named = m.stuff.iter().filter(|s| names(&p.question, s));
                named.count() == 3 && m.whole.iter().any(|w| names(&p.answer, w))
            };
            assert!(
                COMPOSER.spec.mixture.iter().any(|m| fits(&m)),
                "{}\n{}",
                p.question,
                p.answer
            );
            let sum = p.answer.split("<<").nth(1).expect("a step");
            assert_eq!(
                sum.split('=').next().unwrap().matches('+').count(),
                2,
                "{}",
                p.answer
            );
        }
    }

    /// The problems of `n` draws of the situation `name` (at least half of them: a few draws
    /// may be refused).
    fn composed(name: &str, seed: u64, n: usize) -> Vec<Problem> {
        let found = COMPOSER.situations.iter().find(|s| s.name == name);
        let situation = found.unwrap_or_else(|| panic!("no situation {name}"));
        let mut rng = StdRng::seed_from_u64(seed);
        let problems: Vec<Problem> = (0..n)
            .filter_map(|_| COMPOSER.compose(situation, &mut rng))
            .collect();
        assert!(problems.len() * 2 >= n, "{name}: {} of {n}", problems.len());
        problems
    }

    /// The most names a text lists in a row ("Ann, Joe and Sam": 3).
    fn longest_list_of_names(text: &str) -> usize {
        let names = &COMPOSER.spec.names;
        let is_name = |w: &str| names.female.iter().chain(&names.male).any(|n| n == w);
        let (mut best, mut run, mut open) = (0, 0, false);
        for word in text.split(' ') {
            let bare = word.trim_end_matches(|c: char| !c.is_alphanumeric());
            if is_name(bare) {
                run = if open { run + 1 } else { 1 };
                open = word.ends_with(',');
            } else if word == "and" && run > 0 {
                open = true;
            } else {
                (run, open) = (0, false);
            }
            best = best.max(run);
        }
        best
    }

    #[test]
    fn people_named_are_the_count_that_multiplies_or_shares() {
        for name in ["each_of_people", "shared_by_people"] {
            for p in composed(name, 9, 200) {
                let listed = longest_list_of_names(&p.question);
                let step = p.answer.split("<<").nth(1).expect("a step");
                let k = step
                    .split(['*', '/'])
                    .nth(1)
                    .and_then(|k| k.split('=').next());
                assert_eq!(
                    k,
                    Some(listed.to_string().as_str()),
                    "{}\n{}",
                    p.question,
                    p.answer
                );
            }
        }
    }

    #[test]
    fn two_kinds_of_coin_are_valued_apart_and_then_summed() {
        for p in composed("two_coins_in_dollars", 10, 200) {
            let results: Vec<f64> = p
                .answer
                .split(">>")
                .skip(1)
                .map(|r| r.split_whitespace().next().unwrap().parse().unwrap())
                .collect();
            assert_eq!(results.len(), 3, "{}", p.answer);
            assert!(
                (results[0] + results[1] - results[2]).abs() < 1e-9,
                "{}",
                p.answer
            );
            let coins = ["pennies", "nickels", "dimes", "quarters", "half-dollars"];
            let named = coins.iter().filter(|c| p.question.contains(*c)).count();
            assert_eq!(named, 2, "{}", p.question);
        }
    }

    #[test]
    fn a_part_of_a_mixture_is_the_whole_less_the_other_parts() {
        for p in composed("mixture_part", 11, 200) {
            let step = p.answer.split("<<").nth(1).expect("a step");
            assert_eq!(
                step.split('=').next().unwrap().matches('-').count(),
                1,
                "{}",
                p.answer
            );
            // The part the answer names is the one the question's last clause asks for.
            let line = p.answer.lines().next().unwrap().trim_end_matches('.');
            let part = line.rsplit(" of ").next().unwrap();
            let asked = p.question.rsplit([',', '.']).next().unwrap();
            assert!(asked.contains(part), "{}\n{}", p.question, p.answer);
        }
    }

    #[test]
    fn every_situation_and_kind_is_drawn() {
        let problems = many(6000);
        let text: String = problems.iter().map(|p| p.question.as_str()).collect();
        assert!(text.contains('$'), "no money");
        assert!(
            problems.iter().any(|p| p.r#final.contains('.')),
            "no decimals"
        );
        assert!(
            problems.iter().any(|p| p.steps == 2),
            "no two-step problems"
        );
        assert!(
            text.contains(" seven ") || text.contains(" three "),
            "no number words"
        );
        assert!(situation_names().len() >= 20);
    }

    #[test]
    fn other_things_of_the_kind_may_stand_beside_the_first_count() {
        let mut words = Words::default();
        words.set("A", "4 apples".into());
        words.set("B", "14 apples".into());
        words.set("He", "He".into());
        words.set("P3", "Tim".into());
        words.sibling = Some("pears".into());
        let question = "Ann gave Sam 14 apples. He had 4 apples. How many apples does he have?";
        let mut rng = StdRng::seed_from_u64(5);
        let mut beside = 0;
        for _ in 0..200 {
            // (A schema that takes no span of time before it.)
            let q =
                COMPOSER.with_distractor(question, Kind::Count, Schema::Times, &words, &mut rng);
            assert!(q.contains("gave Sam 14 apples. "), "not inside 14: {q}");
            let had = q
                .split_once("He had ")
                .unwrap()
                .1
                .split_once(". ")
                .unwrap()
                .0;
            if had != "4 apples" {
                let other = had
                    .strip_prefix("4 apples and ")
                    .or_else(|| had.strip_suffix(" and 4 apples"))
                    .unwrap_or_else(|| panic!("{q}"));
                let (n, things) = other.split_once(' ').unwrap();
                assert_eq!(things, "pears", "{q}");
                assert!(!n.is_empty(), "{q}");
                beside += 1;
            }
        }
        assert!(
            (40..=160).contains(&beside),
            "{beside} of 200 beside the count"
        );
        // Money has no other things of its kind: a sentence of its own only.
        for _ in 0..50 {
            let q =
                COMPOSER.with_distractor(question, Kind::Money, Schema::Times, &words, &mut rng);
            assert!(q.contains("He had 4 apples. "), "{q}");
        }
    }

    #[test]
    fn a_span_of_time_may_come_before_a_sum_or_difference() {
        let mut words = Words::default();
        words.set("P", "Ann".into());
        let mut rng = StdRng::seed_from_u64(6);
        let mut spans = 0;
        for (question, schema) in [
            ("Ann had 4 apples. How many?", Schema::Sum),
            ("There were 4 apples. How many?", Schema::Difference),
            ("Ann had 4 apples. How many?", Schema::Share),
        ] {
            for _ in 0..200 {
                let q = COMPOSER.with_distractor(question, Kind::Count, schema, &words, &mut rng);
                let Some((span, rest)) = q.split_once(", ") else {
                    continue;
                };
                let mut span = span.split(' ');
                assert!(
                    ["In", "Over", "During"].contains(&span.next().unwrap()),
                    "{q}"
                );
                assert_eq!(span.count(), 2, "{q}");
                assert_ne!(
                    schema,
                    Schema::Share,
                    "a span of time could be a rate's: {q}"
                );
                let expected = question.replace("There", "there");
                assert_eq!(rest, expected, "{q}");
                spans += 1;
            }
        }
        assert!((50..=150).contains(&spans), "{spans} of 400");
    }

    #[test]
    fn three_quantities_may_join_or_leave_in_one_step() {
        let problems = many(6000);
        for schema in ["+", "-"] {
            let three = problems.iter().find(|p| {
                p.steps == 1 && {
                    let expr = p.answer.split("<<").nth(1).unwrap_or("");
                    let expr = expr.split('=').next().unwrap_or("");
                    expr.matches(schema).count() == 2 && !expr.contains(['*', '/'])
                }
            });
            assert!(three.is_some(), "no one-step {schema} of three quantities");
        }
        assert!(situation_names().contains(&"separate_twice"));
    }

    #[test]
    fn equal_groups_and_a_change_make_two_steps_of_whole_counts() {
        let mut rng = StdRng::seed_from_u64(11);
        let two_step = [
            ("left_at_a_price", "-", "*"),
            ("together_at_a_price", "+", "*"),
            ("groups_then_less", "*", "-"),
            ("groups_then_more", "*", "+"),
            ("given_to_each", "*", "-"),
            ("together_then_shared", "+", "/"),
            ("left_then_shared", "-", "/"),
            ("packed_then_less", "/", "-"),
        ];
        for (name, first, second) in two_step {
            let situation = COMPOSER
                .situations
                .iter()
                .find(|s| s.name == name)
                .unwrap_or_else(|| panic!("no situation {name}"));
            let problems: Vec<Problem> = (0..200)
                .filter_map(|_| COMPOSER.compose(situation, &mut rng))
                .collect();
            assert!(problems.len() > 150, "{name}: {} of 200", problems.len());
            for p in problems {
                let exprs: Vec<&str> = p.answer.split("<<").skip(1).collect();
                assert_eq!(exprs.len(), 2, "{name}: {}", p.answer);
                assert!(
                    exprs[0].split('=').next().unwrap().contains(first),
                    "{}",
                    p.answer
                );
                assert!(
                    exprs[1].split('=').next().unwrap().contains(second),
                    "{}",
                    p.answer
                );
                let answer: i64 = p.r#final.parse().unwrap_or_else(|_| panic!("{}", p.answer));
                assert!(answer > 0, "{name}: {}", p.answer);
            }
        }
    }

    #[test]
    fn a_bad_lexicon_is_refused_with_its_reason() {
        let text = include_str!("compose.toml").replace("schema = \"a+b\"", "schema = \"a^b\"");
        let err = Composer::parse(&text).err().expect("refused");
        assert!(err.contains("a^b"), "{err}");
        let text = include_str!("compose.toml").replace("dozen/dozen=12", "dozen/dozen=twelve");
        let err = Composer::parse(&text).err().expect("refused");
        assert!(err.contains("dozen/dozen=twelve"), "{err}");
    }
}
