from tailor.cli import main


def test_help_exits_zero(capsys):
    assert main(["--help"]) == 0
    assert "SMART" in capsys.readouterr().out
