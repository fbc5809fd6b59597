//! `GET /openapi.json` against the routes the node mounts: every public
//! route of `api::configure`, with each of its methods, is described, and
//! nothing else is; and the document is valid OpenAPI, by the
//! `openapi-spec-validator` Python package.

mod common;

use std::collections::BTreeSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::Value;

/// (method, path) of each route that `api::configure` mounts, read from its
/// source: a `.service(...)` names one resource and the methods it routes.
fn mounted() -> BTreeSet<(String, String)> {
    const SOURCE: &str = include_str!("../src/api/mod.rs");
    let body = SOURCE.split_once("pub fn configure(cfg: &mut web::ServiceConfig) {").expect("configure").1;
    let body = body.split_once("\n}\n").expect("its end").0;
    let mut routes = BTreeSet::new();
    for service in body.split(".service(").skip(1) {
        let Some((_, rest)) = service.split_once("resource(\"") else { continue };
        let path = rest.split_once('"').unwrap().0.to_owned();
        for method in ["get", "post", "put", "delete", "head", "patch"] {
            if service.contains(&format!("web::{method}()")) {
                routes.insert((method.to_owned(), path.clone()));
            }
        }
    }
    routes
}

#[test]
fn the_document_describes_every_public_route_and_is_valid_openapi() {
    with_timeout(Duration::from_secs(120), || {
        let dir = tempfile::tempdir().unwrap();
        let node = Node::start(&NodeConfig::new(&dir.path().join("data")), dir.path(), "node");
        let answer = node.get("/openapi.json");
        assert_eq!(answer.status, 200);
        let doc: Value = answer.json();
        let described: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, methods)| methods.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        let mounted = mounted();
        assert!(mounted.len() >= 15, "the routes were read: {mounted:?}");
        assert_eq!(described, mounted, "described (left) and mounted (right) differ");
        for peer in ["/join", "/probe", "/execute_module", "/replicate"] {
            assert!(doc["paths"].get(peer).is_none(), "{peer} is a peer route");
        }
        let list = &doc["paths"]["/evaluation"]["get"]["parameters"];
        let names: BTreeSet<&str> = list.as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
        assert_eq!(names, BTreeSet::from(["after", "limit", "scope", "status"]));

        let python = python_with(&dir.path().join("validator"), "openapi-spec-validator==0.7.1");
        let mut child = Command::new(python)
            .args([
                "-c",
                "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\n",
            ])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running the validator");
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), &answer.body).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "not valid OpenAPI: {}", String::from_utf8_lossy(&out.stderr));
    });
}
