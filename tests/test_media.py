"""Media logged with run.log, with real numpy, torch, Pillow, matplotlib and pandas objects, read back through
RunView.media and decoded with Pillow and the standard library's wave."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import wave

import numpy as np
import pytest

import stepline
from stepline import Logbook

Image = pytest.importorskip("PIL.Image")


def pixels_of(item):
    with Image.open(item["path"]) as image:
        return np.asarray(image)


def test_images_of_every_kind_land_as_pngs_with_their_pixels_captions_and_step(logdir, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    rng = np.random.default_rng(0)
    floats = rng.random((12, 10, 3))
    expected = np.round(floats * 255).astype(np.uint8)
    grey = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    planes = rng.integers(0, 256, (3, 5, 7), dtype=np.uint8)  # CHW in numpy: 7 cannot be channels
    chw = torch.rand(3, 6, 4)
    pil = Image.new("RGBA", (9, 3), (10, 20, 30, 40))
    on_disk = tmp_path / "given.png"
    Image.fromarray(grey).save(on_disk)
    figure = plt.figure(figsize=(2, 1), dpi=50)
    plt.plot([1, 2, 3])
    run = stepline.init(project="p", dir=logdir)
    run.log({"loss": 0.5, "floats": stepline.Image(floats, caption="noise"), "grey": stepline.Image(grey),
             "gallery": [stepline.Image(chw), stepline.Image(pil), stepline.Image(str(on_disk))],
             "figure": stepline.Image(figure), "planes": stepline.Image(planes)}, step=7)
    floats[:] = 0  # the caller's array changes after the call: what was logged does not
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert view.metrics() == [{"loss": 0.5, "step": 7, "timestamp": view.metrics()[0]["timestamp"]}]
    media = {record["key"]: record for record in view.media()}
    assert {record["step"] for record in media.values()} == {7} and {r["kind"] for r in media.values()} == {"image"}
    [noise] = media["floats"]["items"]
    assert noise["caption"] == "noise" and (noise["width"], noise["height"]) == (10, 12)
    assert np.array_equal(pixels_of(noise), expected)
    assert np.array_equal(pixels_of(media["grey"]["items"][0]), grey)
    assert np.array_equal(pixels_of(media["planes"]["items"][0]), np.moveaxis(planes, 0, -1))
    first, second, third = media["gallery"]["items"]
    assert np.array_equal(pixels_of(first), np.round(chw.permute(1, 2, 0).numpy() * 255).astype(np.uint8))
    assert np.array_equal(pixels_of(second), np.asarray(pil))
    assert third["path"].read_bytes() == on_disk.read_bytes()
    assert (media["figure"]["items"][0]["width"], media["figure"]["items"][0]["height"]) == (100, 50)
    shown = subprocess.run([sys.executable, "-m", "stepline.cli.main", "show", run.id, "--dir", str(logdir)],
                           capture_output=True, text=True, timeout=60).stdout
    assert "gallery  image" in shown and "3      7-7" in shown


def test_histograms_tables_text_and_audio_over_steps(logdir):
    import pandas as pd

    run = stepline.init(project="p", dir=logdir)
    for step in range(3):
        run.log({"weights": stepline.Histogram(np.arange(100) * (step + 1), bins=4)}, step=step)
    run.log({"given": stepline.Histogram(counts=[1, 2], edges=[0.0, 0.5, 1.0]),
             "numpy's": stepline.Histogram(np.histogram([0.1, 0.7, 0.9], bins=2, range=(0, 1))),
             "two values": stepline.Histogram((0.5, 0.75), bins=1)}, step=3)
    frame = pd.DataFrame({"id": [1, 2], "label": ["cat", None], "score": [0.5, math.nan]})
    run.log({"rows": stepline.Table(rows=[[1, "a"], (2, np.int64(3))], columns=["x", "y"]),
             "frame": stepline.Table(frame), "note": stepline.Text("héllo\nworld"),
             "tone": stepline.Audio(np.sin(np.linspace(0, 200, 8000)), sample_rate=8000, caption="a")}, step=4)
    stereo = np.zeros((400, 2), dtype=np.int16)
    stereo[:, 1] = 1000
    run.log({"tone": stepline.Audio(stereo, sample_rate=4000)}, step=5)
    run.finish()
    view = Logbook(logdir).run(run.id)
    weights = view.media("weights")
    assert [r["step"] for r in weights] == [0, 1, 2]
    assert weights[2]["items"][0]["counts"] == [25, 25, 25, 25] and weights[2]["items"][0]["edges"][-1] == 297
    assert view.media("given")[0]["items"][0] == {"counts": [1.0, 2.0], "edges": [0.0, 0.5, 1.0]}
    assert view.media("numpy's")[0]["items"][0] == {"counts": [1.0, 2.0], "edges": [0.0, 0.5, 1.0]}
    assert view.media("two values")[0]["items"][0]["counts"] == [2]  # a pair of values is not (counts, edges)
    [rows] = view.media("rows")[0]["items"]
    assert json.loads(rows["path"].read_text()) == {"columns": ["x", "y"], "rows": [[1, "a"], [2, 3]]}
    [frame_item] = view.media("frame")[0]["items"]
    assert frame_item["columns"] == ["id", "label", "score"] and frame_item["row_count"] == 2
    assert json.loads(frame_item["path"].read_text())["rows"] == [[1, "cat", 0.5], [2, None, None]]
    assert view.media("note")[0]["items"][0]["text"] == "héllo\nworld"
    mono, two = view.media("tone")
    with wave.open(str(mono["items"][0]["path"])) as sound:
        assert (sound.getframerate(), sound.getnchannels(), sound.getnframes()) == (8000, 1, 8000)
        samples = np.frombuffer(sound.readframes(8000), dtype="<i2")
    assert np.allclose(samples / 32767, np.sin(np.linspace(0, 200, 8000)), atol=1e-4)
    assert mono["items"][0]["caption"] == "a" and mono["items"][0]["seconds"] == 1.0
    with wave.open(str(two["items"][0]["path"])) as sound:
        assert sound.getnchannels() == 2
        assert np.frombuffer(sound.readframes(400), dtype="<i2").reshape(400, 2)[:, 1].tolist() == [1000] * 400


def test_bad_media_get_a_warning_naming_the_key_and_the_other_keys_land(logdir, tmp_path):
    run = stepline.init(project="p", dir=logdir)
    gone = tmp_path / "gone.png"
    Image.new("L", (2, 2)).save(gone)
    with pytest.warns(stepline.SteplineWarning) as said:
        run.log({"loss": 1.0, "five": stepline.Image(np.zeros((2, 2, 2, 2, 2))),
                 "words": stepline.Image("not a file"), "mixed": [stepline.Image(np.zeros((2, 2))), stepline.Text("x")],
                 "nan": stepline.Histogram([1.0, math.nan, 2.0, math.inf]), "empty": stepline.Table(rows=[]),
                 "rate": stepline.Audio(np.zeros(10), sample_rate=0.5), "later": stepline.Image(str(gone)),
                 "fine": stepline.Text("kept")}, step=1)
        gone.unlink()  # before the writer reads it: left out then, on the writer thread
        run.finish()
    text = " ".join(str(w.message) for w in said)
    for key in ("five", "words", "mixed", "nan", "empty", "rate", "later"):
        assert f"'{key}'" in text, key
    view = Logbook(logdir).run(run.id)
    assert [row["loss"] for row in view.metrics()] == [1.0]
    kept = {record["key"] for record in view.media()}
    assert kept == {"fine", "nan"}  # the histogram without its NaN and infinity, said so
    assert view.media("nan")[0]["items"][0]["left_out"] == 2 and sum(view.media("nan")[0]["items"][0]["counts"]) == 2
    assert "2 values that are NaN or infinite" in text


def test_a_resumed_run_keeps_numbering_its_media_and_goes_on_after_a_media_only_step(logdir):
    run = stepline.init(project="p", name="r", dir=logdir)
    run.log({"loss": 1.0})
    run.log({"img": stepline.Image(np.zeros((2, 2), dtype=np.uint8))})  # step 1: media only
    run.finish()
    again = stepline.init(project="p", name="r", dir=logdir, resume=True)
    again.log({"img": stepline.Image(np.full((2, 2), 255, dtype=np.uint8))})
    again.finish()
    view = Logbook(logdir).run(run.id)
    first, second = view.media("img")
    assert (first["step"], second["step"]) == (1, 2)
    assert first["items"][0]["path"] != second["items"][0]["path"]
    assert pixels_of(first["items"][0]).max() == 0 and pixels_of(second["items"][0]).min() == 255


def test_large_images_logged_faster_than_they_are_encoded_wait_for_room_by_their_bytes(logdir, monkeypatch):
    """The queue holds at most STEPLINE_QUEUE_MB of media waiting to be encoded (whatever its record bound): a
    loop logging 768 KiB images far faster than PNG encodes them keeps its memory bounded, waits, and loses none."""
    monkeypatch.setenv("STEPLINE_QUEUE_MB", "4")
    image = np.random.default_rng(0).integers(0, 255, (512, 512, 3), dtype=np.uint8)
    run = stepline.init(project="p", dir=logdir)
    held = []
    with pytest.warns(stepline.SteplineWarning, match="or 4 MB"):
        for step in range(30):
            run.log({"sample": stepline.Image(image)}, step=step)
            held.append(run._queue.pending_bytes())
    run.finish()
    assert max(held) <= (4 << 20) + image.nbytes + 1000  # the bound, and the image that crossed it
    samples = stepline.Logbook(logdir).run(run.id).media("sample")
    assert [record["step"] for record in samples] == list(range(30))
