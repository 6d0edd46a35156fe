"""``crossroad messagelog ...`` over a state directory: list, show, status, stamp (the real TSA),
archive (with progress), export, verify (delegated to ``crossroad verify``), clean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from crossroad.cli import messagelog as cli_messagelog
from crossroad.cli import verify as cli_verify
from crossroad.messagelog.manager import MessageLog
from crossroad.messagelog.settings import LogSettings

from .conftest import Conf, Signers, make_record, write_globalconf

pytestmark = pytest.mark.integration

app = typer.Typer()
cli_messagelog.register(app)
cli_verify.register(app)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_messagelog_commands(tmp_path: Path, conf: Conf, signers: Signers) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / "message-log.toml").write_text("archive_max_filesize = 10000\n")
    write_globalconf(state / "globalconf", conf())  # type: ignore[arg-type]
    settings = LogSettings.load(state)
    mlog = MessageLog.open(settings, conf)
    records = [make_record(signers, query_id="cli-q") for _ in range(2)]
    records.append(make_record(signers, query_id="cli-q", response=True))
    ids = [mlog.log(r) for r in records]
    mlog.store.engine.dispose()
    d = ["--dir", str(state)]

    code, out = run("messagelog", "list", *d, "--json")
    assert code == 0, out
    assert [r["id"] for r in json.loads(out)] == ids[::-1]
    code, out = run("messagelog", "list", *d)
    assert code == 0
    assert "cli-q" in out
    assert "waiting" in out
    code, out = run("messagelog", "show", str(ids[0]), *d, "--json")
    assert json.loads(out)["query_id"] == "cli-q"
    code, out = run("messagelog", "show", str(ids[0]), *d, "--message")
    assert "<xroad:id>cli-q</xroad:id>" in out
    assert run("messagelog", "show", "999", *d)[0] == 1

    code, out = run("messagelog", "export", "--query-id", "cli-q", "--client",
                    "SUBSYSTEM:EE/COM/111/client", *d, "--out", str(tmp_path / "x"))  # fmt: skip
    assert code == 1
    assert "not been timestamped" in out
    code, out = run("messagelog", "stamp", *d, "--json")
    assert code == 0, out
    assert json.loads(out)["stamped"] == 3
    code, out = run("messagelog", "export", "--query-id", "cli-q", "--client",
                    "SUBSYSTEM:EE/COM/111/client", *d, "--out", str(tmp_path / "x"),
                    "--response-only")  # fmt: skip
    assert code == 0, out
    (exported,) = (tmp_path / "x").iterdir()
    assert "-response-" in exported.name
    code, out = run("verify", "--json", "--globalconf", str(state / "globalconf"), str(exported))
    assert code == 0, out

    mlog = MessageLog.open(settings, conf)
    for _ in range(2):
        mlog.log(make_record(signers))
    mlog.store.engine.dispose()
    assert run("messagelog", "stamp", *d)[0] == 0
    code, out = run("messagelog", "archive", *d)  # with a progress bar
    assert code == 0, out
    assert "archived 5 records into" in out
    files = [line.strip() for line in out.splitlines() if line.strip().startswith("/")]
    archives = [Path(f) for f in files]  # in the order they were written (the chain's order)
    assert len(archives) >= 2
    code, out = run("messagelog", "verify", "--first", "--json",
                    "--globalconf", str(state / "globalconf"), *map(str, archives))  # fmt: skip
    assert code == 0, out
    assert json.loads(out.strip().splitlines()[-1])["valid"] is True
    code, out = run("messagelog", "verify", "--first", *map(str, archives[1:]))
    assert code == 1
    code, out = run("messagelog", "status", *d, "--json")
    status = json.loads(out)
    assert status["archived"] == 5
    assert status["last_tsa"] == conf.services.tsa_url
    code, out = run("messagelog", "clean", *d)
    assert (code, out.strip()) == (0, "removed 0 archived records")
