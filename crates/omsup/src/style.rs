//! Colour, decided per stream: renderers paint with anstyle unless `--color never`, and every
//! line goes out through anstream's stdout and stderr, each of which strips the escapes on its
//! own when it is not a terminal, when `NO_COLOR` is set, or `TERM=dumb` (and keeps them with
//! `CLICOLOR_FORCE`). So `omsup plan > plan.txt` from a terminal writes no escape codes into
//! the file while the errors on the terminal stay red.

use std::io::IsTerminal;

/// `--color` as given on the command line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour on each stream that is a terminal, unless `NO_COLOR` is set.
    #[default]
    Auto,
    Always,
    Never,
}

/// Resolved output styling, passed to every renderer.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    /// Whether renderers paint at all; each stream then keeps or strips the escapes.
    pub color: bool,
    pub stdout_is_terminal: bool,
    pub stderr_is_terminal: bool,
}

impl Style {
    /// Sets anstream's choice for both streams from `--color` (`auto` leaves each stream to
    /// decide) and returns the style renderers paint with.
    pub fn detect(choice: ColorChoice) -> Self {
        match choice {
            ColorChoice::Auto => {}
            ColorChoice::Always => anstream::ColorChoice::Always.write_global(),
            ColorChoice::Never => anstream::ColorChoice::Never.write_global(),
        }
        Self {
            color: choice != ColorChoice::Never,
            stdout_is_terminal: std::io::stdout().is_terminal(),
            stderr_is_terminal: std::io::stderr().is_terminal(),
        }
    }

    /// The style for text drawn on stderr without anstream (the live view, drawn by
    /// indicatif): colour only when stderr's own choice keeps it.
    pub fn for_stderr(&self) -> Self {
        let keeps =
            anstream::AutoStream::choice(&std::io::stderr()) != anstream::ColorChoice::Never;
        Self {
            color: self.color && keeps,
            ..*self
        }
    }

    /// No colour, no terminal: what tests and pipes see.
    pub const fn plain() -> Self {
        Self {
            color: false,
            stdout_is_terminal: false,
            stderr_is_terminal: false,
        }
    }

    /// Wraps `text` in `style` when colour is on.
    pub fn paint(&self, style: anstyle::Style, text: &str) -> String {
        if self.color {
            format!("{style}{text}{style:#}")
        } else {
            text.to_owned()
        }
    }

    pub fn red(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Red.on_default().bold(), text)
    }
    pub fn yellow(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Yellow.on_default().bold(), text)
    }
    pub fn green(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Green.on_default(), text)
    }
    pub fn cyan(&self, text: &str) -> String {
        self.paint(anstyle::AnsiColor::Cyan.on_default().bold(), text)
    }
    pub fn bold(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().bold(), text)
    }
    pub fn dim(&self, text: &str) -> String {
        self.paint(anstyle::Style::new().dimmed(), text)
    }
}
