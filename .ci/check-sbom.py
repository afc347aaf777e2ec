#!/usr/bin/env python3
"""Check the image's SBOM (CycloneDX JSON from .ci/build-image.sh) against cargo.

Usage: .ci/check-sbom.py [--self-test] SBOM

The crates in the binary are found without the SBOM or the tool that made it:
`cargo tree -e normal,no-proc-macro --target x86_64-unknown-linux-musl` lists the
crates compiled for the target and linked into the binary, with the licence each
declares in its Cargo.toml. Build dependencies, proc-macros and what only they use run
on the build machine and are not in the binary, so they are not listed; nor are
dev-dependencies.

The SBOM must be valid CycloneDX 1.5 (checked against the schema cyclonedx-python-lib
ships, when that library is importable; .ci/check-image.sh runs this script with it),
name probegate as its component at the crate's version, list exactly those crates (no
missing, no extra) at their exact versions, and give each the licence its Cargo.toml
declares. A crate with no licence expression fails.

probegate's own entry must carry the licence its Cargo.toml declares, like any crate's.

--self-test also spoils copies of the SBOM (a crate dropped, one added, a version
changed, a licence removed, another spec version) and fails unless each is caught.
"""

import copy
import json
import pathlib
import subprocess
import sys

TARGET = "x86_64-unknown-linux-musl"
SPEC_VERSION = "1.5"
ROOT = "probegate"


def cargo_crates():
    """{(name, version): licence} of the crates linked into the binary, and the root's key."""
    out = subprocess.run(
        ["cargo", "tree", "--locked", "--offline", "-e", "normal,no-proc-macro",
         "--target", TARGET, "--prefix", "none", "--format", "{p}|{l}"],
        cwd=pathlib.Path(__file__).resolve().parent.parent, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"check-sbom: FAIL: cargo tree failed:\n{out.stderr}")
    out = out.stdout
    crates, root = {}, None
    for line in out.splitlines():
        # "name vX.Y.Z[ (path)]|licence[ (*)]"; " (*)" marks a crate already listed.
        package, _, licence = line.removesuffix(" (*)").partition("|")
        name, version = package.split()[:2]
        key = (name, version.removeprefix("v"))
        root = root or key
        crates[key] = licence.strip()
    return crates, root


def spdx(licence):
    """Cargo's deprecated "MIT/Apache-2.0" means "MIT OR Apache-2.0"."""
    return " OR ".join(part.strip() for part in licence.split("/")) if licence else ""


def sbom_licence(component):
    """The component's licence as one expression ("" when it has none)."""
    found = []
    for entry in component.get("licenses") or []:
        if "expression" in entry:
            found.append(entry["expression"])
        elif "license" in entry:
            found.append(entry["license"].get("id") or entry["license"].get("name", ""))
    return " AND ".join(found)


def schema_errors(bom):
    try:
        from cyclonedx.schema import OutputFormat, SchemaVersion
        from cyclonedx.validation import make_schemabased_validator
    except ImportError:
        return [], "skipped: the CycloneDX schema (cyclonedx-python-lib is not installed)"
    validator = make_schemabased_validator(OutputFormat.JSON, SchemaVersion.V1_5)
    error = validator.validate_str(json.dumps(bom))
    return ([f"not valid CycloneDX {SPEC_VERSION}: {error}"] if error else []), \
        f"ok: valid against the CycloneDX {SPEC_VERSION} JSON schema"


def check(bom, crates, root, schema=True):
    """Returns (errors, notes); schema=False leaves out the (slow) schema validation."""
    errors, notes = [], []
    if bom.get("bomFormat") != "CycloneDX" or bom.get("specVersion") != SPEC_VERSION:
        errors.append(f"bomFormat/specVersion are {bom.get('bomFormat')}/{bom.get('specVersion')}, "
                      f"expected CycloneDX/{SPEC_VERSION}")
        return errors, notes
    if schema:
        found, note = schema_errors(bom)
        errors += found
        notes.append(note)

    metadata = bom.get("metadata", {})
    component = metadata.get("component", {})
    if (component.get("name"), component.get("version")) != root:
        errors.append(f"the SBOM describes {component.get('name')} {component.get('version')}, "
                      f"expected {root[0]} {root[1]}")
    want, got = spdx(crates[root]), sbom_licence(component)
    if want != got:
        errors.append(f"{ROOT}'s licence is {got or 'none'} in the SBOM, {want or 'none'} in Cargo.toml")
    elif not want:
        errors.append(f"{ROOT} declares no licence in Cargo.toml")
    triples = [p.get("value") for p in metadata.get("properties", [])
               if p.get("name") == "cdx:rustc:sbom:target:triple"]
    if triples != [TARGET]:
        errors.append(f"the SBOM is for target {triples}, expected {TARGET}")

    listed = {}
    for c in bom.get("components", []):
        listed[(c.get("name"), c.get("version"))] = sbom_licence(c)
    expected = {key: licence for key, licence in crates.items() if key != root}
    for name, version in sorted(expected.keys() - listed.keys()):
        errors.append(f"missing: {name} {version} is in the binary but not in the SBOM")
    for name, version in sorted(listed.keys() - expected.keys()):
        errors.append(f"extra: {name} {version} is in the SBOM but not in the binary")
    for key in sorted(expected.keys() & listed.keys()):
        name, version = key
        want, got = spdx(expected[key]), listed[key]
        if not want:
            errors.append(f"no licence: {name} {version} declares no licence expression in its Cargo.toml")
        elif not got:
            errors.append(f"no licence: {name} {version} has no licence in the SBOM (Cargo.toml: {want})")
        elif got != want:
            errors.append(f"licence: {name} {version} is {got} in the SBOM, {want} in its Cargo.toml")
    notes.append(f"ok: {len(expected)} crates in the binary, each in the SBOM at its version with its licence")
    return errors, notes


def spoiled(bom):
    """(what, spoiled copy) pairs the check must each fail."""
    def variant(what, change):
        doc = copy.deepcopy(bom)
        change(doc)
        return what, doc

    first = lambda doc: doc["components"][0]
    def add(doc):
        doc["components"].append(dict(first(doc), name="not-a-crate", **{"bom-ref": "not-a-crate"}))
    return [
        variant("a crate dropped", lambda doc: doc["components"].pop(0)),
        variant("a crate added", add),
        variant("a version changed", lambda doc: first(doc).update(version="0.0.0-spoilt")),
        variant("a licence removed", lambda doc: first(doc).pop("licenses")),
        variant("another spec version", lambda doc: doc.update(specVersion="1.3")),
    ]


def main(argv):
    self_test = "--self-test" in argv
    args = [a for a in argv if a != "--self-test"]
    if len(args) != 1:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    with open(args[0]) as f:
        bom = json.load(f)
    crates, root = cargo_crates()

    errors, notes = check(bom, crates, root)
    for note in notes:
        print(f"check-sbom: {note}", file=sys.stderr)
    for error in errors:
        print(f"check-sbom: FAIL: {error}", file=sys.stderr)
    if errors:
        return 1
    if self_test:
        for what, doc in spoiled(bom):
            caught, _ = check(doc, crates, root, schema=False)
            if not caught:
                print(f"check-sbom: FAIL: self-test: an SBOM with {what} passes", file=sys.stderr)
                return 1
            print(f"check-sbom: ok: self-test: {what} fails: {caught[0]}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
