//! A generated word problem, the split it is drawn for, and the people problems are about:
//! what every generator (`arith`, `families`, `compose`) shares.

use serde::{Deserialize, Serialize};

/// One generated word problem with its worked solution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    pub question: String,
    /// Solution lines with `<<a op b=c>>` annotations, ending in `#### N`.
    pub answer: String,
    /// The final number, as a string (serialized as `"final"`).
    #[serde(rename = "final")]
    pub r#final: String,
    /// Number of annotated calculations in `answer` (1..=4).
    pub steps: usize,
    /// Name of the template that produced the problem.
    pub template: String,
}

/// Which templates to draw from. `Test` templates are never produced for `Train`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    Train,
    Test,
}

/// How many times a generator redraws a problem whose numbers break a constraint before it
/// gives up on that template or family.
pub(super) const MAX_DRAWS: usize = 500;

/// A person in a problem: a name (from [`NAMES`]) and the pronouns that go with it.
#[derive(Clone, Copy)]
pub(super) struct Person {
    pub name: &'static str,
    pub female: bool,
}

impl Person {
    pub fn she(self) -> &'static str {
        if self.female { "she" } else { "he" }
    }
    pub fn she_c(self) -> &'static str {
        if self.female { "She" } else { "He" }
    }
    pub fn her(self) -> &'static str {
        if self.female { "her" } else { "him" }
    }
    pub fn hers(self) -> &'static str {
        if self.female { "her" } else { "his" }
    }
    pub fn hers_c(self) -> &'static str {
        if self.female { "Her" } else { "His" }
    }
}

impl std::fmt::Display for Person {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// First names and whether a person is female (for pronouns).
pub(super) const NAMES: &[(&str, bool)] = &[
    ("Natalia", true),
    ("James", false),
    ("Maria", true),
    ("Tom", false),
    ("Aisha", true),
    ("Liam", false),
    ("Sofia", true),
    ("Noah", false),
    ("Emma", true),
    ("Carlos", false),
    ("Mei", true),
    ("Ravi", false),
    ("Olivia", true),
    ("Ben", false),
    ("Chloe", true),
    ("Diego", false),
    ("Hana", true),
    ("Jack", false),
    ("Leila", true),
    ("Marcus", false),
    ("Nina", true),
    ("Omar", false),
    ("Priya", true),
    ("Sam", false),
    ("Tara", true),
    ("Victor", false),
    ("Yuki", true),
    ("Ethan", false),
    ("Zoe", true),
    ("Henry", false),
    ("Grace", true),
    ("Kofi", false),
    ("Lucy", true),
    ("Mateo", false),
    ("Rosa", true),
    ("Felix", false),
    ("Amara", true),
    ("Jin", false),
    ("Elena", true),
    ("Oscar", false),
];

/// Whole-number digits with thousands separators: "1986" → "1,986".
pub(super) fn with_thousands(digits: &str) -> String {
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
