//! Progress of long commands (`verify`, `backup`, `restore`, `projections rebuild`,
//! loadgen's loading phases): a bar on standard error when it is a terminal, otherwise a
//! plain line at every tenth, so logs of scripted runs stay readable.

/// Progress of one phase: a bar on a terminal, otherwise a line at every tenth.
#[derive(Debug)]
pub struct Meter {
    label: &'static str,
    unit: &'static str,
    terminal: bool,
    bar: Option<indicatif::ProgressBar>,
    total: u64,
    shown: u64,
}

impl Meter {
    pub fn new(label: &'static str, unit: &'static str) -> Self {
        use std::io::IsTerminal as _;
        Self { label, unit, terminal: std::io::stderr().is_terminal(), bar: None, total: 0, shown: 0 }
    }

    /// `done` of `total` so far (a new `total` starts a new bar).
    pub fn at(&mut self, done: u64, total: u64) {
        if total != self.total {
            self.total = total;
            self.shown = 0;
            if self.terminal {
                let template =
                    format!("{} {{bar:40}} {{pos}}/{{len}} {} ({{eta}} left)", self.label, self.unit);
                let style = indicatif::ProgressStyle::with_template(&template).expect("a valid template");
                self.bar = Some(indicatif::ProgressBar::new(total).with_style(style));
            }
        }
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                if done >= total {
                    bar.finish_and_clear();
                }
            }
            None => {
                if let Some(line) = self.line(done) {
                    eprintln!("{line}");
                }
            }
        }
    }

    /// The plain line for `done`, when it reaches a new tenth of the total.
    fn line(&mut self, done: u64) -> Option<String> {
        let tenth = done.saturating_mul(10).checked_div(self.total)?.min(10);
        (tenth > self.shown).then(|| {
            self.shown = tenth;
            format!("{}: {done} of {} {}", self.label, self.total, self.unit)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_output_is_one_line_per_tenth_and_restarts_with_a_new_total() {
        let mut meter = Meter { terminal: false, ..Meter::new("load", "rows") };
        meter.total = 1_000;
        let lines: Vec<String> = (0..=1_000).filter_map(|done| meter.line(done)).collect();
        assert_eq!(lines.len(), 10);
        assert_eq!(lines[0], "load: 100 of 1000 rows");
        assert_eq!(lines[9], "load: 1000 of 1000 rows");
        meter.at(0, 50);
        assert_eq!(meter.line(50).as_deref(), Some("load: 50 of 50 rows"));
        meter.total = 0;
        assert_eq!(meter.line(7), None, "no total, no line");
    }
}
