from tailor.cli import main


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "SMART" in capsys.readouterr().out


def test_usage_errors_exit_2(capsys):
    assert main(["randomize", "replay", "--no-such-option"]) == 2
    assert main(["protocol", "show", "best", "extra", "args"]) == 2
