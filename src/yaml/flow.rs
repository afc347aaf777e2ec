//! Lines inside flow collections, indented so that saphyr-parser takes them.
//!
//! saphyr-parser (0.3.3 and 0.3.4) wants every line inside a flow collection (`[`, `{`)
//! indented past the block collection that holds the flow, and refuses a closing bracket,
//! an item or a scalar's continuation at or left of its key's column. go-yaml has no such
//! rule: indentation means nothing inside a flow (YAML 1.2 §7.4 says the same), so kubectl
//! reads them. Leading white space of such a line is never content (it separates tokens, or
//! is folded away inside a multi-line scalar), so adding spaces there changes no value.
//!
//! `reindent` finds such lines with a light scan (quotes, comments, brackets, block
//! scalars) that may misjudge odd text; the loader then checks, from the parser's own
//! events, that every line it moved does start inside a flow collection, and gives up
//! otherwise (see `load_all`). A misjudged line costs a refusal, never a changed value.

/// The text with lines moved right, and where each moved line starts (a char index in it).
pub(super) struct Reindented {
    pub text: String,
    pub starts: Vec<usize>,
}

#[derive(Default)]
struct Scan {
    /// Open flow collections.
    depth: usize,
    /// Column of the outermost open flow collection's bracket.
    outer: usize,
    quote: Option<char>,
    /// In a block scalar (`|`, `>`) whose indicator's line is indented this much.
    block_scalar: Option<usize>,
}

/// `text` with every line that starts inside a flow collection, at or left of the
/// outermost bracket's column, moved right of it; `None` if there is no such line.
pub(super) fn reindent(text: &str) -> Option<Reindented> {
    let mut out = String::with_capacity(text.len() + 64);
    let mut starts = Vec::new();
    let mut chars = 0;
    let mut scan = Scan::default();
    for line in text.split_inclusive('\n') {
        let indent = line.chars().take_while(|c| *c == ' ' || *c == '\t').count();
        // Spaces and tabs are one byte each.
        let rest = &line[indent..];
        let blank = rest.trim().is_empty();
        if let Some(parent) = scan.block_scalar {
            if blank || indent > parent {
                out.push_str(line);
                chars += line.chars().count();
                continue;
            }
            scan.block_scalar = None;
        }
        // A document marker ends any flow (go-yaml refuses it there): never hide one.
        let marker = indent == 0 && (rest.starts_with("---") || rest.starts_with("..."));
        let comment = scan.quote.is_none() && rest.starts_with('#');
        if scan.depth > 0 && indent <= scan.outer && !marker && !blank && !comment {
            let add = scan.outer + 1 - indent;
            starts.push(chars);
            out.extend(std::iter::repeat_n(' ', add));
            chars += add;
        }
        scan.line(line, indent);
        out.push_str(line);
        chars += line.chars().count();
    }
    (!starts.is_empty()).then_some(Reindented { text: out, starts })
}

impl Scan {
    /// Follows quotes and brackets through one line indented `indent`.
    fn line(&mut self, line: &str, indent: usize) {
        let mut chars = line.chars().enumerate().peekable();
        let mut prev: Option<char> = None;
        // Outside flows: whether a node may start here (line start, after `- `, `? `, `: `,
        // an anchor or a tag), as a flow collection or a quoted scalar may only there.
        let mut node_start = true;
        while let Some((col, c)) = chars.next() {
            let next = chars.peek().map(|&(_, n)| n);
            match self.quote {
                Some('\'') if c == '\'' && next == Some('\'') => _ = chars.next(),
                Some('\'') if c == '\'' => self.quote = None,
                Some('"') if c == '\\' => _ = chars.next(),
                Some('"') if c == '"' => self.quote = None,
                Some(_) => {}
                None => {
                    let after_blank = prev.is_none_or(|p| p == ' ' || p == '\t');
                    let in_flow = self.depth > 0;
                    match c {
                        '#' if after_blank => return,
                        ' ' | '\t' | '\r' | '\n' => {}
                        '[' | '{' if in_flow => self.depth += 1,
                        '[' | '{' if node_start => {
                            self.depth = 1;
                            self.outer = col;
                        }
                        ']' | '}' if in_flow => self.depth -= 1,
                        '\'' | '"'
                            if (in_flow
                                && (after_blank || prev.is_some_and(|p| "[{,:".contains(p))))
                                || (!in_flow && node_start) =>
                        {
                            self.quote = Some(c);
                        }
                        '|' | '>' if !in_flow && node_start => {
                            self.block_scalar = Some(indent);
                            return;
                        }
                        '&' | '!' if !in_flow && node_start => {
                            while chars.next_if(|&(_, n)| !n.is_whitespace()).is_some() {}
                        }
                        '-' | '?' | ':' if !in_flow && next.is_none_or(char::is_whitespace) => {
                            node_start = true;
                        }
                        _ if !in_flow => node_start = false,
                        _ => {}
                    }
                }
            }
            prev = Some(c);
        }
    }
}
