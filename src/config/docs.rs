//! The table of settings in `docs/configuration.md`, rendered from the declaration and
//! from clap's own view of the flags, so the docs cannot name a flag or a default the
//! binary does not have. A test keeps the file in step (`UPDATE_DOCS=1` rewrites it).

use clap::Args;

use super::{Flags, SettingInfo, Settings, SETTINGS};

/// The Markdown table of every setting: file key, flag, environment variable, default,
/// chart value and what it does.
pub fn settings_table() -> String {
    let defaults = Settings::default();
    let flags = Flags::augment_args(clap::Command::new("provider"));
    let mut out = String::from(
        "| setting (file key) | flag | environment | default | chart value | what it does |\n\
         |---|---|---|---|---|---|\n",
    );
    for info in SETTINGS {
        let cells = [
            code(info.name),
            flag_cell(info, &flags),
            code(&info.env_var()),
            default_cell(info, &defaults),
            chart_cell(info),
            info.help(),
        ];
        out.push_str(&format!("| {} |\n", cells.map(|c| escape(&c)).join(" | ")));
    }
    out
}

fn code(text: &str) -> String {
    format!("`{text}`")
}

/// A `|` would end the cell, even inside code.
fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

/// `--qps N`, `--driver-writes-secrets[=BOOL]`, `--store aws|local`, as clap takes it.
fn flag_cell(info: &SettingInfo, flags: &clap::Command) -> String {
    let Some(flag) = info.flag() else {
        return "—".to_string();
    };
    let Some(arg) = flags.get_arguments().find(|a| a.get_id() == info.name) else {
        return code(&flag);
    };
    // A value enum shows its values (`aws|local`), any other flag its value name.
    let choices: Vec<String> = arg
        .get_possible_values()
        .iter()
        .map(|v| v.get_name().to_string())
        .collect();
    let value = match arg.get_value_names() {
        _ if !choices.is_empty() => choices.join("|"),
        Some(names) => names
            .iter()
            .map(|n| n.to_string())
            .collect::<Vec<_>>()
            .join(" "),
        None => String::new(),
    };
    let optional = arg.get_num_args().is_some_and(|n| n.min_values() == 0);
    if optional {
        code(&format!("{flag}[={value}]"))
    } else {
        code(&format!("{flag} {value}"))
    }
}

/// The default, with sizes in KiB or MiB too (`16777216 (16 MiB)`).
fn default_cell(info: &SettingInfo, defaults: &Settings) -> String {
    let spelled = (info.spell)(defaults);
    if spelled.is_empty() {
        return info.default_text(defaults);
    }
    let size = info
        .name
        .ends_with("_bytes")
        .then(|| spelled.parse::<usize>().ok())
        .flatten()
        .and_then(human_size);
    match size {
        Some(size) => format!("{} ({size})", code(&spelled)),
        None => code(&spelled),
    }
}

fn human_size(bytes: usize) -> Option<String> {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * KIB;
    match bytes {
        b if b >= MIB && b.is_multiple_of(MIB) => Some(format!("{} MiB", b / MIB)),
        b if b >= KIB && b.is_multiple_of(KIB) => Some(format!("{} KiB", b / KIB)),
        _ => None,
    }
}

fn chart_cell(info: &SettingInfo) -> String {
    match &info.chart {
        None => "—".to_string(),
        Some(chart) => match chart.default {
            Some(default) => format!("{} (chart default `{default}`)", code(chart.key)),
            None => code(chart.key),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;

    const BEGIN: &str = "<!-- settings:begin -->";
    const END: &str = "<!-- settings:end -->";

    #[test]
    fn the_configuration_doc_shows_the_declared_settings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/configuration.md");
        let text = std::fs::read_to_string(&path).expect("docs/configuration.md");
        let (before, rest) = text.split_once(BEGIN).expect("a settings:begin marker");
        let (shown, after) = rest.split_once(END).expect("a settings:end marker");
        let want = format!("\n{}", settings_table());
        if shown == want {
            return;
        }
        if std::env::var("UPDATE_DOCS").as_deref() == Ok("1") {
            std::fs::write(&path, format!("{before}{BEGIN}{want}{END}{after}"))
                .expect("rewrite docs/configuration.md");
            return;
        }
        let old: BTreeSet<&str> = shown.lines().collect();
        let new: BTreeSet<&str> = want.lines().collect();
        let diff: Vec<String> = old
            .difference(&new)
            .map(|l| format!("- {l}"))
            .chain(new.difference(&old).map(|l| format!("+ {l}")))
            .collect();
        panic!(
            "docs/configuration.md's settings table is not what the declaration renders; \
             rewrite it with `UPDATE_DOCS=1 cargo test --lib config::docs`:\n{}",
            diff.join("\n")
        );
    }

    #[test]
    fn clap_has_exactly_the_declared_flags_with_their_defaults() {
        let defaults = Settings::default();
        let command = Flags::augment_args(clap::Command::new("provider"));
        let clap_flags: BTreeSet<String> = command
            .get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .collect();
        let declared: BTreeSet<String> = SETTINGS
            .iter()
            .filter_map(SettingInfo::flag)
            .chain(["--config".to_string()])
            .collect();
        assert_eq!(clap_flags, declared);
        for info in SETTINGS.iter().filter(|s| s.has_flag) {
            let arg = command
                .get_arguments()
                .find(|a| a.get_id() == info.name)
                .expect("declared flag");
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let suffix = format!("[default: {}]", info.default_text(&defaults));
            assert!(help.ends_with(&suffix), "{}: {help}", info.name);
        }
    }

    #[test]
    fn every_setting_says_what_it_does_and_what_empty_means_only_when_it_can_be() {
        let defaults = Settings::default();
        let json = serde_json::to_value(&defaults).expect("settings serialize");
        assert_eq!(
            json.as_object().map(|o| o.len()),
            Some(SETTINGS.len()),
            "one row per field"
        );
        for info in SETTINGS {
            assert!(info.help().ends_with('.'), "{}: {:?}", info.name, info.doc);
            assert!(json.get(info.name).is_some(), "{} is a field", info.name);
            if info.when_empty.is_some() {
                assert!(
                    (info.spell)(&defaults).is_empty(),
                    "{}: when_empty on a default that is not empty",
                    info.name
                );
            }
        }
    }

    #[test]
    fn sizes_are_shown_in_binary_units() {
        assert_eq!(human_size(16 * 1024 * 1024).as_deref(), Some("16 MiB"));
        assert_eq!(human_size(4032 * 1024).as_deref(), Some("4032 KiB"));
        assert_eq!(human_size(1000), None);
    }
}
