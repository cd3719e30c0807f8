from tailor.cli import main


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "SMART" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    assert main(["randomize", "replay", "--no-such-option"]) == 2
    assert main(["protocol", "show", "best", "extra", "args"]) == 2


HEAVY = ("pandas", "numpy", "numba", "scipy", "sqlalchemy", "tailor.db",  # (typer loads pydantic)
         "tailor.design", "tailor.dtr", "tailor.services", "tailor.stats", "tailor.protocol")


def test_help_of_every_command_imports_none_of_the_heavy_stack():
    """`tailor --help` and each sub-command's --help load only the CLI (lazy imports); the
    timing itself is in benchmarks/bench_cli.py."""
    import subprocess
    import sys

    commands = [[], ["protocol"], ["randomize"], ["instruments"], ["score"], ["simulate"],
                ["analyze"], ["design"], ["design", "size"], ["db"], ["audit"], ["serve"],
                ["admin"], ["export"], ["demo"], ["warmup"]]
    code = ("import contextlib, io, sys\n"
            "from tailor.cli import main\n"
            f"for argv in {commands!r}:\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "        assert main([*argv, '--help']) == 0, argv\n"
            "    assert 'Usage' in out.getvalue(), argv\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_compile_notice_is_one_line_on_the_first_compile_only(monkeypatch):
    from numba import njit

    from tailor.cli import warmup_cmd

    monkeypatch.setattr(warmup_cmd, "_notice_installed", False)
    lines: list[str] = []
    warmup_cmd.install_compile_notice(lines.append)

    @njit  # not cached: compiles in this process
    def plus_one(x):
        return x + 1

    @njit
    def twice(x):
        return 2 * x

    assert plus_one(1) == 2 and twice(2) == 4
    assert lines == [warmup_cmd._NOTICE]
    assert "tailor warmup" in lines[0]
