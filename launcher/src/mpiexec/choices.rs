//! What the user already chose through the MPI launcher's own means (Open
//! MPI's `mpirun`, Slurm's `srun`), so that the launcher's defaults never
//! override it.
//!
//! Owns recognising, for Open MPI, a binding (`--bind-to`, `--map-by …:PE=n`,
//! `--cpus-per-rank`, a rankfile, and the same as MCA parameters: `--mca`,
//! `OMPI_MCA_*` variables, `mca-params.conf` files), an oversubscription
//! choice (`--oversubscribe`, `--nooversubscribe`, `--map-by
//! …:OVERSUBSCRIBE` and their MCA forms), and `--use-hwthread-cpus` (Open MPI
//! then counts hardware threads, not cores, as slots); and for srun, what a
//! rank's death does (`--kill-on-bad-exit`, `-K`), what Ctrl-C does
//! (`--disable-status`, `-X`, `--quit-on-interrupt`) and the PMI plugin
//! (`--mpi`), as flags or as the `SLURM_*` variables srun reads. Which flags
//! follow from these is `launch`'s, `srun`'s and `plan`'s business. Pure
//! apart from [`Choices::detect`], which reads the environment and the
//! files.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// MCA parameters that choose a binding by themselves.
const BINDING_PARAMS: [&str; 6] = [
    "hwloc_base_binding_policy",
    "hwloc_default_binding_policy",
    "rmaps_base_cpus_per_rank",
    "rmaps_base_cpus_per_proc",
    "rmaps_rank_file_path",
    "orte_rankfile",
];

/// Command-line flags that choose a binding (with or without a value).
const BINDING_FLAGS: [&str; 6] = [
    "bind-to",
    "cpus-per-proc",
    "cpus-per-rank",
    "rankfile",
    "rf",
    "cpu-set",
];

/// What was chosen, each as a short description of where (for `--dry-run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Choices {
    /// A binding, e.g. `--map-by ppr:1:node:PE=4`.
    pub binding: Option<String>,
    /// Oversubscription allowed or refused, e.g. `--nooversubscribe`.
    pub oversubscribe: Option<String>,
    /// Hardware threads count as slots (`--use-hwthread-cpus`).
    pub hwthreads: bool,
    /// srun: whether a task that fails ends the step, e.g. `-K0`.
    pub kill_on_bad_exit: Option<String>,
    /// srun: what a SIGINT does, e.g. `--quit-on-interrupt`.
    pub interrupt: Option<String>,
    /// srun: the PMI plugin, e.g. `--mpi=pmi2`.
    pub pmi: Option<String>,
}

/// The variables srun reads in place of its flags, and which choice each
/// makes.
const SRUN_VARIABLES: [&str; 4] = [
    "SLURM_KILL_BAD_EXIT",
    "SLURM_DISABLE_STATUS",
    "SLURM_MPI_TYPE",
    "SLURM_QUIT_ON_INTERRUPT",
];

impl Choices {
    /// Nothing chosen (for tests' constants; `Default` is not `const`).
    #[cfg(test)]
    pub const NONE: Choices = Choices {
        binding: None,
        oversubscribe: None,
        hwthreads: false,
        kill_on_bad_exit: None,
        interrupt: None,
        pmi: None,
    };

    /// Looks at the MPI launcher's words, the `OMPI_MCA_*`/`PRTE_MCA_*`
    /// environment, and the MCA parameter files Open MPI reads: the user's
    /// (`~/.openmpi/mca-params.conf`) and the installation's
    /// (`<prefix>/etc/openmpi-mca-params.conf`, Debian's
    /// `/etc/openmpi/openmpi-mca-params.conf`).
    pub fn detect(words: &[OsString], launcher: &Path) -> Choices {
        let words: Vec<String> = words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        let env: Vec<(String, String)> = std::env::vars()
            .filter(|(k, _)| {
                k.starts_with("OMPI_MCA_")
                    || k.starts_with("PRTE_MCA_")
                    || SRUN_VARIABLES.contains(&k.as_str())
            })
            .collect();
        let files: Vec<(String, String)> = param_files(launcher)
            .into_iter()
            .filter_map(|path| {
                let text = std::fs::read_to_string(&path).ok()?;
                Some((path.display().to_string(), text))
            })
            .collect();
        Choices::from_sources(&words, &env, &files)
    }

    /// The rule of [`Choices::detect`], on given words, variables and file
    /// contents (`(path, text)`).
    pub fn from_sources(
        words: &[String],
        env: &[(String, String)],
        files: &[(String, String)],
    ) -> Choices {
        let mut choices = Choices::default();
        // The launcher's words: flags, then `--mca KEY VALUE`.
        let mut i = 0;
        while i < words.len() {
            let (flag, inline) = split_flag(&words[i]);
            let value = inline.or_else(|| words.get(i + 1).map(String::as_str));
            match flag {
                Some("mca" | "gmca") => {
                    if let (Some(key), Some(val)) = (words.get(i + 1), words.get(i + 2)) {
                        choices.note_param(key, val, || format!("--mca {key} {val}"));
                        i += 2;
                    }
                }
                Some(f) if BINDING_FLAGS.contains(&f) => {
                    choices
                        .binding
                        .get_or_insert_with(|| words_text(&words[i], inline, value));
                }
                Some("map-by") => {
                    if let Some(v) = value {
                        let text = || words_text(&words[i], inline, value);
                        if has_modifier(v, "PE=") {
                            choices.binding.get_or_insert_with(text);
                        }
                        if has_modifier(v, "OVERSUBSCRIBE") {
                            choices.oversubscribe.get_or_insert_with(text);
                        }
                    }
                }
                Some("oversubscribe" | "nooversubscribe") => {
                    choices
                        .oversubscribe
                        .get_or_insert_with(|| words[i].clone());
                }
                Some("use-hwthread-cpus") => choices.hwthreads = true,
                Some("kill-on-bad-exit") => {
                    choices
                        .kill_on_bad_exit
                        .get_or_insert_with(|| words[i].clone());
                }
                Some(short) if short.starts_with('K') && !words[i].starts_with("--") => {
                    // `-K`, `-K0`, `-K1`: the value is attached or absent.
                    choices
                        .kill_on_bad_exit
                        .get_or_insert_with(|| words[i].clone());
                }
                Some("disable-status" | "X" | "quit-on-interrupt") => {
                    choices.interrupt.get_or_insert_with(|| words[i].clone());
                }
                Some("mpi") if value.is_some() => {
                    let text = words_text(&words[i], inline, value);
                    choices.pmi.get_or_insert(text);
                }
                _ => {}
            }
            i += 1;
        }
        for (name, val) in env
            .iter()
            .filter(|(n, _)| SRUN_VARIABLES.contains(&n.as_str()))
        {
            let text = || format!("{name}={val}");
            match name.as_str() {
                "SLURM_KILL_BAD_EXIT" => choices.kill_on_bad_exit.get_or_insert_with(text),
                "SLURM_MPI_TYPE" => choices.pmi.get_or_insert_with(text),
                _ => choices.interrupt.get_or_insert_with(text),
            };
        }
        for (name, val) in env {
            let key = name
                .strip_prefix("OMPI_MCA_")
                .or_else(|| name.strip_prefix("PRTE_MCA_"))
                .unwrap_or(name);
            choices.note_param(key, val, || format!("{name}={val}"));
        }
        for (path, text) in files {
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if let Some((key, val)) = line.split_once('=') {
                    let (key, val) = (key.trim(), val.trim());
                    choices.note_param(key, val, || format!("{key} = {val} in {path}"));
                }
            }
        }
        choices
    }

    /// Records MCA parameter `key` set to `value` (described by `where_`).
    fn note_param(&mut self, key: &str, value: &str, where_: impl Fn() -> String) {
        if BINDING_PARAMS.contains(&key)
            || (key.ends_with("mapping_policy") && has_modifier(value, "PE="))
        {
            self.binding.get_or_insert_with(&where_);
        }
        if key == "rmaps_base_oversubscribe"
            || key == "rmaps_base_no_oversubscribe"
            || (key.ends_with("mapping_policy") && has_modifier(value, "OVERSUBSCRIBE"))
        {
            self.oversubscribe.get_or_insert_with(&where_);
        }
        if key == "hwloc_base_use_hwthreads_as_cpus" && is_true(value) {
            self.hwthreads = true;
        }
    }
}

/// `--flag`, `-flag` or `--flag=value` as `(Some("flag"), inline value)`.
fn split_flag(word: &str) -> (Option<&str>, Option<&str>) {
    let Some(rest) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
        return (None, None);
    };
    match rest.split_once('=') {
        Some((flag, value)) => (Some(flag), Some(value)),
        None => (Some(rest), None),
    }
}

/// The words that made a choice, for messages: `--map-by X`.
fn words_text(word: &str, inline: Option<&str>, value: Option<&str>) -> String {
    match (inline, value) {
        (None, Some(value)) => format!("{word} {value}"),
        _ => word.to_string(),
    }
}

/// Whether a `--map-by` value has this modifier (after a `:`, any case).
fn has_modifier(value: &str, modifier: &str) -> bool {
    value
        .split([':', ','])
        .skip(1)
        .any(|m| m.to_ascii_uppercase().contains(modifier))
}

fn is_true(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "true" | "yes" | "t" | "y"
    )
}

/// The MCA parameter files Open MPI reads by default.
fn param_files(launcher: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        files.push(Path::new(&home).join(".openmpi/mca-params.conf"));
    }
    let resolved = std::fs::canonicalize(launcher).unwrap_or_else(|_| launcher.to_path_buf());
    if let Some(prefix) = resolved.parent().and_then(Path::parent) {
        files.push(prefix.join("etc/openmpi-mca-params.conf"));
    }
    files.push(PathBuf::from("/etc/openmpi/openmpi-mca-params.conf"));
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_words(words: &[&str]) -> Choices {
        let words: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        Choices::from_sources(&words, &[], &[])
    }

    #[test]
    fn bindings_on_the_command_line() {
        assert_eq!(
            from_words(&["--bind-to", "core"]).binding.as_deref(),
            Some("--bind-to core")
        );
        assert_eq!(
            from_words(&["--map-by", "ppr:2:socket:PE=4"])
                .binding
                .as_deref(),
            Some("--map-by ppr:2:socket:PE=4")
        );
        assert_eq!(
            from_words(&["--map-by=slot:pe=2"]).binding.as_deref(),
            Some("--map-by=slot:pe=2")
        );
        assert!(from_words(&["--cpus-per-rank", "2"]).binding.is_some());
        assert!(from_words(&["-rf", "ranks.txt"]).binding.is_some());
        assert_eq!(
            from_words(&["--mca", "hwloc_base_binding_policy", "socket"])
                .binding
                .as_deref(),
            Some("--mca hwloc_base_binding_policy socket")
        );
        // Mapping alone, or other MCA parameters, choose no binding.
        assert_eq!(from_words(&["--map-by", "node"]).binding, None);
        assert_eq!(from_words(&["--mca", "btl", "tcp,self"]).binding, None);
        assert_eq!(from_words(&["--report-bindings"]).binding, None);
    }

    #[test]
    fn bindings_from_the_environment_and_files() {
        let env = [(
            "OMPI_MCA_hwloc_base_binding_policy".to_string(),
            "core".to_string(),
        )];
        assert_eq!(
            Choices::from_sources(&[], &env, &[]).binding.as_deref(),
            Some("OMPI_MCA_hwloc_base_binding_policy=core")
        );
        let env = [(
            "OMPI_MCA_rmaps_base_mapping_policy".to_string(),
            "slot:PE=2".to_string(),
        )];
        assert!(Choices::from_sources(&[], &env, &[]).binding.is_some());
        let files = [(
            "/etc/openmpi/openmpi-mca-params.conf".to_string(),
            "# site defaults\nbtl = ^openib\nhwloc_base_binding_policy = numa # for AI\n"
                .to_string(),
        )];
        assert_eq!(
            Choices::from_sources(&[], &[], &files).binding.as_deref(),
            Some("hwloc_base_binding_policy = numa in /etc/openmpi/openmpi-mca-params.conf")
        );
        let files = [("f".to_string(), "btl = tcp,self\n".to_string())];
        assert_eq!(Choices::from_sources(&[], &[], &files), Choices::default());
    }

    #[test]
    fn srun_choices() {
        assert_eq!(
            from_words(&["--kill-on-bad-exit=0"])
                .kill_on_bad_exit
                .as_deref(),
            Some("--kill-on-bad-exit=0")
        );
        assert!(from_words(&["-K0"]).kill_on_bad_exit.is_some());
        assert!(from_words(&["-K"]).kill_on_bad_exit.is_some());
        assert!(from_words(&["--quit-on-interrupt"]).interrupt.is_some());
        assert!(from_words(&["-X"]).interrupt.is_some());
        // Open MPI's `-x VAR` is no srun choice.
        assert_eq!(from_words(&["-x", "A"]), Choices::default());
        assert_eq!(
            from_words(&["--mpi", "pmi2"]).pmi.as_deref(),
            Some("--mpi pmi2")
        );
        assert_eq!(
            from_words(&["--mpi=pmix_v4"]).pmi.as_deref(),
            Some("--mpi=pmix_v4")
        );
        let env = [
            ("SLURM_MPI_TYPE".to_string(), "none".to_string()),
            ("SLURM_KILL_BAD_EXIT".to_string(), "0".to_string()),
        ];
        let choices = Choices::from_sources(&[], &env, &[]);
        assert_eq!(choices.pmi.as_deref(), Some("SLURM_MPI_TYPE=none"));
        assert_eq!(
            choices.kill_on_bad_exit.as_deref(),
            Some("SLURM_KILL_BAD_EXIT=0")
        );
        assert_eq!(choices.binding, None);
    }

    #[test]
    fn oversubscription_and_hwthreads() {
        assert!(from_words(&["--oversubscribe"]).oversubscribe.is_some());
        assert!(from_words(&["--nooversubscribe"]).oversubscribe.is_some());
        assert!(from_words(&["--map-by", ":OVERSUBSCRIBE"])
            .oversubscribe
            .is_some());
        assert!(from_words(&["--map-by", "core"]).oversubscribe.is_none());
        assert!(from_words(&["--use-hwthread-cpus"]).hwthreads);
        let env = [(
            "OMPI_MCA_rmaps_base_oversubscribe".to_string(),
            "1".to_string(),
        )];
        assert!(Choices::from_sources(&[], &env, &[])
            .oversubscribe
            .is_some());
    }
}
