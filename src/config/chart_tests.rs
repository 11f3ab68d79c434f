//! The Helm chart and the plain manifest agree with the declaration: every chart value a
//! setting names exists, has the binary's default (or the one declared as the chart's
//! own), and reaches the provider as that setting's flag or environment variable; the
//! deploy files pass no flag or `SSCSI_AWS_*` variable the binary does not declare.
//! (deploy/check_deploy.py renders the chart with helm; these read the files as text.)

use std::path::Path;

use serde_json::Value;

use super::{SettingInfo, Settings, ENV_PREFIX, SETTINGS};

const CHART: &str = "deploy/helm/secrets-store-csi-driver-provider-aws";

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

fn values() -> Value {
    serde_saphyr::from_str(&read(&format!("{CHART}/values.yaml"))).expect("values.yaml parses")
}

fn daemonset() -> String {
    read(&format!("{CHART}/templates/daemonset.yaml"))
}

fn lookup<'a>(values: &'a Value, key: &str) -> Option<&'a Value> {
    key.split('.').try_fold(values, |v, part| v.get(part))
}

/// A value of values.yaml as a flag would take it (`5`, `true`, `30s`).
fn spell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Whether the template passes `.Values.<key>` as `info`'s flag or variable: in the
/// flag's own line (`- --qps={{ .Values.k8sThrottlingParams.qps }}`), in a flag line
/// under `{{- with .Values.<key> }}`, or in the `value:` under the variable's name.
fn passes(template: &str, info: &SettingInfo, key: &str) -> bool {
    let reference = format!(".Values.{key}");
    let env = format!("- name: {}", info.env_var());
    let mut with_key = false;
    let mut lines = template.lines().peekable();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with("{{- with ") || line.starts_with("{{ with ") {
            with_key = line.contains(&reference);
        } else if line.starts_with("{{- end") || line.starts_with("{{ end") {
            with_key = false;
        }
        if let Some(flag) = info.flag() {
            let flag_line = line.starts_with(&format!("- {flag}="));
            if flag_line && (line.contains(&reference) || (with_key && line.contains("{{ . }}"))) {
                return true;
            }
        }
        if line == env && lines.peek().is_some_and(|next| next.contains(&reference)) {
            return true;
        }
    }
    false
}

#[test]
fn every_chart_value_of_a_setting_exists_with_its_default_and_reaches_the_provider() {
    let values = values();
    let template = daemonset();
    let defaults = Settings::default();
    let mut checked = 0;
    for info in SETTINGS {
        let Some(chart) = &info.chart else { continue };
        let value = lookup(&values, chart.key)
            .unwrap_or_else(|| panic!("values.yaml has no {} ({})", chart.key, info.name));
        let want = chart
            .default
            .map(str::to_string)
            .unwrap_or_else(|| (info.spell)(&defaults));
        assert_eq!(
            spell(value),
            want,
            "values.yaml {} is not the default of {} (declare the chart's own with `= \"…\"`)",
            chart.key,
            info.name
        );
        assert!(
            passes(&template, info, chart.key),
            "templates/daemonset.yaml does not pass .Values.{} as {} or {}",
            chart.key,
            info.flag().unwrap_or_default(),
            info.env_var()
        );
        checked += 1;
    }
    assert!(checked > 10, "only {checked} chart values declared");
}

/// Flags (`--name`) and `SSCSI_AWS_*` names in `text` that the binary does not declare.
fn undeclared(text: &str) -> Vec<String> {
    let flags: Vec<String> = SETTINGS.iter().filter_map(SettingInfo::flag).collect();
    let envs: Vec<String> = SETTINGS.iter().map(SettingInfo::env_var).collect();
    let mut unknown = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(arg) = line.strip_prefix("- --") {
            let name = format!("--{}", arg.split('=').next().unwrap_or_default());
            if !flags.contains(&name) && name != "--config" {
                unknown.push(name);
            }
        }
        if let Some(pos) = line.find(ENV_PREFIX) {
            let name: String = line[pos..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !envs.contains(&name) {
                unknown.push(name);
            }
        }
    }
    unknown
}

#[test]
fn the_chart_and_the_installer_pass_only_declared_settings() {
    assert_eq!(
        undeclared(&daemonset()),
        Vec::<String>::new(),
        "daemonset.yaml"
    );
    let installer = read("deploy/installer.yaml");
    assert_eq!(
        undeclared(&installer),
        Vec::<String>::new(),
        "installer.yaml"
    );
    // The check itself sees flags: the installer passes some.
    assert!(installer.contains("- --qps="));
    assert_eq!(
        undeclared("- --no-such-flag=1\n- name: SSCSI_AWS_NOPE\n").len(),
        2
    );
}
