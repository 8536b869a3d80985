//! The offline commands people use to ask "why is this OutOfSync/Degraded?": `bosun health`
//! and `bosun diff`, as a real process on files.

use std::process::Command;

fn bosun(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_e2e-bosun")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn health_and_diff_from_files() {
    let tmp = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = tmp.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_string_lossy().into_owned()
    };
    let degraded = write(
        "deploy.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, generation: 1}\nspec: {replicas: 1}\nstatus:\n  observedGeneration: 1\n  conditions: [{type: Progressing, status: \"False\", reason: ProgressDeadlineExceeded}]\n",
    );
    let (code, out, _) = bosun(&["health", "-f", &degraded, "-o", "json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["status"], "Degraded");
    assert!(v["message"].as_str().unwrap().contains("exceeded its progress deadline"));
    let cm =
        write("cm.json", r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}}"#);
    let (_, out, _) = bosun(&["health", "-f", &cm, "-o", "json"]);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["status"], serde_json::Value::Null);

    let desired =
        write("desired.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {password: hunter2}\n");
    let live = write(
        "live.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: d, uid: x}\ntype: Opaque\ndata: {password: b2xk}\n",
    );
    let (code, out, err) = bosun(&["diff", "--desired", &desired, "--live", &live, "-o", "json"]);
    assert_eq!(code, 1, "they differ");
    assert!(err.is_empty(), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["modified"], true);
    assert!(!out.contains("hunter2") && !out.contains("b2xk"), "secret values never shown: {out}");
    // stringData on the manifest matches the base64 data the server stores.
    let same = write(
        "same.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s, namespace: d}\ntype: Opaque\ndata: {password: aHVudGVyMg==}\n",
    );
    let (code, out, _) = bosun(&["diff", "--desired", &desired, "--live", &same, "-o", "json"]);
    assert_eq!(code, 0);
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["modified"], false);
    // A label removed from Git, owned by the agent's field manager, is drift; another
    // manager's label is not.
    let desired = write("d2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: {app: web}}\n");
    let live = write(
        "l2.json",
        r#"{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"app": "web", "tier": "api", "owner": "ops"},
            "managedFields": [{"manager": "bosun-agent", "operation": "Apply", "fieldsV1": {"f:metadata": {"f:labels": {"f:app": {}, "f:tier": {}}}}},
                              {"manager": "kubectl", "operation": "Update", "fieldsV1": {"f:metadata": {"f:labels": {"f:owner": {}}}}}]}}"#,
    );
    let (code, out, _) = bosun(&["diff", "--desired", &desired, "--live", &live]);
    assert_eq!((code, out.as_str()), (1, ".metadata.labels.tier: \"api\" → <absent> (removed from Git)\n"));
    let (code, _, _) = bosun(&["diff", "--desired", &desired, "--live", &live, "--field-manager", "someone-else"]);
    assert_eq!(code, 0, "not removed by another manager");
    let (code, _, err) = bosun(&["health", "-f", "/nonexistent.yaml"]);
    assert_eq!(code, 1);
    assert!(err.contains("reading /nonexistent.yaml"), "{err}");
}
