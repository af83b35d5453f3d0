//! Reads the part of LALRPOP's syntax that `grammar/tcprelay.lalrpop` uses: rule and
//! macro definitions with their alternatives, and the `extern` block's token names.
//!
//! Only the patterns matter for a diagram. Types, `use` lines, the `grammar` line and
//! action code are skipped the way LALRPOP itself skips action code: up to the `,`,
//! `;` or closing bracket at bracket depth 0, with string and character literals taken
//! whole so that a `"}"` inside an action does not end it.

/// One token of the grammar file.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    /// A string literal's contents, unescaped (`"="` → `=`; also `r"…"`).
    Str(String),
    /// An identifier, keyword or number.
    Ident(String),
    /// An identifier written directly before `<`: a macro use or definition, as
    /// LALRPOP tells them from a `<` that opens a selection.
    MacroId(String),
    /// A lifetime (`'err`) or a character literal (`'}'`), taken whole.
    Quote,
    /// `=>`, which starts an action (also `=>?`, `=>@L`).
    Arrow,
    /// Any other single character.
    Punct(char),
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// A `//` comment on a line of its own.
#[derive(Debug, Clone)]
struct LineComment {
    line: usize,
    text: String,
}

/// What one alternative's pattern is made of, before macros are expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Raw {
    /// A quoted terminal.
    Lit(String),
    /// A rule, a macro parameter or an `extern` token name.
    Name(String),
    /// A macro use: the name and one pattern per argument.
    Macro(String, Vec<Vec<Raw>>),
    /// `( … )`, or the inside of a selection `<name:…>`.
    Group(Vec<Raw>),
    /// `@L` or `@R`: a location, which matches no input.
    Location,
    /// `!`: error recovery, which is not part of the language.
    Recovery,
    Optional(Box<Raw>),
    ZeroOrMore(Box<Raw>),
    OneOrMore(Box<Raw>),
}

/// A rule or macro definition.
#[derive(Debug, Clone)]
pub(super) struct Definition {
    pub name: String,
    /// The macro parameters; empty for a plain rule.
    pub params: Vec<String>,
    /// The `//` lines directly above the definition, joined into one paragraph.
    pub comment: Option<String>,
    pub alternatives: Vec<Vec<Raw>>,
}

/// The parts of a grammar file the diagrams need.
#[derive(Debug, Clone, Default)]
pub(super) struct Grammar {
    pub definitions: Vec<Definition>,
    /// The quoted terminals of the `extern` block's token enum, in file order.
    pub terminals: Vec<String>,
    /// The named terminals of the `extern` block (`Word`, `QuotedString`).
    pub token_names: Vec<String>,
}

/// Reads a grammar file. Errors name the line.
pub(super) fn parse(text: &str) -> Result<Grammar, String> {
    let (tokens, comments) = tokenize(text)?;
    Parser {
        tokens,
        pos: 0,
        comments,
        grammar: Grammar::default(),
    }
    .file()
}

fn tokenize(text: &str) -> Result<(Vec<Token>, Vec<LineComment>), String> {
    let chars: Vec<char> = text.chars().collect();
    let at = |i: usize| chars.get(i).copied().unwrap_or('\0');
    let mut tokens = Vec::new();
    let mut comments = Vec::new();
    let (mut i, mut line) = (0, 1);
    // Whether only whitespace came before `i` on its line.
    let mut line_start = true;
    while i < chars.len() {
        let c = chars[i];
        let start_line = line;
        let tok = match c {
            '\n' => {
                line += 1;
                line_start = true;
                i += 1;
                continue;
            }
            c if c.is_whitespace() => {
                i += 1;
                continue;
            }
            '/' if at(i + 1) == '/' => {
                let end = chars[i..]
                    .iter()
                    .position(|&c| c == '\n')
                    .map_or(chars.len(), |n| i + n);
                if line_start {
                    let body: String = chars[i + 2..end].iter().collect();
                    let body = body.strip_prefix(' ').unwrap_or(&body).trim_end();
                    comments.push(LineComment {
                        line,
                        text: body.to_string(),
                    });
                }
                i = end;
                continue;
            }
            '/' if at(i + 1) == '*' => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && at(i + 1) == '/') {
                    line += usize::from(chars[i] == '\n');
                    i += 1;
                }
                if i >= chars.len() {
                    return Err(format!("line {start_line}: unterminated block comment"));
                }
                i += 2;
                continue;
            }
            '"' => {
                let (s, next, lines) = string(&chars, i + 1, None)
                    .ok_or_else(|| format!("line {start_line}: unterminated string"))?;
                (i, line) = (next, line + lines);
                Tok::Str(s)
            }
            'r' if at(i + 1) == '"'
                || (at(i + 1) == '#' && raw_hashes(&chars, i + 1).is_some()) =>
            {
                let hashes = raw_hashes(&chars, i + 1).unwrap_or(0);
                let (s, next, lines) = string(&chars, i + 2 + hashes, Some(hashes))
                    .ok_or_else(|| format!("line {start_line}: unterminated raw string"))?;
                (i, line) = (next, line + lines);
                Tok::Str(s)
            }
            '\'' => {
                // A character literal (`'}'`, `'\n'`) or a lifetime (`'err`).
                if at(i + 1) == '\\' {
                    i += 2;
                    while i < chars.len() && chars[i] != '\'' {
                        i += 1;
                    }
                    i += 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                    while at(i).is_alphanumeric() || at(i) == '_' {
                        i += 1;
                    }
                }
                Tok::Quote
            }
            c if c.is_alphanumeric() || c == '_' => {
                let start = i;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                if at(i) == '<' {
                    Tok::MacroId(word)
                } else {
                    Tok::Ident(word)
                }
            }
            '=' if at(i + 1) == '>' => {
                i += 2;
                Tok::Arrow
            }
            c => {
                i += 1;
                Tok::Punct(c)
            }
        };
        line_start = false;
        tokens.push(Token {
            tok,
            line: start_line,
        });
    }
    Ok((tokens, comments))
}

/// The number of `#` after `r` when they open a raw string (`r#"`).
fn raw_hashes(chars: &[char], from: usize) -> Option<usize> {
    let n = chars[from..].iter().take_while(|&&c| c == '#').count();
    (chars.get(from + n) == Some(&'"')).then_some(n)
}

/// Reads a string body from `from` up to its closing quote: `"` for a plain string,
/// with escapes; `"` and the given number of `#` for a raw string, without. Returns
/// the contents, the index after the string and the newlines in it.
fn string(chars: &[char], from: usize, raw: Option<usize>) -> Option<(String, usize, usize)> {
    let hashes = raw.unwrap_or(0);
    let (mut s, mut i, mut lines) = (String::new(), from, 0);
    loop {
        let c = *chars.get(i)?;
        lines += usize::from(c == '\n');
        if c == '"' && chars[i + 1..].iter().take_while(|&&c| c == '#').count() >= hashes {
            return Some((s, i + 1 + hashes, lines));
        }
        if c == '\\' && raw.is_none() {
            let e = *chars.get(i + 1)?;
            lines += usize::from(e == '\n');
            s.push(match e {
                'n' => '\n',
                't' => '\t',
                e => e,
            });
            i += 2;
        } else {
            s.push(c);
            i += 1;
        }
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    comments: Vec<LineComment>,
    grammar: Grammar,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_at(&self, n: usize) -> Option<&Tok> {
        self.tokens.get(self.pos + n).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or(self.tokens.last())
            .map_or(1, |t| t.line)
    }

    fn bump(&mut self) -> Option<Tok> {
        let tok = self.peek().cloned();
        self.pos += 1;
        tok
    }

    fn is(&self, c: char) -> bool {
        self.peek() == Some(&Tok::Punct(c))
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.is(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{c}`")))
        }
    }

    fn error(&self, what: &str) -> String {
        let found = match self.peek() {
            None => "the end of the file".to_string(),
            Some(tok) => format!("{}", Shown(tok)),
        };
        format!("line {}: {what}, found {found}", self.line())
    }

    fn file(mut self) -> Result<Grammar, String> {
        while let Some(tok) = self.peek().cloned() {
            match tok {
                Tok::Punct('#') => self.attribute()?,
                Tok::Ident(w) if w == "use" || w == "grammar" => self.skip_code(&[';'])?,
                Tok::MacroId(w) if w == "grammar" => self.skip_code(&[';'])?,
                Tok::Ident(w) if w == "extern" => self.extern_block()?,
                Tok::Ident(w) if w == "pub" => {
                    self.pos += 1;
                    self.definition()?;
                }
                Tok::Ident(_) | Tok::MacroId(_) => self.definition()?,
                _ => return Err(self.error("expected a rule")),
            }
        }
        Ok(self.grammar)
    }

    /// Skips `#[…]` before a rule or an alternative.
    fn attribute(&mut self) -> Result<(), String> {
        self.expect('#')?;
        if self.is('!') {
            self.pos += 1;
        }
        self.expect('[')?;
        self.skip_code(&[']'])
    }

    /// Skips code up to and including the first of `ends` at bracket depth 0.
    fn skip_code(&mut self, ends: &[char]) -> Result<(), String> {
        self.skip_action()?;
        match self.bump() {
            Some(Tok::Punct(c)) if ends.contains(&c) => Ok(()),
            _ => {
                self.pos -= 1;
                Err(self.error(&format!("expected `{}`", ends[0])))
            }
        }
    }

    /// Skips code up to, not including, a `,` or `;` at bracket depth 0 or a closing
    /// bracket that was not opened in it.
    fn skip_action(&mut self) -> Result<(), String> {
        let mut depth = 0usize;
        loop {
            match self.peek() {
                None => return Err(self.error("unterminated code")),
                Some(Tok::Punct('(' | '[' | '{')) => depth += 1,
                Some(Tok::Punct(')' | ']' | '}')) if depth == 0 => return Ok(()),
                Some(Tok::Punct(')' | ']' | '}')) => depth -= 1,
                Some(Tok::Punct(',' | ';')) if depth == 0 => return Ok(()),
                Some(_) => {}
            }
            self.pos += 1;
        }
    }

    /// Reads the token names of `extern { enum Tok { "=" => …, Word => …, } }`.
    fn extern_block(&mut self) -> Result<(), String> {
        self.pos += 1;
        self.expect('{')?;
        while !self.is('}') {
            if self.peek() == Some(&Tok::Ident("enum".to_string())) {
                self.pos += 2;
                self.expect('{')?;
                while !self.is('}') {
                    match self.bump() {
                        Some(Tok::Str(s)) => self.grammar.terminals.push(s),
                        Some(Tok::Ident(w)) => self.grammar.token_names.push(w),
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("expected a token name"));
                        }
                    }
                    self.skip_action()?;
                    if self.is(',') {
                        self.pos += 1;
                    }
                }
                self.pos += 1;
            } else {
                self.skip_code(&[';'])?;
            }
        }
        self.pos += 1;
        Ok(())
    }

    /// `Name<Params>: Type = { alternatives };` or `Name: Type = alternative;`.
    fn definition(&mut self) -> Result<(), String> {
        let line = self.line();
        let (name, is_macro) = match self.bump() {
            Some(Tok::Ident(name)) => (name, false),
            Some(Tok::MacroId(name)) => (name, true),
            _ => {
                self.pos -= 1;
                return Err(self.error("expected a rule name"));
            }
        };
        let mut params = Vec::new();
        if is_macro {
            self.expect('<')?;
            while let Some(Tok::Ident(p)) = self.peek().cloned() {
                params.push(p);
                self.pos += 1;
                if self.is(',') {
                    self.pos += 1;
                }
            }
            self.expect('>')?;
        }
        // The type, if any, runs to the `=`; types hold no `=`.
        while !self.is('=') {
            if self.bump().is_none() {
                return Err(self.error(&format!("expected `=` in the rule `{name}`")));
            }
        }
        self.pos += 1;
        let mut alternatives = Vec::new();
        if self.is('{') {
            self.pos += 1;
            while !self.is('}') {
                alternatives.push(self.alternative()?);
                if self.is(',') {
                    self.pos += 1;
                } else if !self.is('}') {
                    return Err(self.error("expected `,` or `}` after an alternative"));
                }
            }
            self.pos += 1;
            if self.is(';') {
                self.pos += 1;
            }
        } else {
            alternatives.push(self.alternative()?);
            self.expect(';')?;
        }
        let comment = self.comment_above(line);
        self.grammar.definitions.push(Definition {
            name,
            params,
            comment,
            alternatives,
        });
        Ok(())
    }

    /// One alternative: its pattern, and its action skipped.
    fn alternative(&mut self) -> Result<Vec<Raw>, String> {
        while self.is('#') {
            self.attribute()?;
        }
        let pattern = self.sequence()?;
        if self.peek() == Some(&Tok::Arrow) {
            self.pos += 1;
            self.skip_action()?;
        }
        Ok(pattern)
    }

    /// Symbols up to whatever ends a pattern: `=>`, `,`, `;`, or a closing bracket.
    fn sequence(&mut self) -> Result<Vec<Raw>, String> {
        let mut symbols = Vec::new();
        loop {
            let symbol = match self.peek().cloned() {
                Some(Tok::Str(s)) => {
                    self.pos += 1;
                    Raw::Lit(s)
                }
                Some(Tok::Ident(name)) => {
                    self.pos += 1;
                    Raw::Name(name)
                }
                Some(Tok::MacroId(name)) => {
                    self.pos += 2;
                    let mut args = Vec::new();
                    while !self.is('>') {
                        args.push(self.sequence()?);
                        if self.is(',') {
                            self.pos += 1;
                        } else if !self.is('>') {
                            return Err(self.error(&format!("expected `>` after `{name}<…`")));
                        }
                    }
                    self.pos += 1;
                    Raw::Macro(name, args)
                }
                Some(Tok::Punct('(')) => {
                    self.pos += 1;
                    let inner = self.sequence()?;
                    self.expect(')')?;
                    Raw::Group(inner)
                }
                Some(Tok::Punct('<')) => self.selection()?,
                Some(Tok::Punct('@')) => {
                    self.pos += 1;
                    match self.bump() {
                        Some(Tok::Ident(_)) => Raw::Location,
                        _ => {
                            self.pos -= 1;
                            return Err(self.error("expected `L` or `R` after `@`"));
                        }
                    }
                }
                Some(Tok::Punct('!')) => {
                    self.pos += 1;
                    Raw::Recovery
                }
                None | Some(Tok::Arrow | Tok::Punct(',' | ';' | '}' | ')' | '>')) => {
                    return Ok(symbols)
                }
                Some(_) => return Err(self.error("unexpected token in a pattern")),
            };
            symbols.push(self.postfix(symbol));
        }
    }

    /// `<e:!>`, `<mut v:Value>`, `<Sp<Setenv>>`: the inside counts, the name not.
    fn selection(&mut self) -> Result<Raw, String> {
        self.pos += 1;
        if self.peek() == Some(&Tok::Ident("mut".to_string())) {
            self.pos += 1;
        }
        if matches!(self.peek(), Some(Tok::Ident(_))) && self.peek_at(1) == Some(&Tok::Punct(':')) {
            self.pos += 2;
        }
        let inner = self.sequence()?;
        self.expect('>')?;
        Ok(Raw::Group(inner))
    }

    fn postfix(&mut self, mut symbol: Raw) -> Raw {
        loop {
            symbol = match self.peek() {
                Some(Tok::Punct('?')) => Raw::Optional(Box::new(symbol)),
                Some(Tok::Punct('*')) => Raw::ZeroOrMore(Box::new(symbol)),
                Some(Tok::Punct('+')) => Raw::OneOrMore(Box::new(symbol)),
                _ => return symbol,
            };
            self.pos += 1;
        }
    }

    /// The block of `//` lines that ends on the line above `line`, as one paragraph.
    fn comment_above(&self, line: usize) -> Option<String> {
        let mut first = self.comments.iter().rposition(|c| c.line + 1 == line)?;
        let last = first;
        while first > 0 && self.comments[first - 1].line + 1 == self.comments[first].line {
            first -= 1;
        }
        let text = self.comments[first..=last]
            .iter()
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        (!text.is_empty()).then_some(text)
    }
}

/// A token as an error message shows it.
struct Shown<'a>(&'a Tok);

impl std::fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Tok::Str(s) => write!(f, "{s:?}"),
            Tok::Ident(w) | Tok::MacroId(w) => write!(f, "`{w}`"),
            Tok::Quote => write!(f, "a quote"),
            Tok::Arrow => write!(f, "`=>`"),
            Tok::Punct(c) => write!(f, "`{c}`"),
        }
    }
}
