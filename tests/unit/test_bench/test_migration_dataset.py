"""The migration dataset generator: every defect kind at the counts of its manifest,
exactly on the rows it names, clean rows clean, the same seed the same bytes."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from stdnum.cn import ric

from sandbox.mapping import load_mapping
from sandbox.sources import open_source
from sandbox.validation import validate

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def dataset_module():
    spec = importlib.util.spec_from_file_location("migration_dataset", ROOT / "bench" / "migration_dataset.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("encoding", ["gbk", "utf-8"])
def test_generated_rows_have_exactly_the_manifest_defects(tmp_path, dataset_module, encoding):
    out = tmp_path / "export.csv"
    manifest = dataset_module.generate(700, out, encoding=encoding, seed=11, defect_rate=0.2)
    assert manifest == json.loads((tmp_path / "export.csv.manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["defects"]) == set(dataset_module.DEFECT_KINDS)
    assert all(count == 8 for count in manifest["defects"].values())  # 700 x 0.2 / 17 kinds

    mapping = load_mapping(ROOT / "examples" / "migration" / "mapping.toml")
    source = open_source(out, encoding=encoding)
    assert source.columns == dataset_module.COLUMNS
    found: dict[str, list[int]] = {}
    clean_ids: list[str] = []
    for outcome in validate(source, mapping):
        for finding in outcome.findings:
            found.setdefault(finding.rule, []).append(outcome.source.number)
        if not outcome.findings:
            clean_ids.append(outcome.record.id_number)
    assert found == manifest["defect_rows"]
    assert len(clean_ids) == manifest["clean_rows"] == 700 - 8 * 17
    assert len(set(clean_ids)) == len(clean_ids) and all(ric.is_valid(number) for number in clean_ids)


def test_the_same_seed_writes_the_same_bytes(tmp_path, dataset_module):
    for name, seed in (("a.csv", 5), ("b.csv", 5), ("c.csv", 6)):
        dataset_module.generate(80, tmp_path / name, seed=seed)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes() != (tmp_path / "c.csv").read_bytes()


def test_the_command_line_writes_the_file_and_manifest(tmp_path, dataset_module, capsys):
    out = tmp_path / "big.csv"
    manifest_path = tmp_path / "m.json"
    assert dataset_module.main(["--rows", "60", "--out", str(out), "--seed", "3", "--manifest", str(manifest_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["rows"] == 60 and printed["encoding"] == "gbk"
    assert json.loads(manifest_path.read_text(encoding="utf-8"))["defects"] == printed["defects"]
    assert out.read_bytes().decode("gbk", errors="replace").startswith("序号,姓名,性别,身份证号码")


def test_too_few_rows_for_every_defect_is_refused(tmp_path, dataset_module):
    with pytest.raises(ValueError, match="at least"):
        dataset_module.generate(10, tmp_path / "x.csv")


def test_the_committed_example_is_the_generator_output(tmp_path, dataset_module):
    dataset_module.generate(300, tmp_path / "employees.csv")
    example = ROOT / "examples" / "migration"
    assert (tmp_path / "employees.csv").read_bytes() == (example / "employees.csv").read_bytes()
    assert (tmp_path / "employees.csv.manifest.json").read_text(encoding="utf-8") == (
        example / "employees.csv.manifest.json"
    ).read_text(encoding="utf-8")
