//! Word-problem families written as data (`families/*.toml`).
//!
//! A family is one equation structure (say `(a-b)+c`) with several phrasings. Its TOML table gives
//! `name`, `split` (`train`, the default, or `test`: held out, its structure its own), `weight` (how
//! often it is drawn against a family of weight 1, default 1; a fraction where the variants of one
//! scenario share the weight of one family, as in `stories.toml`), the ranges of the given numbers
//! (`vars`) or the lists they are picked from (`values`: a bill of $10, $20, $50, $100 or $200),
//! derived numbers (`let`), word choices (`words`, forms split by `/` and used as
//! `{word.2}`), extra conditions (`require`), the question phrasings and the worked answer, whose
//! `{x=EXPR}` placeholders are the calculation steps, rendered GSM8K-style as
//! `47-5 = <<47-5=42>>42`; `{a|b}` picks one at each use, `{name}`, `{he}`, `{his}`, `{name2}` … a
//! person. Training families may share a structure (the basics say one operation many ways).
//!
//! (Over 800 lines with its tests, which check every family of the TOML files.)

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use rand::Rng;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use serde::Deserialize;

use super::problem::{MAX_DRAWS, NAMES, Person, Problem, Split};

/// The embedded family files, by name (for error messages).
const SOURCES: &[(&str, &str)] = &[
    ("additive.toml", include_str!("families/additive.toml")),
    (
        "subtractive.toml",
        include_str!("families/subtractive.toml"),
    ),
    (
        "multiplicative.toml",
        include_str!("families/multiplicative.toml"),
    ),
    ("everyday.toml", include_str!("families/everyday.toml")),
    ("basics.toml", include_str!("families/basics.toml")),
    ("stories.toml", include_str!("families/stories.toml")),
];

/// The largest result a calculation step may have.
const MAX_RESULT: i64 = 100_000;

/// Probability that an irrelevant sentence is added to a question.
const DISTRACTOR_RATE: f64 = 0.25;

/// Irrelevant facts; `{who}` is a person not in the problem, `{k}` a number.
const DISTRACTORS: &[&str] = &[
    "{who} is {k} years old.",
    "{who} lives {k} miles from the city.",
    "It rained on {k} days last month.",
    "{who} has read {k} books this year.",
    "The town library has {k} chairs.",
    "{who}'s street has {k} houses.",
    "The school bus holds {k} children.",
    "{who} scored {k} points in a game last week.",
    "The park has {k} benches.",
    "{who} planted {k} tulips last spring.",
];

/// Every family of the embedded files, parsed and checked once.
pub static FAMILIES: LazyLock<Vec<Family>> = LazyLock::new(|| {
    let mut out = Vec::new();
    for (file, text) in SOURCES {
        match parse_file(text) {
            Ok(fs) => out.extend(fs),
            Err(e) => panic!("src/tasks/families/{file}: {e}"),
        }
    }
    out
});

/// The families of a split.
pub fn families(split: Split) -> impl Iterator<Item = &'static Family> {
    FAMILIES.iter().filter(move |f| f.split == split)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    family: Vec<FamilySpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FamilySpec {
    name: String,
    #[serde(default)]
    split: Option<String>,
    #[serde(default = "default_weight")]
    weight: f64,
    #[serde(default)]
    vars: BTreeMap<String, [i64; 2]>,
    #[serde(default)]
    values: BTreeMap<String, Vec<i64>>,
    #[serde(default, rename = "let")]
    lets: Vec<String>,
    #[serde(default)]
    words: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    require: Vec<String>,
    question: Vec<String>,
    answer: Vec<String>,
}

fn default_weight() -> f64 {
    1.0
}

/// One parsed family.
#[derive(Debug)]
pub struct Family {
    pub name: String,
    pub split: Split,
    /// How often it is drawn, against the other families' weights and the composer's.
    pub weight: f64,
    vars: Vec<(String, i64, i64)>,
    values: Vec<(String, Vec<i64>)>,
    lets: Vec<(String, Expr)>,
    words: Vec<(String, Vec<Vec<String>>)>,
    require: Vec<(Expr, Cmp, Expr)>,
    question: Vec<Vec<Piece>>,
    answer: Vec<Vec<Piece>>,
}

/// A piece of a phrasing.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    /// A number or a word (with its form, 1-based).
    Value(String, usize),
    /// A calculation step binding a name.
    Step(String, Expr),
    /// One of several alternatives, chosen at each occurrence.
    Choice(Vec<String>),
    /// Person `index` (0..3) as name or pronoun.
    Person(usize, Pronoun),
}

#[derive(Debug, Clone, Copy)]
enum Pronoun {
    Name,
    He,
    HeCap,
    Him,
    His,
    HisCap,
}

#[derive(Debug, Clone, Copy)]
enum Cmp {
    Gt,
    Lt,
    Ge,
    Le,
    Eq,
    Ne,
}

/// An arithmetic expression, kept as its tokens for rendering and as a tree for evaluation.
#[derive(Debug, Clone)]
struct Expr {
    tokens: Vec<Tok>,
    tree: Node,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(i64),
    Name(String),
    Op(char),
    Open,
    Close,
}

#[derive(Debug, Clone)]
enum Node {
    Num(i64),
    Name(String),
    Bin(char, Box<Node>, Box<Node>),
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

fn parse_file(text: &str) -> Result<Vec<Family>, String> {
    let spec: FileSpec = toml::from_str(text).map_err(|e| e.to_string())?;
    spec.family
        .into_iter()
        .map(|f| {
            let name = f.name.clone();
            Family::parse(f).map_err(|e| format!("family `{name}`: {e}"))
        })
        .collect()
}

impl Family {
    fn parse(f: FamilySpec) -> Result<Self, String> {
        let split = match f.split.as_deref() {
            None | Some("train") => Split::Train,
            Some("test") => Split::Test,
            Some(s) => return Err(format!("split must be \"train\" or \"test\", not {s:?}")),
        };
        let mut known: Vec<String> = Vec::new();
        let mut vars = Vec::new();
        for (name, [lo, hi]) in f.vars {
            if !(1..=1000).contains(&lo) || !(lo..=1000).contains(&hi) {
                return Err(format!(
                    "var `{name}`: range [{lo}, {hi}] is not within 1..=1000"
                ));
            }
            known.push(name.clone());
            vars.push((name, lo, hi));
        }
        let mut values = Vec::new();
        for (name, list) in f.values {
            if list.is_empty() || list.iter().any(|v| !(1..=1000).contains(v)) {
                return Err(format!(
                    "values `{name}`: {list:?} is empty or not within 1..=1000"
                ));
            }
            if known.contains(&name) {
                return Err(format!("values `{name}`: `{name}` is also a var"));
            }
            known.push(name.clone());
            values.push((name, list));
        }
        let mut lets = Vec::new();
        for l in &f.lets {
            let (name, expr) = l
                .split_once('=')
                .ok_or_else(|| format!("let {l:?}: expected `name = expression`"))?;
            let expr = Expr::parse(expr.trim(), &known)?;
            let name = ident(name.trim())?;
            known.push(name.clone());
            lets.push((name, expr));
        }
        let mut words = Vec::new();
        for (name, entries) in f.words {
            if entries.is_empty() {
                return Err(format!("words `{name}` has no entries"));
            }
            let forms: Vec<Vec<String>> = entries
                .iter()
                .map(|e| e.split('/').map(str::to_string).collect())
                .collect();
            words.push((name, forms));
        }
        let word_forms = |name: &str| -> Option<usize> {
            words
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, fs)| fs.iter().map(Vec::len).min().unwrap_or(0))
        };
        let require = f
            .require
            .iter()
            .map(|r| parse_condition(r, &known))
            .collect::<Result<_, _>>()?;
        if f.question.is_empty() || f.answer.is_empty() {
            return Err("needs at least one question phrasing and one answer line".into());
        }
        let question = f
            .question
            .iter()
            .map(|q| parse_template(q, &known, &word_forms, false))
            .collect::<Result<Vec<_>, _>>()?;
        let mut answer = Vec::new();
        for line in &f.answer {
            let pieces = parse_template(line, &known, &word_forms, true)?;
            for p in &pieces {
                if let Piece::Step(name, _) = p {
                    known.push(name.clone());
                }
            }
            answer.push(pieces);
        }
        let steps = answer
            .iter()
            .flatten()
            .filter(|p| matches!(p, Piece::Step(..)))
            .count();
        if !(1..=4).contains(&steps) {
            return Err(format!("has {steps} calculation steps; 1 to 4 are allowed"));
        }
        if !(f.weight > 0.0 && f.weight.is_finite()) {
            return Err(format!(
                "weight must be a positive number, not {}",
                f.weight
            ));
        }
        Ok(Family {
            name: f.name,
            split,
            weight: f.weight,
            vars,
            values,
            lets,
            words,
            require,
            question,
            answer,
        })
    }
}

fn ident(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "{s:?} is not a valid name (lowercase letters, digits, _)"
        ))
    }
}

fn parse_condition(s: &str, known: &[String]) -> Result<(Expr, Cmp, Expr), String> {
    for (sym, cmp) in [
        (">=", Cmp::Ge),
        ("<=", Cmp::Le),
        ("==", Cmp::Eq),
        ("!=", Cmp::Ne),
        (">", Cmp::Gt),
        ("<", Cmp::Lt),
    ] {
        if let Some((l, r)) = s.split_once(sym) {
            return Ok((
                Expr::parse(l.trim(), known)?,
                cmp,
                Expr::parse(r.trim(), known)?,
            ));
        }
    }
    Err(format!("require {s:?}: no comparison (> < >= <= == !=)"))
}

/// Splits a phrasing into pieces; `steps` allows `{x=EXPR}`.
fn parse_template(
    s: &str,
    known: &[String],
    word_forms: &dyn Fn(&str) -> Option<usize>,
    steps: bool,
) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut known = known.to_vec();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("{s:?}: unclosed `{{`"))?
            + open;
        let inner = &rest[open + 1..close];
        out.push(
            placeholder(inner, &mut known, word_forms, steps).map_err(|e| format!("{s:?}: {e}"))?,
        );
        rest = &rest[close + 1..];
    }
    if rest.contains('}') {
        return Err(format!("{s:?}: `}}` without `{{`"));
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

fn placeholder(
    inner: &str,
    known: &mut Vec<String>,
    word_forms: &dyn Fn(&str) -> Option<usize>,
    steps: bool,
) -> Result<Piece, String> {
    if inner.contains('|') {
        return Ok(Piece::Choice(
            inner.split('|').map(str::to_string).collect(),
        ));
    }
    if let Some((name, expr)) = inner.split_once('=') {
        if !steps {
            return Err(format!(
                "`{{{inner}}}`: calculation steps belong in answer lines"
            ));
        }
        let name = ident(name.trim())?;
        let expr = Expr::parse(expr.trim(), known)?;
        known.push(name.clone());
        return Ok(Piece::Step(name, expr));
    }
    if let Some(p) = person(inner) {
        return Ok(p);
    }
    let (name, form) = match inner.split_once('.') {
        Some((n, f)) => (
            n,
            f.parse::<usize>()
                .map_err(|_| format!("`{{{inner}}}`: bad form"))?,
        ),
        None => (inner, 1),
    };
    if let Some(forms) = word_forms(name) {
        if form == 0 || form > forms {
            return Err(format!(
                "`{{{inner}}}`: the words of `{name}` have {forms} form(s)"
            ));
        }
        return Ok(Piece::Value(name.to_string(), form));
    }
    if form == 1 && known.iter().any(|k| k == name) {
        return Ok(Piece::Value(name.to_string(), 1));
    }
    Err(format!("`{{{inner}}}` is not defined"))
}

fn person(s: &str) -> Option<Piece> {
    let (base, index) = match s.strip_suffix(['2', '3']) {
        Some(b) => (b, if s.ends_with('2') { 1 } else { 2 }),
        None => (s, 0),
    };
    let pronoun = match base {
        "name" => Pronoun::Name,
        "he" => Pronoun::He,
        "He" => Pronoun::HeCap,
        "him" => Pronoun::Him,
        "his" => Pronoun::His,
        "His" => Pronoun::HisCap,
        _ => return None,
    };
    Some(Piece::Person(index, pronoun))
}

impl Expr {
    fn parse(s: &str, known: &[String]) -> Result<Self, String> {
        let tokens = lex(s)?;
        for t in &tokens {
            if let Tok::Name(n) = t
                && !known.iter().any(|k| k == n)
            {
                return Err(format!("expression {s:?}: `{n}` is not defined before it"));
            }
        }
        let mut pos = 0;
        let tree =
            parse_sum(&tokens, &mut pos).ok_or_else(|| format!("expression {s:?} is malformed"))?;
        if pos != tokens.len() {
            return Err(format!("expression {s:?} is malformed"));
        }
        Ok(Expr { tokens, tree })
    }

    fn eval(&self, env: &HashMap<String, i64>) -> Option<i64> {
        eval(&self.tree, env)
    }

    /// The expression with names replaced by their values, without spaces.
    fn render(&self, env: &HashMap<String, i64>) -> String {
        self.tokens
            .iter()
            .map(|t| match t {
                Tok::Num(n) => n.to_string(),
                Tok::Name(n) => env[n].to_string(),
                Tok::Op(c) => c.to_string(),
                Tok::Open => "(".into(),
                Tok::Close => ")".into(),
            })
            .collect()
    }
}

fn lex(s: &str) -> Result<Vec<Tok>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i] as char;
        match c {
            ' ' => i += 1,
            '0'..='9' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
                out.push(Tok::Num(
                    s[start..i]
                        .parse()
                        .map_err(|_| format!("{s:?}: number too large"))?,
                ));
            }
            'a'..='z' | '_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                    i += 1;
                }
                out.push(Tok::Name(s[start..i].to_string()));
            }
            '+' | '-' | '*' | '/' => {
                out.push(Tok::Op(c));
                i += 1;
            }
            '(' => {
                out.push(Tok::Open);
                i += 1;
            }
            ')' => {
                out.push(Tok::Close);
                i += 1;
            }
            _ => return Err(format!("expression {s:?}: unexpected {c:?}")),
        }
    }
    Ok(out)
}

fn parse_sum(t: &[Tok], pos: &mut usize) -> Option<Node> {
    let mut left = parse_product(t, pos)?;
    while let Some(Tok::Op(op @ ('+' | '-'))) = t.get(*pos) {
        *pos += 1;
        left = Node::Bin(*op, Box::new(left), Box::new(parse_product(t, pos)?));
    }
    Some(left)
}

fn parse_product(t: &[Tok], pos: &mut usize) -> Option<Node> {
    let mut left = parse_atom(t, pos)?;
    while let Some(Tok::Op(op @ ('*' | '/'))) = t.get(*pos) {
        *pos += 1;
        left = Node::Bin(*op, Box::new(left), Box::new(parse_atom(t, pos)?));
    }
    Some(left)
}

fn parse_atom(t: &[Tok], pos: &mut usize) -> Option<Node> {
    let tok = t.get(*pos)?;
    *pos += 1;
    match tok {
        Tok::Num(n) => Some(Node::Num(*n)),
        Tok::Name(n) => Some(Node::Name(n.clone())),
        Tok::Open => {
            let inner = parse_sum(t, pos)?;
            (t.get(*pos) == Some(&Tok::Close)).then(|| {
                *pos += 1;
                inner
            })
        }
        _ => None,
    }
}

/// Exact integer evaluation: `None` on an inexact division or overflow.
fn eval(n: &Node, env: &HashMap<String, i64>) -> Option<i64> {
    match n {
        Node::Num(v) => Some(*v),
        Node::Name(k) => env.get(k).copied(),
        Node::Bin(op, a, b) => {
            let (a, b) = (eval(a, env)?, eval(b, env)?);
            match op {
                '+' => a.checked_add(b),
                '-' => a.checked_sub(b),
                '*' => a.checked_mul(b),
                _ => (b != 0 && a % b == 0).then(|| a / b),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Sampling
// ---------------------------------------------------------------------------

/// The word a pronoun placeholder stands for, for `person`.
fn say(person: Person, p: Pronoun) -> &'static str {
    match p {
        Pronoun::Name => person.name,
        Pronoun::He => person.she(),
        Pronoun::HeCap => person.she_c(),
        Pronoun::Him => person.her(),
        Pronoun::His => person.hers(),
        Pronoun::HisCap => person.hers_c(),
    }
}

/// Everything drawn for one problem.
struct Draw<'a> {
    numbers: HashMap<String, i64>,
    words: HashMap<&'a str, &'a [String]>,
    people: Vec<Person>,
}

impl Family {
    /// A problem of this family, or `None` when every draw broke a constraint.
    pub fn sample(&self, rng: &mut StdRng) -> Option<Problem> {
        (0..MAX_DRAWS).find_map(|_| self.try_sample(rng))
    }

    fn try_sample(&self, rng: &mut StdRng) -> Option<Problem> {
        let mut numbers = HashMap::new();
        for (name, lo, hi) in &self.vars {
            numbers.insert(name.clone(), rng.random_range(*lo..=*hi));
        }
        for (name, list) in &self.values {
            numbers.insert(name.clone(), *list.choose(rng).expect("non-empty"));
        }
        for (name, expr) in &self.lets {
            let v = expr
                .eval(&numbers)
                .filter(|v| (1..=MAX_RESULT).contains(v))?;
            numbers.insert(name.clone(), v);
        }
        for (l, cmp, r) in &self.require {
            let (l, r) = (l.eval(&numbers)?, r.eval(&numbers)?);
            let holds = match cmp {
                Cmp::Gt => l > r,
                Cmp::Lt => l < r,
                Cmp::Ge => l >= r,
                Cmp::Le => l <= r,
                Cmp::Eq => l == r,
                Cmp::Ne => l != r,
            };
            if !holds {
                return None;
            }
        }
        let people = NAMES
            .choose_multiple(rng, 4)
            .map(|&(name, female)| Person { name, female })
            .collect();
        let words = self
            .words
            .iter()
            .map(|(n, entries)| {
                (
                    n.as_str(),
                    entries.choose(rng).expect("non-empty").as_slice(),
                )
            })
            .collect();
        let mut d = Draw {
            numbers,
            words,
            people,
        };
        // The answer first: its steps must all be valid before anything is written.
        let mut lines = Vec::new();
        let mut last = 0;
        let mut steps = 0;
        for line in &self.answer {
            let mut s = String::new();
            for p in line {
                if let Piece::Step(name, expr) = p {
                    let v = expr
                        .eval(&d.numbers)
                        .filter(|v| (1..=MAX_RESULT).contains(v))?;
                    let shown = expr.render(&d.numbers);
                    s.push_str(&format!("{shown} = <<{shown}={v}>>{v}"));
                    d.numbers.insert(name.clone(), v);
                    (last, steps) = (v, steps + 1);
                } else {
                    s.push_str(&render(p, &d, rng));
                }
            }
            lines.push(s);
        }
        lines.push(format!("#### {last}"));
        let phrasing = self.question.choose(rng).expect("non-empty");
        let mut question: String = phrasing.iter().map(|p| render(p, &d, rng)).collect();
        if rng.random_bool(DISTRACTOR_RATE) {
            question = with_distractor(&question, d.people[3], rng);
        }
        Some(Problem {
            question,
            answer: lines.join("\n"),
            r#final: last.to_string(),
            steps,
            template: self.name.clone(),
        })
    }

    /// The equation structure: step expressions with given numbers renamed `v0, v1, …` in order
    /// of first use, earlier results `r0, r1, …`, and constants `k`.
    pub fn signature(&self) -> String {
        let mut given: Vec<&str> = Vec::new();
        let mut results: Vec<&str> = Vec::new();
        let mut parts = Vec::new();
        for p in self.answer.iter().flatten() {
            let Piece::Step(name, expr) = p else { continue };
            let mut s = String::new();
            for t in &expr.tokens {
                match t {
                    Tok::Num(_) => s.push('k'),
                    Tok::Name(n) => match results.iter().position(|r| r == n) {
                        Some(i) => s.push_str(&format!("r{i}")),
                        None => {
                            let i = given.iter().position(|g| g == n).unwrap_or_else(|| {
                                given.push(n);
                                given.len() - 1
                            });
                            s.push_str(&format!("v{i}"));
                        }
                    },
                    Tok::Op(c) => s.push(*c),
                    Tok::Open => s.push('('),
                    Tok::Close => s.push(')'),
                }
            }
            results.push(name);
            parts.push(s);
        }
        parts.join(" ; ")
    }
}

fn render(p: &Piece, d: &Draw, rng: &mut StdRng) -> String {
    match p {
        Piece::Text(t) => t.clone(),
        Piece::Value(name, form) => match d.words.get(name.as_str()) {
            Some(forms) => forms[form - 1].clone(),
            None => d.numbers[name].to_string(),
        },
        Piece::Choice(options) => options.choose(rng).expect("non-empty").clone(),
        Piece::Person(i, pronoun) => say(d.people[*i], *pronoun).to_string(),
        Piece::Step(..) => unreachable!("steps are rendered by the answer"),
    }
}

/// Titles whose period ends no sentence ("Mr. Lee").
const TITLES: &[&str] = &["Mr", "Mrs", "Ms", "Dr"];

/// Adds an irrelevant sentence: before the question sentence when the question comes last,
/// in front when the question comes first.
fn with_distractor(question: &str, who: Person, rng: &mut StdRng) -> String {
    let fact = DISTRACTORS
        .choose(rng)
        .expect("non-empty")
        .replace("{who}", who.name)
        .replace("{k}", &rng.random_range(2..=60).to_string());
    let last_stop = question
        .rmatch_indices(". ")
        .map(|(i, _)| i)
        .find(|&i| !TITLES.contains(&question[..i].rsplit(' ').next().unwrap_or("")));
    match last_stop {
        Some(i) if !question.starts_with("How") && !question.starts_with("What") => {
            format!("{} {fact} {}", &question[..=i], &question[i + 2..])
        }
        _ => format!("{fact} {question}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use std::collections::HashSet;

    #[test]
    fn every_family_parses_and_samples_valid_problems() {
        assert!(FAMILIES.len() >= 60, "only {} families", FAMILIES.len());
        let mut rng = StdRng::seed_from_u64(7);
        for f in FAMILIES.iter() {
            for _ in 0..20 {
                let p = f
                    .sample(&mut rng)
                    .unwrap_or_else(|| panic!("family {} draws no valid problem", f.name));
                assert!(
                    !p.question.contains(['{', '}']),
                    "{}: {}",
                    f.name,
                    p.question
                );
                assert!(!p.answer.contains(['{', '}']), "{}: {}", f.name, p.answer);
                assert!(p.answer.ends_with(&format!("#### {}", p.r#final)));
                assert_eq!(p.answer.matches("<<").count(), p.steps);
            }
        }
    }

    /// Training families may share a structure (the basics say one operation in many ways); a
    /// held-out family's is its own, so that it measures what no training family teaches.
    #[test]
    fn names_are_unique_and_held_out_structures_their_own() {
        let mut names = HashSet::new();
        for f in FAMILIES.iter() {
            assert!(
                names.insert(&f.name),
                "family name {} is used twice",
                f.name
            );
        }
        for held_out in families(Split::Test) {
            for other in FAMILIES.iter().filter(|f| f.name != held_out.name) {
                assert_ne!(
                    held_out.signature(),
                    other.signature(),
                    "{} shares its structure with {}",
                    held_out.name,
                    other.name
                );
            }
        }
    }

    #[test]
    fn steps_render_with_calculator_annotations() {
        let text = r#"
[[family]]
name = "t"
vars = { a = [5, 5], b = [3, 3] }
let = ["h = a * 2"]
words = { pet = ["dog/dogs"] }
question = ["{name} has {h} {pet.2} and {b} more. {How many|What number of} {pet.2}?"]
answer = ["{He} has {c=h+b} {pet.2}.", "Half is {d=(c+1)/2}."]
"#;
        let fs = parse_file(text).unwrap();
        let p = fs[0].sample(&mut StdRng::seed_from_u64(1)).unwrap();
        assert!(
            p.answer.starts_with("He has 10+3 = <<10+3=13>>13 dogs.")
                || p.answer.starts_with("She has 10+3")
        );
        assert!(
            p.answer
                .ends_with("Half is (13+1)/2 = <<(13+1)/2=7>>7.\n#### 7"),
            "{}",
            p.answer
        );
        assert_eq!(p.steps, 2);
        assert_eq!(fs[0].signature(), "v0+v1 ; (r0+k)/k");
    }

    #[test]
    fn bad_families_are_refused_with_their_name() {
        let cases = [
            (
                "question = [\"{x}\"]\nanswer = [\"{c=1+1}\"]",
                "not defined",
            ),
            (
                "question = [\"q\"]\nanswer = [\"{c=a+1}\"]\nvars = { a = [0, 5] }",
                "1..=1000",
            ),
            (
                "question = [\"q\"]\nanswer = [\"{c=a+1}\"]\nvalues = { a = [] }",
                "is empty",
            ),
            ("question = [\"q\"]\nanswer = [\"no steps\"]", "1 to 4"),
            (
                "question = [\"q {c=1+1}\"]\nanswer = [\"{c=1+1}\"]",
                "answer lines",
            ),
            ("question = [\"q\"]\nanswer = [\"{c=(1+1}\"]", "malformed"),
        ];
        for (body, want) in cases {
            let e = parse_file(&format!("[[family]]\nname = \"bad\"\n{body}\n")).unwrap_err();
            assert!(e.contains("`bad`") && e.contains(want), "{e}");
        }
    }
}
