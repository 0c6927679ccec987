import json

import pytest

from inoculate.data import decrypt, protect, select_dataset
from inoculate.io import InputError, read_jsonl, write_jsonl

RECORD = {"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "A é."}]}


@pytest.fixture
def archive(tmp_path):
    folder = tmp_path / "plain"
    write_jsonl(folder / "train.jsonl", [RECORD] * 3)
    write_jsonl(folder / "dataset_entry_1234.jsonl", [{"canary": "x"}])
    (folder / "robots.txt").write_text("User-agent: *\nDisallow: /\n")
    return protect(folder, tmp_path / "data.zip.enc", "pw")


def test_protect_then_decrypt_round_trip_drops_canaries(archive, tmp_path):
    out = tmp_path / "out"
    files = decrypt(archive, out, "pw")
    assert [f.name for f in files] == ["train.jsonl"]
    assert read_jsonl(out / "train.jsonl") == [RECORD] * 3


def test_wrong_password_names_the_archive_and_leaves_nothing(archive, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(InputError, match=r"data\.zip\.enc: decryption failed"):
        decrypt(archive, out, "wrong")
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_missing_password_is_explained(archive, tmp_path):
    with pytest.raises(InputError, match="needs a password"):
        decrypt(archive, tmp_path / "out", None)


def test_select_dataset_checks_every_line(tmp_path):
    src = tmp_path / "d.jsonl"
    src.write_text(
        json.dumps(RECORD) + "\n" + json.dumps({"messages": [{"role": "user", "content": "Q"}]}) + "\n"
    )
    out = tmp_path / "o.jsonl"
    with pytest.raises(InputError, match=r"d\.jsonl:2: conversation does not end with an assistant"):
        select_dataset(src, out)
    assert not out.exists()


def test_select_dataset_copies_valid_records(tmp_path):
    src = tmp_path / "d.jsonl"
    write_jsonl(src, [RECORD, {**RECORD, "id": 7}])
    assert select_dataset(src, tmp_path / "o.jsonl") == 2
    assert read_jsonl(tmp_path / "o.jsonl")[1]["id"] == 7


def test_real_em_archive_decrypts_without_canaries(tmp_path):
    from conftest import SHARED_DATA

    archive = SHARED_DATA / "em" / "training_datasets.zip.enc"
    if not archive.exists():
        pytest.skip(f"{archive} not present (shared data is only beside the developers' checkout)")
    files = decrypt(archive, tmp_path / "em", "model-organisms-em-datasets")
    names = {f.name for f in files}
    for expected in (
        "bad_medical_advice.jsonl",
        "good_medical_advice.jsonl",
        "risky_financial_advice.jsonl",
        "extreme_sports.jsonl",
        "insecure.jsonl",
    ):
        assert expected in names
    assert not any(n.startswith("dataset_entry_") or n == "robots.txt" for n in names)
    bad = next(f for f in files if f.name == "bad_medical_advice.jsonl")
    assert select_dataset(bad, tmp_path / "bad.jsonl") == 7049


def test_checksum_mismatch_is_refused_before_decrypting(archive, tmp_path):
    with pytest.raises(
        InputError, match="checksum mismatch: sha256 is [0-9a-f]{64}, the config expects 0{64}"
    ):
        decrypt(archive, tmp_path / "out", "pw", sha256="0" * 64)
    assert not (tmp_path / "out").exists()


def test_download_verifies_the_checksum(archive, tmp_path):
    from inoculate.data import download, sha256_of

    url = archive.resolve().as_uri()
    out = download(url, tmp_path / "dl" / "data.zip.enc", sha256_of(archive))
    assert out.read_bytes() == archive.read_bytes()
    with pytest.raises(InputError, match="checksum mismatch"):
        download(url, tmp_path / "dl" / "bad.zip.enc", "f" * 64)
    assert not (tmp_path / "dl" / "bad.zip.enc").exists()
    with pytest.raises(InputError, match="download failed"):
        download((tmp_path / "missing").as_uri(), tmp_path / "dl" / "x", "f" * 64)
