//! Replays the fuzz targets' seed corpora (fuzz/corpus/<target>/) as ordinary tests, so
//! every input that ever mattered keeps passing without a fuzzer.

use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut n = 0;
    for file in std::fs::read_dir(&dir).unwrap().flatten() {
        entry(&std::fs::read(file.path()).unwrap());
        n += 1;
    }
    assert!(n > 0, "no corpus in {}", dir.display());
}

#[test]
fn objects_yaml_corpus() {
    replay("objects_yaml", testkit::fuzzing::objects_yaml);
}

#[test]
fn attributes_corpus() {
    replay("attributes", testkit::fuzzing::attributes);
}

#[test]
fn file_name_corpus() {
    replay("file_name", testkit::fuzzing::file_name);
}

#[test]
fn jmes_extract_corpus() {
    replay("jmes_extract", testkit::fuzzing::jmes_extract);
}

#[test]
fn local_store_corpus() {
    replay("local_store", testkit::fuzzing::local_store);
}
