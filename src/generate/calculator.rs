//! GSM8K's calculator (Cobbe et al. 2021): when a sample has just written `<<EXPR=` and EXPR is
//! plain arithmetic, the writer computes it exactly and forces `RESULT>>` as the sample's next
//! tokens, then sampling goes on. Anything doubtful (malformed, too long, division by zero,
//! too large) leaves sampling alone.
//!
//! Arithmetic is exact: rationals of `i128` with every operation checked for overflow. A result
//! is written as an integer, an exact terminating decimal, or (when its decimals never end)
//! rounded to 6 decimals with trailing zeros trimmed.

use std::collections::VecDeque;

use anyhow::Result;

/// The longest expression computed, in characters.
pub const MAX_EXPRESSION: usize = 64;
/// Results at least this large in magnitude are not computed.
const LIMIT: i128 = 1_000_000_000_000_000;
/// Decimals of a result whose decimal expansion does not end.
const DECIMALS: u32 = 6;

/// Text ↔ token ids, as the calculator needs them: the generation loop stays free of any
/// particular tokenizer (and tests can use a fake one).
pub trait Codec {
    /// Ids of `text`, nothing added.
    fn encode(&self, text: &str) -> Result<Vec<u32>>;
    /// Text of `ids`, special tokens left out.
    fn decode(&self, ids: &[u32]) -> Result<String>;
}

impl Codec for crate::text::Tokenizer {
    fn encode(&self, text: &str) -> Result<Vec<u32>> {
        crate::text::Tokenizer::encode(self, text)
    }

    fn decode(&self, ids: &[u32]) -> Result<String> {
        crate::text::Tokenizer::decode(self, ids)
    }
}

/// An exact rational number, kept in lowest terms with a positive denominator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: i128,
    den: i128,
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a.abs()
}

impl Ratio {
    /// `num / den`, reduced; `None` when `den` is 0 or the numbers overflow.
    /// (`i128::MIN` is refused, so that every value has an absolute value and a negation.)
    pub fn new(num: i128, den: i128) -> Option<Self> {
        if den == 0 || num == i128::MIN || den == i128::MIN {
            return None;
        }
        let g = gcd(num, den);
        let (mut num, mut den) = (num / g, den / g);
        if den < 0 {
            (num, den) = (num.checked_neg()?, den.checked_neg()?);
        }
        Some(Self { num, den })
    }

    pub fn numer(self) -> i128 {
        self.num
    }

    pub fn denom(self) -> i128 {
        self.den
    }

    fn add(self, o: Self) -> Option<Self> {
        // Over the lcm of the denominators keeps the intermediate numbers small.
        let g = gcd(self.den, o.den);
        let (a, b) = (self.den / g, o.den / g);
        let num = self
            .num
            .checked_mul(b)?
            .checked_add(o.num.checked_mul(a)?)?;
        Self::new(num, self.den.checked_mul(b)?)
    }

    fn neg(self) -> Option<Self> {
        Some(Self {
            num: self.num.checked_neg()?,
            den: self.den,
        })
    }

    fn sub(self, o: Self) -> Option<Self> {
        self.add(o.neg()?)
    }

    fn mul(self, o: Self) -> Option<Self> {
        // Cross-reduce first, so that the products stay in range when the result does.
        let g1 = gcd(self.num, o.den).max(1);
        let g2 = gcd(o.num, self.den).max(1);
        let num = (self.num / g1).checked_mul(o.num / g2)?;
        let den = (self.den / g2).checked_mul(o.den / g1)?;
        Self::new(num, den)
    }

    fn div(self, o: Self) -> Option<Self> {
        if o.num == 0 {
            return None;
        }
        self.mul(Self::new(o.den, o.num)?)
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Number(Ratio),
    Op(u8),
    Open,
    Close,
}

/// The tokens of an expression; `None` for any character outside digits, `+ - * / ( ) .` and
/// spaces, or a malformed number (`1.2.3`, a lone `.`, two numbers separated only by spaces).
fn tokens(expr: &str) -> Option<Vec<Token>> {
    let bytes = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b' ' => i += 1,
            b'+' | b'-' | b'*' | b'/' => {
                out.push(Token::Op(c));
                i += 1;
            }
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b'0'..=b'9' | b'.' => {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
                    i += 1;
                }
                if matches!(out.last(), Some(Token::Number(_))) {
                    return None;
                }
                out.push(Token::Number(number(&expr[start..i])?));
            }
            _ => return None,
        }
    }
    Some(out)
}

/// `12`, `1.5`, `.25` or `3.` exactly.
fn number(text: &str) -> Option<Ratio> {
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) {
        return None;
    }
    let mut num: i128 = 0;
    let mut den: i128 = 1;
    for d in whole.bytes().chain(frac.bytes()) {
        num = num.checked_mul(10)?.checked_add(i128::from(d - b'0'))?;
    }
    for _ in 0..frac.len() {
        den = den.checked_mul(10)?;
    }
    Ratio::new(num, den)
}

/// Recursive descent over `expr := term (('+'|'-') term)*`, `term := unary (('*'|'/') unary)*`,
/// `unary := '-'? primary`, `primary := number | '(' expr ')'`.
struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<Token> {
        self.tokens.get(self.at).copied()
    }

    fn expr(&mut self) -> Option<Ratio> {
        self.chain(b"+-", Self::term)
    }

    fn term(&mut self) -> Option<Ratio> {
        self.chain(b"*/", Self::unary)
    }

    /// `operand (op operand)*` for the operators `ops`, taken left to right.
    fn chain(&mut self, ops: &[u8], operand: fn(&mut Self) -> Option<Ratio>) -> Option<Ratio> {
        let mut value = operand(self)?;
        while let Some(Token::Op(op)) = self
            .peek()
            .filter(|t| matches!(t, Token::Op(o) if ops.contains(o)))
        {
            self.at += 1;
            let right = operand(self)?;
            value = match op {
                b'+' => value.add(right),
                b'-' => value.sub(right),
                b'*' => value.mul(right),
                _ => value.div(right),
            }?;
        }
        Some(value)
    }

    fn unary(&mut self) -> Option<Ratio> {
        if self.peek() == Some(Token::Op(b'-')) {
            self.at += 1;
            return self.primary()?.neg();
        }
        self.primary()
    }

    fn primary(&mut self) -> Option<Ratio> {
        let token = self.peek()?;
        self.at += 1;
        match token {
            Token::Number(n) => Some(n),
            Token::Open => {
                let value = self.expr()?;
                (self.peek() == Some(Token::Close)).then(|| self.at += 1)?;
                Some(value)
            }
            Token::Op(_) | Token::Close => None,
        }
    }
}

/// The exact value of an arithmetic expression; `None` when it is not one (see the module
/// docs), divides by zero or overflows. No length limit here: see [`compute`].
pub fn evaluate(expr: &str) -> Option<Ratio> {
    let mut parser = Parser {
        tokens: tokens(expr)?,
        at: 0,
    };
    let value = parser.expr()?;
    (parser.at == parser.tokens.len()).then_some(value)
}

/// `10^exp`, checked.
fn pow10(exp: u32) -> Option<i128> {
    10i128.checked_pow(exp)
}

/// The result as the calculator writes it; `None` when |r| ≥ 10^15 (or it cannot be written
/// exactly in range).
pub fn format(r: Ratio) -> Option<String> {
    let (num, den) = (r.numer(), r.denom());
    let negative = num < 0;
    let abs = num.abs();
    if abs / den >= LIMIT {
        return None;
    }
    // A terminating decimal has a denominator of 2^a·5^b; it needs max(a, b) decimals.
    let (mut rest, mut twos, mut fives) = (den, 0u32, 0u32);
    while rest % 2 == 0 {
        rest /= 2;
        twos += 1;
    }
    while rest % 5 == 0 {
        rest /= 5;
        fives += 1;
    }
    let (decimals, scaled) = if rest == 1 {
        let decimals = twos.max(fives);
        (decimals, abs.checked_mul(pow10(decimals)? / den)?)
    } else {
        // Round half away from zero at 6 decimals.
        let scale = pow10(DECIMALS)?;
        let whole = abs / den;
        let frac = abs % den;
        let digits = frac.checked_mul(scale)?;
        let mut frac_scaled = digits / den;
        if (digits % den).checked_mul(2)? >= den {
            frac_scaled += 1;
        }
        (
            DECIMALS,
            whole.checked_mul(scale)?.checked_add(frac_scaled)?,
        )
    };
    let unit = pow10(decimals)?;
    let (whole, frac) = (scaled / unit, scaled % unit);
    let mut text = if negative && scaled != 0 {
        format!("-{whole}")
    } else {
        whole.to_string()
    };
    if frac != 0 {
        let digits = format!("{frac:0width$}", width = decimals as usize);
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    Some(text)
}

/// What the calculator writes for `expr` (without the closing `>>`); `None` leaves sampling alone.
pub fn compute(expr: &str) -> Option<String> {
    if expr.len() > MAX_EXPRESSION {
        return None;
    }
    format(evaluate(expr)?)
}

/// The finished calculations of `text`, as (expression, result): each `<<EXPR=RESULT>>`.
pub fn calculations(text: &str) -> Vec<(&str, &str)> {
    text.split("<<")
        .skip(1)
        .filter_map(|part| part.split_once(">>")?.0.split_once('='))
        .collect()
}

/// The expression of a `<<EXPR=` that `text` has just written: the text after its last `<<`,
/// when it ends with `=`.
pub fn pending_expression(text: &str) -> Option<&str> {
    let head = text.strip_suffix('=')?;
    let open = head.rfind("<<")?;
    Some(&head[open + 2..])
}

/// The calculator of a batch of samples: each sample has its own queue of tokens to force.
pub struct Calculator<'a> {
    codec: &'a dyn Codec,
    queues: Vec<VecDeque<u32>>,
}

impl<'a> Calculator<'a> {
    pub fn new(codec: &'a dyn Codec, samples: usize) -> Self {
        Self {
            codec,
            queues: vec![VecDeque::new(); samples],
        }
    }

    /// The token to force as `sample`'s next one, if any (taken from its queue).
    pub fn next_forced(&mut self, sample: usize) -> Option<u32> {
        self.queues[sample].pop_front()
    }

    /// Tokens still queued for `sample`.
    pub fn pending(&self, sample: usize) -> usize {
        self.queues[sample].len()
    }

    /// Forget what was queued for `sample` (it stopped).
    pub fn clear(&mut self, sample: usize) {
        self.queues[sample].clear();
    }

    /// Call after `sample` chose a token itself: `written` is everything it wrote, that token
    /// last. When its text now ends with a computable `<<EXPR=`, the result and `>>` are queued.
    /// Returns the queued text, if any.
    pub fn observe(&mut self, sample: usize, written: &[u32]) -> Result<Option<String>> {
        let Some(&last) = written.last() else {
            return Ok(None);
        };
        // Cheap first: only a token with `=` in it can close an expression.
        if !self.codec.decode(&[last])?.contains('=') {
            return Ok(None);
        }
        let text = self.codec.decode(written)?;
        let Some(result) = pending_expression(&text).and_then(compute) else {
            return Ok(None);
        };
        let forced = format!("{result}>>");
        self.queues[sample] = self.codec.encode(&forced)?.into();
        Ok(Some(forced))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calc(expr: &str) -> Option<String> {
        compute(expr)
    }

    #[test]
    fn results_are_exact_and_written_as_gsm8k_writes_them() {
        for (expr, want) in [
            ("12*4", "48"),
            ("7/2", "3.5"),
            ("10/3", "3.333333"),
            ("2/3", "0.666667"),
            ("(3+4)*2", "14"),
            ("1.5*4", "6"),
            ("-3+1", "-2"),
            ("2+3*4", "14"),
            ("2*3+4", "10"),
            ("20-6/2", "17"),
            ("100-20-30", "50"),
            ("64/4/2", "8"),
            ("2*(3+(4-1))/4", "3"),
            (" 150 + 50 ", "200"),
            ("3*-2", "-6"),
            ("5--2", "7"),
            ("-(2+3)", "-5"),
            ("1/8", "0.125"),
            ("1/1024", "0.0009765625"),
            (".25*40", "10"),
            ("0.1+0.2", "0.3"),
            ("1/3*3", "1"),
            ("-1/3", "-0.333333"),
            ("1/3000000", "0"),
            ("-1/3000000", "0"),
            ("1/6", "0.166667"),
            ("5/7", "0.714286"),
            ("999999999999999", "999999999999999"),
            ("0.5-0.5", "0"),
            ("2.50*2", "5"),
            ("3.", "3"),
        ] {
            assert_eq!(calc(expr).as_deref(), Some(want), "{expr}");
        }
    }

    #[test]
    fn anything_doubtful_is_left_alone() {
        let long = format!("{}1", "1+".repeat(32));
        assert_eq!(long.len(), 65);
        let fits = &long[2..];
        assert_eq!(calc(fits).as_deref(), Some("32"), "64 characters fit");
        for expr in [
            "1/0",
            "5/(2-2)",
            "2**3",
            "(1+2",
            "1+2)",
            "()",
            "1e5",
            long.as_str(),
            "1000000000000000",
            "999999999999999+1",
            "-1000000000000000",
            "10000000*100000000",
            "",
            "   ",
            "+3",
            "--3",
            "3+",
            "3*/2",
            "1.2.3",
            ".",
            "1 2",
            "2(3)",
            "(2)(3)",
            "1,000+2",
            "x+1",
            "3^2",
            "4%2",
            "99999999999999999999999999999999999999999*9",
        ] {
            assert_eq!(calc(expr), None, "{expr:?}");
        }
    }

    #[test]
    fn overflow_is_an_answer_left_alone_not_a_panic() {
        let big = "9".repeat(38);
        assert_eq!(evaluate(&format!("{big}*{big}")), None);
        assert_eq!(
            evaluate(&format!("{big}-{big}")),
            Some(Ratio::new(0, 1).unwrap())
        );
        assert_eq!(evaluate(&format!("-{big}-{big}")), None);
        let tiny = evaluate(&format!("1/{big}/{big}"));
        assert_eq!(tiny, None, "the denominator overflows");
        let r = evaluate(&format!("{}/{big}", "9".repeat(20))).unwrap();
        assert_eq!(format(r).as_deref(), Some("0"));
        assert_eq!(
            Ratio::new(i128::MIN, -1),
            None,
            "negating the smallest i128 overflows"
        );
    }

    #[test]
    fn the_expression_is_what_follows_the_last_open_bracket() {
        assert_eq!(pending_expression("He has <<3+4="), Some("3+4"));
        assert_eq!(pending_expression("<<1+1=2>> and <<2*5="), Some("2*5"));
        assert_eq!(pending_expression("<<3+4=7"), None);
        assert_eq!(pending_expression("3+4="), None);
        assert_eq!(pending_expression("<<="), Some(""));
        assert_eq!(pending_expression("<<a b="), Some("a b"));
    }

    /// Maps each character to one id and back (digits, `<`, `>`, `=` …).
    struct Chars;

    impl Codec for Chars {
        fn encode(&self, text: &str) -> Result<Vec<u32>> {
            Ok(text.chars().map(|c| c as u32).collect())
        }
        fn decode(&self, ids: &[u32]) -> Result<String> {
            Ok(ids.iter().filter_map(|&i| char::from_u32(i)).collect())
        }
    }

    fn ids(text: &str) -> Vec<u32> {
        Chars.encode(text).unwrap()
    }

    #[test]
    fn each_sample_has_its_own_queue() {
        let mut c = Calculator::new(&Chars, 2);
        let mut written = [Vec::new(), Vec::new()];
        let texts = ["x <<12*4= y", "<<1/0= <<7/2="];
        let mut queued = [Vec::new(), Vec::new()];
        for (sample, text) in texts.iter().enumerate() {
            for id in ids(text) {
                written[sample].push(id);
                if let Some(q) = c.observe(sample, &written[sample]).unwrap() {
                    queued[sample].push((written[sample].len(), q));
                }
            }
        }
        assert_eq!(queued[0], [(9, "48>>".to_string())]);
        assert_eq!(queued[1], [(13, "3.5>>".to_string())]);
        // Sample 1's text ends with a computable expression; sample 0's queue is older.
        let drain =
            |c: &mut Calculator, s| std::iter::from_fn(|| c.next_forced(s)).collect::<Vec<_>>();
        assert_eq!(c.pending(0), 4);
        assert_eq!(drain(&mut c, 1), ids("3.5>>"));
        assert_eq!(drain(&mut c, 0), ids("48>>"));
        assert_eq!(c.next_forced(0), None);
        written[0].extend(ids("<<2+2="));
        c.observe(0, &written[0]).unwrap();
        c.clear(0);
        assert_eq!(c.next_forced(0), None);
    }

    #[test]
    fn a_real_tokenizer_forces_the_result_and_the_closing_brackets() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/models/ltm-arith-tiny");
        let tok = crate::text::Tokenizer::for_model(std::path::Path::new(dir), None).unwrap();
        let mut c = Calculator::new(&tok, 1);
        let written = tok.encode(" He buys 3 packs of 12 pens: <<12*3=").unwrap();
        for n in 1..written.len() {
            assert_eq!(c.observe(0, &written[..n]).unwrap(), None);
            assert_eq!(c.pending(0), 0);
        }
        assert_eq!(c.observe(0, &written).unwrap().as_deref(), Some("36>>"));
        let forced: Vec<u32> = std::iter::from_fn(|| c.next_forced(0)).collect();
        assert_eq!(forced, tok.encode("36>>").unwrap());
        assert_eq!(tok.decode(&forced).unwrap(), "36>>");
        let mut all = written.clone();
        all.extend(&forced);
        assert_eq!(
            tok.decode(&all).unwrap(),
            " He buys 3 packs of 12 pens: <<12*3=36>>"
        );
    }
}
