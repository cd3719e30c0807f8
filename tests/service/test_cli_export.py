"""``tailor admin`` and ``tailor export`` CLIs; the export manifest, REDCap interchange, the
analysis contract of the wide export, and the G11 canary-PHI scan."""

from __future__ import annotations

import hashlib
import io
import json
import re
from datetime import timedelta

import pandas as pd
import pytest
from sqlalchemy import func, select

from tailor.cli import main
from tailor.db import models as m
from tailor.dtr.analysis import _check_columns, default_plan
from tailor.protocol import builtin_protocols, load_protocol
from tailor.services import audit, exports, randomization, redcap, trial
from tailor.services.context import Actor, RequestContext

from . import server
from .factories import NOW, TODAY, ready_participant, setup_trial, week12_nonresponder

GOOD = "a long enough passphrase"


@pytest.fixture
def env(dbh, monkeypatch):  # type: ignore[no-untyped-def]
    from tailor.settings import get_settings

    monkeypatch.setenv("TAILOR_DATABASE_URL", server.server_url(dbh))
    monkeypatch.setenv("TAILOR_ARGON2_TIME_COST", "1")
    monkeypatch.setenv("TAILOR_ARGON2_MEMORY_KIB", "8")
    get_settings.cache_clear()
    yield dbh
    get_settings.cache_clear()


def _stdin(monkeypatch, text: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


# --------------------------------------------------------------------------- admin CLI
def test_admin_cli_bootstrap_and_login(env, monkeypatch, capsys):
    from tailor.services import auth

    _stdin(monkeypatch, GOOD + "\n")
    assert main(["admin", "create-user", "root", "--role", "admin", "--full-name", "Ada Root",
                 "--password-stdin"]) == 0
    _stdin(monkeypatch, "not the password\n")
    assert main(["admin", "go-live", "--protocol", "best", "--as", "root",
                 "--password-stdin"]) == 2
    assert "signature rejected" in capsys.readouterr().err
    _stdin(monkeypatch, GOOD + "\n")
    assert main(["admin", "go-live", "--protocol", "best", "--as", "root",
                 "--password-stdin"]) == 0
    assert "signed by Ada Root (root)" in capsys.readouterr().out
    assert main(["admin", "create-site", "S01", "--name", "Site one",
                 "--timezone", "America/New_York"]) == 0
    _stdin(monkeypatch, GOOD + "\n")
    assert main(["admin", "create-user", "alice", "--role", "coordinator", "--site", "S01",
                 "--password-stdin"]) == 0
    assert "user alice created" in capsys.readouterr().out
    assert auth.login(env.db, "alice", GOOD).role == "coordinator"
    _stdin(monkeypatch, "another long passphrase\n")
    assert main(["admin", "set-password", "alice", "--password-stdin"]) == 0
    assert auth.login(env.db, "alice", "another long passphrase").site == "S01"
    assert main(["admin", "deactivate-user", "alice"]) == 0
    assert "1 session(s) ended" in capsys.readouterr().out
    with pytest.raises(auth.AuthenticationError):
        auth.login(env.db, "alice", "another long passphrase")
    assert main(["admin", "reactivate-user", "alice"]) == 0
    assert auth.login(env.db, "alice", "another long passphrase").site == "S01"
    s = env.db.session(write=False)
    rows = s.scalars(select(m.AuditLog).where(m.AuditLog.entity == "User",
                                              m.AuditLog.field == "password_hash")).all()
    s.close()
    assert rows and all(r.actor.startswith("cli:") for r in rows)
    assert all(GOOD not in (r.new_value or "") for r in rows)  # redacted


@pytest.mark.parametrize("argv, stdin, message", [
    (["admin", "create-user", "bob", "--role", "statistician", "--password-stdin"],
     "short\n", "at least 12 characters"),
    (["admin", "create-user", "bob", "--role", "statistician", "--password-stdin"],
     "password1234\n", "too easy to guess"),
    (["admin", "create-user", "bob", "--role", "statistician", "--password-stdin"],
     "\n", "no password given"),
    (["admin", "create-user", "bob", "--role", "wizard", "--password-stdin"],
     GOOD + "\n", "role must be one of"),
    (["admin", "create-user", "bob", "--role", "coordinator", "--password-stdin"],
     GOOD + "\n", "needs a site"),
    (["admin", "create-site", "S09", "--name", "x", "--timezone", "Mars/Olympus"], "",
     "IANA"),
    (["admin", "create-site", "S09", "--name", "Evil\u202eetis", "--timezone", "UTC"], "",
     "bidirectional control characters (found U+202E)"),
    (["admin", "create-user", "bob\x00", "--role", "statistician", "--password-stdin"],
     GOOD + "\n", "control characters"),
    (["admin", "set-password", "nobody", "--password-stdin"], GOOD + "\n", "not found"),
    (["admin", "go-live", "--protocol", "nope", "--as", "x"], "", "protocol must be one of"),
    (["admin", "go-live", "--as", "nobody", "--password-stdin"], GOOD + "\n",
     "no active user 'nobody'"),
    (["export", "--format", "xlsx"], "", "--format must be one of"),
])
def test_cli_bad_input_exits_2_with_a_clear_message(env, monkeypatch, capsys, argv, stdin,
                                                     message):
    _stdin(monkeypatch, stdin)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_password_is_never_an_argument(env, capsys):
    assert main(["admin", "create-user", "bob", "--role", "statistician",
                 "--password", GOOD]) == 2
    assert "--password" in capsys.readouterr().err


# --------------------------------------------------------------------------- export
@pytest.fixture
def populated(dbh):  # type: ignore[no-untyped-def]
    t = setup_trial(dbh.db)
    codes = [ready_participant(t, u) for u in ("coord1", "coord2", "coord1")]
    for code, u in zip(codes, ("coord1", "coord2", "coord1"), strict=True):
        randomization.randomize(t.db, t.ctx(u), code, 1, f"k1-{code}")
    code2 = week12_nonresponder(t, "coord2")
    later = t.ctx("coord2", now=NOW + timedelta(weeks=14))
    randomization.randomize(t.db, later, code2, 2, f"k2-{code2}")
    ready_participant(t, "coord2")  # not randomized: long table only
    return t


def test_export_cli_files_manifest_and_audit_event(populated, env, tmp_path, capsys):
    head_before = audit.chain_head(env.db)
    out = tmp_path / "exp"
    assert main(["export", "--out", str(out), "--format", "csv"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["audit_chain_head"]["seq"] == head_before.seq
    assert manifest["audit_chain_head"]["hash"] == head_before.hash
    names = {f["name"]: f for f in manifest["files"]}
    assert set(names) == {"wide.csv", "long.csv", "dictionary.csv"}
    for name, f in names.items():
        data = (out / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == f["sha256"]
        assert len(pd.read_csv(out / name)) == f["rows"]
    assert manifest["row_counts"]["participants_randomized"] == 4 == names["wide.csv"]["rows"]
    s = env.db.session(write=False)
    ev = s.scalars(select(m.AuditLog).where(m.AuditLog.action == "export")).one()
    s.close()
    assert ev.actor.startswith("cli:") and ev.seq == head_before.seq + 1
    assert main(["export", "--out", str(tmp_path / "pq"), "--format", "parquet"]) == 0
    assert len(pd.read_parquet(tmp_path / "pq" / "wide.parquet")) == 4


def test_wide_export_meets_the_analysis_contract(populated, tmp_path):
    admin_ctx = populated.ctx("admin")
    manifest = exports.write_export(populated.db, admin_ctx, tmp_path)
    wide = pd.read_csv(tmp_path / "wide.csv")
    protocol = load_protocol(builtin_protocols()["best"])
    _check_columns(wide, protocol, default_plan(wide, protocol))  # raises on a breach
    assert set(wide["A1"]) <= set(protocol.arm_codes)
    assert wide["A2"].notna().sum() == 1 and manifest.format == "csv"


def test_redcap_dictionary_and_records(populated, tmp_path):
    exports.write_export(populated.db, populated.ctx("stat"), tmp_path, fmt="redcap")
    dic = pd.read_csv(tmp_path / "redcap_dictionary.csv")
    rec = pd.read_csv(tmp_path / "redcap_records.csv")
    assert list(dic.columns) == redcap.DICTIONARY_COLUMNS
    assert dic.iloc[0]["Variable / Field Name"] == "record_id" == rec.columns[0]
    names = list(dic["Variable / Field Name"])
    assert names == list(rec.columns)  # every record field is in the dictionary, in order
    assert all(re.fullmatch(r"[a-z][a-z0-9_]{0,99}", n) for n in names)
    assert set(dic["Field Type"]) <= {"text", "yesno", "dropdown"}
    a1 = dic[dic["Variable / Field Name"] == "a1"].iloc[0]
    assert a1["Field Type"] == "dropdown" and "ESC, ESC" in a1["Choices, Calculations, OR Slider Labels"]


def _week6_csv(code: str, **values: str) -> str:
    cols = {"record_id": code, "redcap_event_name": "week6_arm_1",
            "visit_date": str(TODAY + timedelta(days=42)), "peg1": "4", "peg2": "3",
            "peg3": "5", "pgic1": "2"} | values
    return ",".join(cols) + "\n" + ",".join(cols.values()) + "\n"


def test_redcap_import_stages_then_writes_through_services(populated):
    code = ready_participant(populated, "coord1")
    ctx = populated.ctx("coord1", now=NOW + timedelta(weeks=7), request_id="import-1")
    randomization.randomize(populated.db, ctx, code, 1, f"k-{code}")
    bad = _week6_csv(code, peg2="11", visit_date="2025-13-01") + \
        f"{code},week99,,1,1,1,1\nP-0000-0000,week6_arm_1,,1,1,1,1\n"
    report = redcap.import_records(populated.db, ctx, bad, commit=True)
    assert not report.ok and report.written == 0 and report.rows == 3
    assert {(e["row"], e["field"]) for e in report.errors} == {
        (1, "visit_date"), (2, "redcap_event_name"), (3, "record_id")}
    alloc = redcap.stage_records(populated.db, ctx, "record_id,redcap_event_name,a1\n"
                                 f"{code},week6,ESC\n")
    assert [e["field"] for e in alloc.errors] == ["a1"]  # allocations are never imported
    count = _audit_rows(populated)
    report = redcap.import_records(populated.db, ctx, _week6_csv(code), commit=False)
    assert report.ok and report.written == 0 and _audit_rows(populated) == count  # staging
    report = redcap.import_records(populated.db, ctx, _week6_csv(code), commit=True)
    assert report.ok and report.written == 1
    visits = {v.visit: v for v in trial.visits_view(populated.db, ctx, code)}
    assert visits["week6"].status == "completed"
    s = populated.db.session(write=False)
    rows = s.scalars(select(m.AuditLog).where(m.AuditLog.request_id == "import-1",
                                              m.AuditLog.entity == "InstrumentResponse",
                                              m.AuditLog.field == "value")).all()
    s.close()
    assert len(rows) == 4 and all(r.actor == "coord1" and r.site == "S01" for r in rows)


def _audit_rows(t) -> int:  # type: ignore[no-untyped-def]
    s = t.db.session(write=False)
    try:
        return int(s.scalar(select(func.count()).select_from(m.AuditLog)) or 0)
    finally:
        s.close()


# --------------------------------------------------------------------------- G11 canaries
CANARIES = {
    "name": "Eleanor Rigby", "email": "eleanor.rigby@example.org", "phone": "(617) 555-0142",
    "ssn": "078-05-1120", "zip5": "02139", "ip": "192.168.17.42", "date": "1961-08-05",
    "us_date": "08/05/1961",
}
PATTERNS = {
    "email": r"[\w.+-]+@[\w-]+\.[\w.]+", "ssn": r"\b\d{3}-\d{2}-\d{4}\b",
    "phone": r"\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b", "ip": r"\b\d{1,3}(?:\.\d{1,3}){3}\b",
    "iso_date": r"\b(?:19|20)\d{2}-\d{2}-\d{2}\b", "us_date": r"\b\d{1,2}/\d{1,2}/\d{4}\b",
}


def _seed_canaries(t) -> None:  # type: ignore[no-untyped-def]
    """PHI canaries in every free-text field a user or integration could fill."""
    text = " ".join(CANARIES.values())
    sys_ctx = RequestContext(Actor(0, "seed", "admin"), request_id="seed", reason=text[:500])
    session = t.db.session(write=True)
    from tailor.db import AuditContext

    session.info["audit"] = AuditContext(actor="seed", role="admin", reason=text[:500])
    for site in session.scalars(select(m.Site)):
        site.name = f"{site.name} {text}"[:200]
    for p in session.scalars(select(m.Participant)):
        session.add(m.AdverseEvent(participant_id=p.id, kind="other", arm=None,
                                   onset_date=TODAY, description=text))
        ea = session.scalars(select(m.EligibilityAssessment).where(
            m.EligibilityAssessment.participant_id == p.id)).first()
        if ea is not None:
            ea.record = dict(ea.record) | {"notes": text, "email": CANARIES["email"],
                                           "zip": CANARIES["zip5"]}
            ea.reasons = [*ea.reasons, text]
    for v in session.scalars(select(m.Visit).where(m.Visit.status == "completed")):
        for item, value in (("FREE1", text), ("ZIP", CANARIES["zip5"] + "-1234"),
                            ("DOB", CANARIES["us_date"])):
            session.add(m.InstrumentResponse(visit_id=v.id, instrument="NOTES", version="1",
                                             item_code=item, value=value))
        session.add(m.DerivedScore(visit_id=v.id, name="comment", value=CANARIES["name"]))
    session.commit()
    session.close()
    assert sys_ctx.reason


def test_canary_phi_never_reaches_the_export(populated, tmp_path):
    t = populated
    code = ready_participant(t, "coord1")
    ctx = t.ctx("coord1", reason="call " + CANARIES["phone"])
    randomization.randomize(t.db, ctx, code, 1, "ssn-" + CANARIES["ssn"])
    trial.withdraw(t.db, t.ctx("coord1"), code, withdrawn_on=TODAY,
                   reason_code="lost_to_follow_up")
    _seed_canaries(t)
    hits = []
    for fmt in exports.FORMATS:
        out = tmp_path / fmt
        exports.write_export(t.db, t.ctx("stat"), out, fmt=fmt)
        for path in sorted(out.iterdir()):
            if path.suffix == ".parquet":
                body = pd.read_parquet(path).to_csv(index=False)
            else:
                body = path.read_text(encoding="utf-8")
            if path.name == "manifest.json":  # export time and file hashes only
                body = json.dumps({k: v for k, v in json.loads(body).items()
                                   if k not in ("created_at",)})
            for kind, canary in CANARIES.items():
                if canary in body:
                    hits.append((path.name, kind, canary))
            for name in CANARIES["name"].split():
                if name in body:
                    hits.append((path.name, "name", name))
            if path.name != "manifest.json":
                for kind, pattern in PATTERNS.items():
                    hits += [(path.name, kind, x) for x in re.findall(pattern, body)]
    assert hits == []
    wide = pd.read_csv(tmp_path / "csv" / "wide.csv")
    assert (wide["age"] <= 90).all()
    assert set(wide.columns) == {c for c, _, _ in exports.wide_columns(
        load_protocol(builtin_protocols()["best"]))}  # allow-list, nothing else


def test_redcap_import_rejected_row_leaves_nothing_written(populated):
    """A row that passes staging but that the service rejects on write (here: a participant
    not yet randomized) rolls the whole file back: the valid row before it is not written."""
    ctx = populated.ctx("coord1", now=NOW + timedelta(weeks=7), request_id="import-2")
    done = ready_participant(populated, "coord1")
    randomization.randomize(populated.db, ctx, done, 1, f"k-{done}")
    waiting = ready_participant(populated, "coord1")  # eligible, never randomized
    csv_text = _week6_csv(done) + _week6_csv(waiting).split("\n", 1)[1]
    staged = redcap.stage_records(populated.db, ctx, csv_text)
    assert staged.ok and staged.rows == 2  # the problem only shows on write
    count = _audit_rows(populated)
    report = redcap.import_records(populated.db, ctx, csv_text, commit=True)
    assert not report.ok and report.written == 0
    assert [(e["row"], e["record_id"]) for e in report.errors] == [(2, waiting)]
    assert "nothing from this file was written" in report.errors[0]["message"]
    assert _audit_rows(populated) == count
    visits = {v.visit: v for v in trial.visits_view(populated.db, ctx, done)}
    assert visits["week6"].status != "completed"
