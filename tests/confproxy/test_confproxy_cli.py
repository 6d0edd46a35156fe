"""``crossroad confproxy``: init, add-source, keys, anchor and run --once, in-process."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from typer.testing import CliRunner
from upstream import Upstream, free_port

from crossroad.cli.main import app
from crossroad.confproxy.config import ProxyConfig, verification_certs
from crossroad.globalconf.privateparams import anchor_hash, parse_anchor
from crossroad.globalconf.signed import SignedDirectory


def invoke(*args: str):  # type: ignore[no-untyped-def]
    result = CliRunner().invoke(app, ["confproxy", *args])
    assert "Traceback" not in result.output
    return result


def init(tmp_path: Path) -> Path:
    directory = tmp_path / "cp"
    port = free_port()
    result = invoke("init", str(directory), "--name", "PROXY1", "--address", f"127.0.0.1:{port}")
    assert result.exit_code == 0, result.output
    assert "PROXY1 initialised" in result.output
    return directory


def test_init_and_its_errors(tmp_path: Path) -> None:
    directory = init(tmp_path)
    config = ProxyConfig.load(directory)
    assert config.name == "PROXY1"
    assert len(config.keys) == 1
    assert config.active_key == config.keys[0].key_id
    assert (directory / "keys" / f"{config.active_key}.pem").stat().st_mode & 0o777 == 0o600
    again = invoke("init", str(directory), "--name", "PROXY1", "--address", "127.0.0.1:1")
    assert again.exit_code == 1
    assert "error: invalid_request:" in again.output
    for name, address in (("../x", "127.0.0.1:1"), ("P", "nohost"), ("P", "h:99999")):
        bad = invoke("init", str(tmp_path / "bad"), "--name", name, "--address", address)
        assert bad.exit_code == 1
        assert "error: invalid_request:" in bad.output
    missing = invoke("keys", "list", str(tmp_path / "nothing"))
    assert missing.exit_code == 1
    assert "not a configuration proxy directory" in missing.output


def test_keys_rotation_commands(tmp_path: Path) -> None:
    directory = init(tmp_path)
    first = ProxyConfig.load(directory).active_key
    assert first is not None
    added = invoke("keys", "add", str(directory), "--key-type", "ec-p256")
    assert added.exit_code == 0, added.output
    new_id = added.output.split()[0]
    assert "(inactive)" in added.output
    listed = json.loads(invoke("keys", "list", str(directory), "--json").output)
    assert [(k["key_id"], k["active"]) for k in listed] == [(first, True), (new_id, False)]
    refused = invoke("keys", "delete", str(directory), first)
    assert refused.exit_code == 1
    assert "active signing key cannot be deleted" in refused.output
    assert invoke("keys", "activate", str(directory), new_id.lower()).exit_code == 0
    assert ProxyConfig.load(directory).active_key == new_id
    assert invoke("keys", "delete", str(directory), first).exit_code == 0
    assert not (directory / "keys" / f"{first}.pem").exists()
    unknown = invoke("keys", "activate", str(directory), "00" * 20)
    assert unknown.exit_code == 1
    bad_type = invoke("keys", "add", str(directory), "--key-type", "dsa")
    assert bad_type.exit_code == 1


def test_add_source_anchor_and_run_once(tmp_path: Path, upstream_thread: Upstream) -> None:
    directory = init(tmp_path)
    no_source = invoke("anchor", str(directory))
    assert no_source.exit_code == 1
    anchor_file = upstream_thread.anchor_file(tmp_path)
    added = invoke("add-source", str(directory), "--anchor", str(anchor_file))
    assert added.exit_code == 0, added.output
    config = ProxyConfig.load(directory)
    assert f"http://{config.address}/DEV/conf" in added.output

    out = tmp_path / "proxy-anchor.xml"
    exported = invoke("anchor", str(directory), "--out", str(out))
    assert exported.exit_code == 0, exported.output
    assert f"hash: {anchor_hash(out.read_bytes())}" in exported.output
    anchor = parse_anchor(out.read_bytes())
    assert anchor.instance_identifier == "DEV"
    assert anchor.sources[0].download_url == f"http://{config.address}/DEV/conf"
    assert anchor.sources[0].verification_certs == verification_certs(config)
    assert invoke("anchor", str(directory)).output.startswith("<?xml")

    ran = invoke("run", str(directory), "--once")
    assert ran.exit_code == 0, ran.output
    assert "DEV: published V6 V5 V4 V3 V2" in ran.output
    conf = config.public_dir("DEV") / "conf-v6"
    SignedDirectory.parse(conf.read_bytes()).verify(
        verification_certs(config), dt.datetime.now(dt.UTC)
    )

    broken = tmp_path / "broken.xml"
    broken.write_text("<nope/>")
    refused = invoke("add-source", str(directory), "--anchor", str(broken))
    assert refused.exit_code == 1
    assert "error: malformed_anchor:" in refused.output


def test_run_once_fails_when_the_source_is_down(tmp_path: Path) -> None:
    directory = init(tmp_path)
    dead = Upstream()
    invoke("add-source", str(directory), "--anchor", str(dead.anchor_file(tmp_path)))
    ran = invoke("run", str(directory), "--once")
    assert ran.exit_code == 1
    assert "DEV: published nothing; failed: global_conf_download_url_connection_failure" in (
        ran.output
    )
