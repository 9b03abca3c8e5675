"""Training logs and their curve: read_training_log against the CSV it reads, the PNG written."""

import numpy as np
import pytest

from fastmri_zoo import viz


def _write_log(path, rows):
    lines = ["epoch,loss,psnr,val_loss,val_psnr"] + [",".join(str(v) for v in row) for row in rows]
    path.write_text("\n".join(lines) + "\n")


def test_read_training_log_keeps_the_last_row_of_a_resumed_epoch(tmp_path):
    log = tmp_path / "log.csv"
    _write_log(log, [(0, 0.5, 20.0, 0.4, 21.0), (1, 0.4, 22.0, 0.3, 23.0), (1, 0.39, 22.5, 0.29, 23.5),
                     (2, 0.3, 24.0, 0.2, 25.0)])
    columns = viz.read_training_log(log)
    np.testing.assert_array_equal(columns["epoch"], [0, 1, 2])
    np.testing.assert_array_equal(columns["val_psnr"], [21.0, 23.5, 25.0])


def test_training_curve_png(tmp_path):
    from PIL import Image

    log = tmp_path / "log.csv"
    _write_log(log, [(e, 0.5, 20.0 + e, 0.4, 21.0 + e) for e in range(4)])
    path = viz.save_training_curve_png(tmp_path / "curve.png", log, steps_per_epoch=50,
                                       baselines={"zero-filled": 21.5}, title="test")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".png" and p.name != "curve.png"]  # no temp left


def test_a_curve_spanning_decades_is_drawn_on_a_log_axis():
    assert viz.curve_scale([3.5e6, 8e4, 3e4], [2.8e4, 2.7e4]) == "log"  # a score-matching loss
    assert viz.curve_scale([20.1, 24.5], [21.0, 27.3]) == "linear"  # PSNR in dB
    assert viz.curve_scale([0.05, 0.6]) == "log" and viz.curve_scale([0.06, 0.6]) == "linear"  # the factor 10
    assert viz.curve_scale([-1.0, 100.0]) == "linear" and viz.curve_scale([np.nan, 1.0, 5.0]) == "linear"


def test_a_diverged_psnr_curve_keeps_a_readable_axis(tmp_path):
    """Epochs of a diverged run (-250 dB) sit on the axis' floor, 15 dB below the best value or 1 dB under the
    baseline, whichever is lower; a healthy curve, or a loss, is drawn whole."""
    healthy, diverged = [20.3, 20.9, 21.1], [20.3, 20.9, 21.1, -247.8, np.nan]
    assert viz.curve_floor("psnr", [healthy], [20.0]) is None
    assert viz.curve_floor("psnr", [diverged], [20.0]) == pytest.approx(21.1 - viz.DIVERGED_DB)
    assert viz.curve_floor("psnr", [diverged], [5.0]) == pytest.approx(4.0)
    assert viz.curve_floor("loss", [[1.0, 1e12]]) is None
    log = tmp_path / "log.csv"
    _write_log(log, [(e, 0.5, v, 0.4, v) for e, v in enumerate(diverged)])
    path = viz.save_training_curve_png(tmp_path / "curve.png", log, steps_per_epoch=100, baselines={"zero-filled": 20.0},
                                       kept_step=300)
    assert path.endswith("curve.png")


def test_training_curve_rejects_a_log_without_the_metric(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match="psnr"):
        viz.save_training_curve_png(tmp_path / "curve.png", log, steps_per_epoch=10)
    with pytest.raises(ValueError, match="epoch"):
        (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
        viz.read_training_log(tmp_path / "bad.csv")


def test_validation_curves_of_several_runs(tmp_path):
    from PIL import Image

    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_log(first, [(e, 0.5, 20.0, 0.4, 21.0 + e) for e in range(3)])
    _write_log(second, [(0, 0.5, 20.0, 0.4, 22.0), (1, 0.5, 20.0, 0.4, 22.5), (1, 0.5, 20.0, 0.4, 22.7)])
    curves = viz.validation_curves({"A": first, "B": second}, steps_per_epoch=200)
    np.testing.assert_array_equal(curves["A"][0], [200, 400, 600])
    np.testing.assert_array_equal(curves["A"][1], [21.0, 22.0, 23.0])
    np.testing.assert_array_equal(curves["B"][0], [200, 400])
    np.testing.assert_array_equal(curves["B"][1], [22.0, 22.7])  # a resumed epoch's last row
    path = viz.save_validation_curves_png(tmp_path / "curves.png", {"A": first, "B": second}, 200,
                                          baselines={"zero-filled": 20.5}, title="test")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300
    (tmp_path / "c.csv").write_text("epoch,loss\n0,1.0\n")
    with pytest.raises(ValueError, match="C: its log has no column 'val_psnr'"):
        viz.validation_curves({"C": tmp_path / "c.csv"}, 200)


def test_a_continued_run_is_drawn_after_the_run_it_continues(tmp_path):
    """Logs given as a list: each continuation's epochs count on from the last step of the log before it."""
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    _write_log(first, [(e, 0.5, 20.0, 0.4, 21.0 + e) for e in range(3)])
    _write_log(second, [(e, 0.5, 20.0, 0.4, 24.0 + e) for e in range(2)])
    steps, values = viz.validation_curves({"A": [first, second]}, steps_per_epoch=100)["A"]
    np.testing.assert_array_equal(steps, [100, 200, 300, 400, 500])
    np.testing.assert_array_equal(values, [21.0, 22.0, 23.0, 24.0, 25.0])
    empty = {"epoch": np.array([]), "val_psnr": np.array([])}  # a continuation stopped before its first epoch
    steps, _ = viz.validation_curves({"A": [first, empty, second]}, steps_per_epoch=100)["A"]
    np.testing.assert_array_equal(steps, [100, 200, 300, 400, 500])
    alone = viz.validation_curves({"A": first, "B": (first,)}, steps_per_epoch=100)
    np.testing.assert_array_equal(alone["A"][0], alone["B"][0])
    with pytest.raises(ValueError, match="A: expected a log.csv or a list of them"):
        viz.validation_curves({"A": []}, 100)
    path = viz.save_validation_curves_png(tmp_path / "curves.png", {"A": [first, second], "B": first}, 100)
    assert path.endswith("curves.png")
