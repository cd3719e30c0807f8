import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from tailor.report import HtmlReport


def test_report_is_self_contained_and_escapes_text(tmp_path):
    r = HtmlReport("Trial <report>", subtitle="BEST")
    r.heading("Balance")
    r.paragraph("a < b & <script>alert(1)</script>")
    r.table(pd.DataFrame({"arm": ["ACT", "<b>"], "n": [1.23456, float("nan")]}), caption="c")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    r.figure(fig, caption="a line", save_as=tmp_path / "plots" / "line")
    plt.close(fig)
    text = r.write(tmp_path / "report.html").read_text()
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "&lt;b&gt;" in text and "1.23" in text
    assert "<svg" in text and "http://" not in text.split("<svg", 1)[0]
    assert (tmp_path / "plots" / "line.png").stat().st_size > 0
    assert (tmp_path / "plots" / "line.svg").exists()
    assert '<a href="#s1">Balance</a>' in text
