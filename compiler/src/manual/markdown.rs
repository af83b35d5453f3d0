//! The little Markdown that `docs/language.md` uses, to HTML: headings, paragraphs,
//! `-` lists with indented continuation lines, fenced code blocks, pipe tables, and
//! inline code, links and `*emphasis*`. It is not a general Markdown renderer; a test
//! renders the real file and checks that nothing is left unconverted.

/// A block of the document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Block {
    /// `#`, `##` or `###`: the level and the text.
    Heading(usize, String),
    Paragraph(String),
    /// Items, each one paragraph of text.
    List(Vec<String>),
    /// A fenced block's lines, verbatim.
    Code(String),
    /// The header cells and the rows, each cell as written (inline Markdown).
    Table(Vec<String>, Vec<Vec<String>>),
}

/// Splits `text` into blocks.
pub(super) fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with("```") {
            let mut code = String::new();
            for line in lines.by_ref() {
                if line.trim_start().starts_with("```") {
                    break;
                }
                code.push_str(line);
                code.push('\n');
            }
            out.push(Block::Code(code));
        } else if let Some((level, title)) = heading(trimmed) {
            out.push(Block::Heading(level, title.to_string()));
        } else if trimmed.starts_with('|') {
            let mut rows = vec![cells(trimmed)];
            while let Some(next) = lines.next_if(|l| l.trim_start().starts_with('|')) {
                rows.push(cells(next.trim()));
            }
            let header = rows.remove(0);
            // The `|---|---|` line.
            if rows
                .first()
                .is_some_and(|r| r.iter().all(|c| c.chars().all(|ch| "-: ".contains(ch))))
            {
                rows.remove(0);
            }
            out.push(Block::Table(header, rows));
        } else if let Some(first) = trimmed.strip_prefix("- ") {
            let mut items = vec![first.to_string()];
            while let Some(next) = lines
                .next_if(|l| l.starts_with("- ") || l.starts_with("  ") && !l.trim().is_empty())
            {
                match next.strip_prefix("- ") {
                    Some(item) => items.push(item.trim().to_string()),
                    None => {
                        let last = items.last_mut().expect("an item");
                        last.push(' ');
                        last.push_str(next.trim());
                    }
                }
            }
            out.push(Block::List(items));
        } else {
            let mut text = trimmed.to_string();
            while let Some(next) = lines.next_if(|l| !l.trim().is_empty() && !is_block_start(l)) {
                text.push(' ');
                text.push_str(next.trim());
            }
            out.push(Block::Paragraph(text));
        }
    }
    out
}

/// Whether `line` starts another block, which ends a paragraph.
fn is_block_start(line: &str) -> bool {
    let t = line.trim_start();
    t.starts_with("```") || t.starts_with('|') || heading(t).is_some() || line.starts_with("- ")
}

fn heading(line: &str) -> Option<(usize, &str)> {
    let level = line.bytes().take_while(|&b| b == b'#').count();
    let title = line.get(level..)?.strip_prefix(' ')?;
    (1..=6).contains(&level).then_some((level, title.trim()))
}

/// The cells of a table row: split at `|` that is not escaped as `\|`.
fn cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|');
    let inner = inner.strip_suffix('|').unwrap_or(inner);
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cells.last_mut().expect("a cell").push('|');
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().expect("a cell").push(c),
        }
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

/// The anchor of a heading, as GitHub makes it: lower case, spaces as `-`, other
/// punctuation dropped.
pub(super) fn slug(title: &str) -> String {
    title
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// How inline Markdown is written in an output format.
pub(super) struct Style {
    /// Plain text, escaped for the format.
    pub escape: fn(&str) -> String,
    /// What opens and closes a code span and an emphasis.
    pub code: [&'static str; 2],
    pub em: [&'static str; 2],
}

/// Inline Markdown to HTML: `` `code` ``, `[text](url)` (URLs rewritten by `link`; a
/// link it rewrites to `""` is left as its text), `*emphasis*`; everything else
/// escaped.
pub(super) fn inline(text: &str, link: &dyn Fn(&str) -> String) -> String {
    let html = Style {
        escape,
        code: ["<code>", "</code>"],
        em: ["<em>", "</em>"],
    };
    let anchor = |url: &str, label: &str| {
        let target = link(url);
        if target.is_empty() {
            label.to_string()
        } else {
            format!("<a href=\"{}\">{label}</a>", escape(&target))
        }
    };
    styled(text, &html, &anchor)
}

/// Inline Markdown in `style`, links written by `link` (URL, rendered label).
pub(super) fn styled(text: &str, style: &Style, link: &dyn Fn(&str, &str) -> String) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(style.code[0]);
            out.push_str(&(style.escape)(part));
            out.push_str(style.code[1]);
        } else {
            out.push_str(&prose(part, style, link));
        }
    }
    out
}

/// Text outside code spans: links and emphasis.
fn prose(text: &str, style: &Style, link: &dyn Fn(&str, &str) -> String) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        let parsed = after.find("](").and_then(|close| {
            let url_end = after[close + 2..].find(')')?;
            Some((
                &after[..close],
                &after[close + 2..close + 2 + url_end],
                close + 3 + url_end,
            ))
        });
        let Some((label, url, len)) = parsed else {
            out.push_str(&emphasis(&rest[..=open], style));
            rest = after;
            continue;
        };
        out.push_str(&emphasis(&rest[..open], style));
        out.push_str(&link(url, &emphasis(label, style)));
        rest = &after[len..];
    }
    out.push_str(&emphasis(rest, style));
    out
}

/// `*word*` emphasised; a lone `*` stays as it is. Escapes the text.
fn emphasis(text: &str, style: &Style) -> String {
    let escape = style.escape;
    let parts: Vec<&str> = text.split('*').collect();
    let mut out = escape(parts[0]);
    // `parts[i]` follows a `*`; it is emphasised when another `*` closes it directly.
    let mut i = 1;
    while i < parts.len() {
        let part = parts[i];
        let closed = i + 1 < parts.len()
            && !part.is_empty()
            && !part.starts_with(' ')
            && !part.ends_with(' ');
        if closed {
            out.push_str(style.em[0]);
            out.push_str(&escape(part));
            out.push_str(style.em[1]);
            out.push_str(&escape(parts[i + 1]));
            i += 2;
        } else {
            out.push_str(&escape("*"));
            out.push_str(&escape(part));
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn same(url: &str) -> String {
        url.to_string()
    }

    #[test]
    fn inline_forms() {
        assert_eq!(
            inline("a `x < y` and [b](c.md) *w* 2 * 3", &same),
            "a <code>x &lt; y</code> and <a href=\"c.md\">b</a> <em>w</em> 2 * 3"
        );
        assert_eq!(
            inline("[not a link] `*x*`", &same),
            "[not a link] <code>*x*</code>"
        );
        assert_eq!(
            inline("see [*b*](c.md)", &|_| String::new()),
            "see <em>b</em>"
        );
    }

    #[test]
    fn blocks_of_each_kind() {
        let text = "# T\n\npara\ngraph\n\n- one\n  more\n- two\n\n```\nx\n```\n\n\
                    | a | b |\n|---|---|\n| `p\\|q` | r |\n### Sub\n";
        assert_eq!(
            blocks(text),
            [
                Block::Heading(1, "T".into()),
                Block::Paragraph("para graph".into()),
                Block::List(vec!["one more".into(), "two".into()]),
                Block::Code("x\n".into()),
                Block::Table(
                    vec!["a".into(), "b".into()],
                    vec![vec!["`p|q`".into(), "r".into()]]
                ),
                Block::Heading(3, "Sub".into()),
            ]
        );
        assert_eq!(slug("The spawn block"), "the-spawn-block");
    }
}
