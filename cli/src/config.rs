//! The CLI's contexts (as kubeconfig's or `argocd login`'s): named control planes with their
//! address, CA and credential, and which one is current, in one YAML file readable only by
//! its owner — `$BOSUN_CONFIG`, else `$XDG_CONFIG_HOME/bosun/config.yaml`, else
//! `~/.config/bosun/config.yaml`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub current_context: String,
    #[serde(default)]
    pub contexts: Vec<Context>,
}

/// One control plane and how to reach it.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    pub name: String,
    /// The admin API, `https://host:7443`.
    pub server: String,
    /// The control plane's CA certificate(s), PEM, copied in at login.
    pub ca: String,
    /// A bearer token (an admin or readonly credential's); absent with a client certificate
    /// or after `bosun logout`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Client certificate and key files (`bosun credential create --cert-out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
}

/// Where the configuration lives.
pub fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("BOSUN_CONFIG").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()).map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("bosun").join("config.yaml"))
}

/// [`path`], or an error saying how to name one when there is no home directory.
pub fn required_path() -> anyhow::Result<PathBuf> {
    path().ok_or_else(|| anyhow::anyhow!("no home directory to keep contexts in: set BOSUN_CONFIG"))
}

impl Config {
    /// The configuration at `path`; empty when the file does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        match std::fs::read_to_string(path) {
            Ok(text) => serde_saphyr::from_str(&text).with_context(|| format!("reading {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }

    /// Writes the configuration (mode 0600: it holds tokens), replacing the file atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = serde_saphyr::to_string(self)?;
        bosun_process::write_atomic(path, text.as_bytes(), 0o600).with_context(|| format!("writing {}", path.display()))
    }

    /// The named context, or the current one when `name` is `None`.
    pub fn context(&self, name: Option<&str>) -> Option<&Context> {
        let name = name.unwrap_or(&self.current_context);
        self.contexts.iter().find(|c| c.name == name)
    }

    /// Adds or replaces a context and makes it current.
    pub fn upsert(&mut self, context: Context) {
        self.current_context = context.name.clone();
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(c) => *c = context,
            None => self.contexts.push(context),
        }
    }
}

/// A context's default name: the server's host and port.
pub fn name_of(server: &str) -> String {
    let s = server.trim_start_matches("https://").trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_contexts_read_back_and_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.yaml");
        let mut c = Config::load(&path).unwrap();
        assert_eq!(c, Config::default());
        c.upsert(Context {
            name: "a".into(),
            server: "https://a:7443".into(),
            ca: "PEM".into(),
            token: Some("t".into()),
            ..Default::default()
        });
        c.upsert(Context { name: "b".into(), server: "https://b:7443".into(), ca: "PEM".into(), ..Default::default() });
        c.upsert(Context {
            name: "a".into(),
            server: "https://a2:7443".into(),
            ca: "PEM".into(),
            ..Default::default()
        });
        c.save(&path).unwrap();
        let back = Config::load(&path).unwrap();
        assert_eq!(back, c);
        assert_eq!(back.current_context, "a");
        assert_eq!(back.contexts.len(), 2);
        assert_eq!(back.context(None).unwrap().server, "https://a2:7443");
        assert_eq!(back.context(Some("b")).unwrap().token, None);
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(name_of("https://bosun.example.com:7443"), "bosun.example.com:7443");
    }
}
