//! Where the keys of a template are in its text, so that every problem can
//! name its line.

use std::ops::Range;

/// Where the keys of a template are in its text.
///
/// serde_yaml keeps no positions once a value is parsed, so this reads the
/// block layout of the text itself: each line's indentation, whether it is a
/// list item, and its key. A key it cannot place (flow style nested more
/// than one level, unusual layouts) gets no line rather than a wrong one, and
/// every lookup about a step stays within that step's lines.
pub(super) struct Outline<'a> {
    /// The lines that hold something, without blank and comment lines.
    lines: Vec<Line<'a>>,
    /// For each step, the indices of `lines` it spans; empty when the steps
    /// could not be told apart.
    steps: Vec<Range<usize>>,
}

struct Line<'a> {
    /// 1-based line number in the file.
    number: usize,
    /// The column where the content starts, after any `- `.
    col: usize,
    /// The column of the `-`, for a list item.
    dash: Option<usize>,
    /// The text from `col` on.
    content: &'a str,
}

impl<'a> Outline<'a> {
    pub(super) fn new(text: &'a str, step_count: usize) -> Self {
        let mut lines = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim_start_matches(' ');
            if trimmed.trim().is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let indent = raw.len() - trimmed.len();
            let line = match trimmed.strip_prefix('-') {
                Some(rest) if rest.is_empty() || rest.starts_with(' ') => {
                    let content = rest.trim_start_matches(' ');
                    Line {
                        number: i + 1,
                        col: indent + 1 + rest.len() - content.len(),
                        dash: Some(indent),
                        content,
                    }
                }
                _ => Line {
                    number: i + 1,
                    col: indent,
                    dash: None,
                    content: trimmed,
                },
            };
            lines.push(line);
        }
        let mut outline = Self {
            lines,
            steps: Vec::new(),
        };
        outline.steps = outline
            .step_ranges()
            .filter(|r| r.len() == step_count)
            .unwrap_or_default();
        outline
    }

    /// The lines of each item of the top-level `steps:` list.
    fn step_ranges(&self) -> Option<Vec<Range<usize>>> {
        let steps = self.top_index("steps")?;
        let block = self.block(steps);
        let item = self.lines[..block.end].get(block.start)?.dash?;
        let starts: Vec<usize> = block
            .clone()
            .filter(|&j| self.lines[j].dash == Some(item))
            .collect();
        let ends = starts.iter().skip(1).copied().chain([block.end]);
        Some(starts.iter().zip(ends).map(|(&start, end)| start..end).collect())
    }

    /// The lines after line `i` that are indented deeper than it: its value.
    fn block(&self, i: usize) -> Range<usize> {
        let col = self.lines[i].col;
        let end = (i + 1..self.lines.len())
            .find(|&j| self.lines[j].col <= col)
            .unwrap_or(self.lines.len());
        i + 1..end
    }

    fn top_index(&self, key: &str) -> Option<usize> {
        self.lines
            .iter()
            .position(|l| l.col == 0 && l.dash.is_none() && key_of(l.content) == Some(key))
    }

    /// The line of top-level key `key`.
    pub(super) fn top(&self, key: &str) -> Option<usize> {
        self.top_index(key).map(|i| self.lines[i].number)
    }

    /// The line of `path` (such as `["retry", "max_attempts"]`) in step `step`.
    pub(super) fn step_key(&self, step: usize, path: &[&str]) -> Option<usize> {
        self.step_key_index(step, path).map(|i| self.lines[i].number)
    }

    fn step_key_index(&self, step: usize, path: &[&str]) -> Option<usize> {
        let range = self.steps.get(step)?.clone();
        let first = &self.lines[range.start];
        // `-` alone on its line puts the step's first key on the next one.
        let col = if first.content.is_empty() {
            self.lines[range.clone()].get(1)?.col
        } else {
            first.col
        };
        self.find(range, col, path)
    }

    fn find(&self, range: Range<usize>, col: usize, path: &[&str]) -> Option<usize> {
        let (key, rest) = path.split_first()?;
        let at = range
            .clone()
            .find(|&j| self.lines[j].col == col && key_of(self.lines[j].content) == Some(key))?;
        let Some(inner) = rest.first() else {
            return Some(at);
        };
        let block = self.block(at);
        let block = block.start..block.end.min(range.end);
        match self.lines[block.clone()].first() {
            Some(first) => self.find(block, first.col, rest),
            // A flow mapping on the key's own line: `retry: {max_attempts: 0}`.
            None => value_of(self.lines[at].content).contains(inner).then_some(at),
        }
    }

    /// The line that lists `dependency` among the dependencies of step `step`.
    pub(super) fn dependency(&self, step: usize, dependency: &str) -> Option<usize> {
        let at = self.step_key_index(step, &["dependencies"])?;
        let inline = value_of(self.lines[at].content);
        if !inline.is_empty() {
            // A flow list on the key's own line: `dependencies: [a, b]`.
            let listed = inline
                .trim_start_matches('[')
                .trim_end_matches(']')
                .split(',')
                .any(|d| unquote(d) == dependency);
            return listed.then_some(self.lines[at].number);
        }
        self.block(at)
            .find(|&j| self.lines[j].dash.is_some() && unquote(self.lines[j].content) == dependency)
            .map(|j| self.lines[j].number)
    }
}

/// The key of a `key: value` or `key:` line.
fn key_of(content: &str) -> Option<&str> {
    let colon = content
        .char_indices()
        .find(|&(i, c)| {
            c == ':'
                && content[i + 1..]
                    .chars()
                    .next()
                    .is_none_or(|n| n == ' ' || n == '\t')
        })?
        .0;
    Some(unquote(&content[..colon]))
}

/// The value of a `key: value` line, without a trailing comment.
fn value_of(content: &str) -> &str {
    let value = match key_of(content) {
        Some(_) => content.split_once(':').map_or("", |(_, v)| v),
        None => content,
    };
    let value = value.trim();
    if value.starts_with('#') {
        ""
    } else {
        value.split(" #").next().unwrap_or(value).trim()
    }
}

fn unquote(v: &str) -> &str {
    let v = v.split(" #").next().unwrap_or(v).trim();
    v.trim_matches(|c| c == '"' || c == '\'')
}
