//! Option parsing as the node tools do it (the `nopt` library): options may
//! come anywhere, before or after the verb and its arguments; `--name=value`
//! and `--name value`; single-letter booleans glued together (`-jH`); a
//! unique prefix of a long name stands for it after `--` (`--comp`); `--no-NAME`
//! negates a boolean, which may also be followed by `true` or `false`; `--`
//! ends the options. A `-` alone is an argument (stdin).

use std::collections::BTreeMap;

/// What an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bool,
    Text,
    Number,
    /// A text that may be given several times (`-i KEY -i KEY`).
    TextList,
}

/// One option: its long name (as the node tool names it) and short letter.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub long: &'static str,
    pub short: Option<char>,
    pub kind: Kind,
}

impl Spec {
    pub const fn new(long: &'static str, short: Option<char>, kind: Kind) -> Spec {
        Spec { long, short, kind }
    }
}

/// A parsed value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(bool),
    Text(String),
    Number(f64),
    List(Vec<String>),
}

/// The options and arguments of a command line.
#[derive(Debug, Default)]
pub struct Parsed {
    values: BTreeMap<String, Value>,
    /// Arguments that are not options, in order.
    pub args: Vec<String>,
    /// Options no spec names, in the order met (without dashes).
    pub unknown: Vec<String>,
}

impl Parsed {
    pub fn flag(&self, long: &str) -> bool {
        matches!(self.values.get(long), Some(Value::Bool(true)))
    }

    pub fn text(&self, long: &str) -> Option<&str> {
        match self.values.get(long) {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        }
    }

    pub fn number(&self, long: &str) -> Option<f64> {
        match self.values.get(long) {
            Some(Value::Number(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn list(&self, long: &str) -> &[String] {
        match self.values.get(long) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    /// Set `long` unless the command line gave it (an environment fallback).
    pub fn fallback(&mut self, long: &str, value: Value) {
        self.values.entry(long.to_string()).or_insert(value);
    }
}

/// Why a command line could not be parsed.
#[derive(Debug, PartialEq)]
pub enum OptError {
    MissingValue(String),
    BadNumber(String, String),
}

/// Parse `argv` (without the program name) against `specs`.
pub fn parse(argv: &[String], specs: &[Spec]) -> Result<Parsed, OptError> {
    let mut out = Parsed::default();
    let mut i = 0;
    while i < argv.len() {
        let arg = &argv[i];
        i += 1;
        if arg.len() >= 2 && arg.chars().all(|c| c == '-') {
            out.args.extend(argv[i..].iter().cloned());
            break;
        }
        if !arg.starts_with('-') || arg == "-" {
            out.args.push(arg.clone());
            continue;
        }
        let (name_part, inline) = match arg.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (arg.as_str(), None),
        };
        // Short options: `-x`, `-xyz` (all single-letter options), or
        // `-oVALUE` (a letter that takes a value, then its value).
        let names: Vec<String> = if !name_part.starts_with("--") {
            let letters = &name_part[1..];
            match expand_short(letters, specs) {
                Some(longs) => longs,
                None => {
                    let mut chars = letters.chars();
                    let first = chars.next();
                    match first.and_then(|c| specs.iter().find(|s| s.short == Some(c))) {
                        Some(spec) if spec.kind != Kind::Bool && inline.is_none() => {
                            store(&mut out, spec, chars.as_str().to_string())?;
                            continue;
                        }
                        _ => vec![letters.to_string()],
                    }
                }
            }
        } else {
            vec![name_part.trim_start_matches('-').to_string()]
        };
        let last = names.len() - 1;
        let long_form = name_part.starts_with("--");
        for (n, name) in names.into_iter().enumerate() {
            let (name, negated) = strip_no(&name, specs);
            // A prefix stands for a long name only after `--`: `-c` is not
            // `--channel` (nopt reads it so, and a verb's own `-c` then
            // sets the channel).
            let spec = if long_form {
                resolve_long(&name, specs)
            } else {
                specs.iter().find(|s| s.long == name)
            };
            let Some(spec) = spec else {
                out.unknown.push(name.clone());
                // As nopt: an unknown option takes no value unless given
                // with `=`.
                continue;
            };
            let inline = if n == last { inline.clone() } else { None };
            if spec.kind == Kind::Bool {
                let mut value = !negated;
                if let Some(v) = inline.as_deref() {
                    value = (v == "true") != negated;
                } else if n == last {
                    if let Some(next) = argv.get(i).filter(|a| *a == "true" || *a == "false") {
                        value = (next == "true") != negated;
                        i += 1;
                    }
                }
                out.values.insert(spec.long.to_string(), Value::Bool(value));
                continue;
            }
            let value = match inline {
                Some(v) => v,
                None if n == last => match argv.get(i) {
                    Some(next) if !(next.len() >= 2 && next.chars().all(|c| c == '-')) => {
                        i += 1;
                        next.clone()
                    }
                    _ => return Err(OptError::MissingValue(spec.long.to_string())),
                },
                None => return Err(OptError::MissingValue(spec.long.to_string())),
            };
            store(&mut out, spec, value)?;
        }
    }
    Ok(out)
}

fn store(out: &mut Parsed, spec: &Spec, value: String) -> Result<(), OptError> {
    let value = match spec.kind {
        Kind::Bool => Value::Bool(true),
        Kind::Text => Value::Text(value),
        Kind::Number => match value.trim().parse::<f64>() {
            Ok(n) if n.is_finite() => Value::Number(n),
            _ => return Err(OptError::BadNumber(spec.long.to_string(), value)),
        },
        Kind::TextList => {
            let mut list = match out.values.remove(spec.long) {
                Some(Value::List(l)) => l,
                _ => Vec::new(),
            };
            list.push(value);
            Value::List(list)
        }
    };
    out.values.insert(spec.long.to_string(), value);
    Ok(())
}

/// `-jH` → the long names of `j` and `H`, when every letter is an option.
fn expand_short(letters: &str, specs: &[Spec]) -> Option<Vec<String>> {
    if letters.is_empty() {
        return None;
    }
    // A long name given with one dash (`-debug`) is that long option.
    if letters.chars().count() > 1 && specs.iter().any(|s| s.long == letters) {
        return Some(vec![letters.to_string()]);
    }
    letters
        .chars()
        .map(|c| {
            specs
                .iter()
                .find(|s| s.short == Some(c))
                .map(|s| s.long.to_string())
        })
        .collect()
}

/// `no-debug` → (`debug`, negated) when `no-debug` is not itself an option.
fn strip_no(name: &str, specs: &[Spec]) -> (String, bool) {
    let mut name = name.to_string();
    let mut negated = false;
    while name.to_ascii_lowercase().starts_with("no-") && resolve_long(&name, specs).is_none() {
        name = name[3..].to_string();
        negated = !negated;
    }
    (name, negated)
}

/// The spec a long name (or a unique prefix of one) names.
fn resolve_long<'a>(name: &str, specs: &'a [Spec]) -> Option<&'a Spec> {
    if let Some(exact) = specs.iter().find(|s| s.long == name) {
        return Some(exact);
    }
    let mut matches = specs
        .iter()
        .filter(|s| !name.is_empty() && s.long.starts_with(name));
    let first = matches.next()?;
    matches.next().is_none().then_some(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPECS: &[Spec] = &[
        Spec::new("json", Some('j'), Kind::Bool),
        Spec::new("skipHeader", Some('H'), Kind::Bool),
        Spec::new("output", Some('o'), Kind::Text),
        Spec::new("limit", Some('l'), Kind::Number),
        Spec::new("identity", Some('i'), Kind::TextList),
        Spec::new("compression", Some('c'), Kind::Text),
    ];

    fn argv(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn options_anywhere_glued_and_abbreviated() {
        let p = parse(&argv("-jH list -o uuid,name --comp=gzip x -l 5"), SPECS).unwrap();
        assert!(p.flag("json") && p.flag("skipHeader"));
        assert_eq!(p.text("output"), Some("uuid,name"));
        assert_eq!(p.text("compression"), Some("gzip"));
        assert_eq!(p.number("limit"), Some(5.0));
        assert_eq!(p.args, vec!["list", "x"]);
    }

    #[test]
    fn lists_negation_and_end_of_options() {
        let p = parse(&argv("-i a --identity b --no-json -- -j"), SPECS).unwrap();
        assert_eq!(p.list("identity"), ["a", "b"]);
        assert!(!p.flag("json"));
        assert_eq!(p.args, vec!["-j"]);
        let p = parse(&argv("--json false -ouuid -"), SPECS).unwrap();
        assert!(!p.flag("json"));
        assert_eq!(p.text("output"), Some("uuid"));
        assert_eq!(p.args, vec!["-"]);
    }

    #[test]
    fn unknown_missing_and_bad_values() {
        let p = parse(&argv("--bogus -z x"), SPECS).unwrap();
        assert_eq!(p.unknown, vec!["bogus", "z"]);
        // A single letter is never a prefix of a long name.
        let p = parse(&argv("-s x"), SPECS).unwrap();
        assert_eq!(p.unknown, vec!["s"]);
        assert_eq!(p.args, vec!["x"]);
        assert_eq!(
            parse(&argv("-o"), SPECS).unwrap_err(),
            OptError::MissingValue("output".into())
        );
        assert_eq!(
            parse(&argv("-l ten"), SPECS).unwrap_err(),
            OptError::BadNumber("limit".into(), "ten".into())
        );
    }
}
