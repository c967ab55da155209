"""run.params, run.logs and run.files: what lands and reads back."""

from __future__ import annotations

import argparse
import dataclasses
import enum
import math
import pathlib

import numpy as np
import pytest

import stepline
from stepline import Logbook
from tests.conftest import run_python


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class ModelConfig:
    layers: int = 2
    activation: str = "gelu"
    path: pathlib.Path = pathlib.Path("/models/x")


class WithToDict:
    def to_dict(self):
        return {"r": 8, "alpha": 16}


class Opaque:
    def __repr__(self):
        return "<Opaque thing>"


def test_params_operations_replay_in_order(logdir):
    run = stepline.init(project="p", dir=logdir, config={"lr": 0.1, "model": {"layers": 50}})
    run.params.extend(model={"dropout": 0.2})
    run.params.update("model.layers", 100)
    run.params.set(lr=0.01)
    run.params.update("optim.betas", [0.9, 0.99])
    expected = {"lr": 0.01, "model": {"layers": 100, "dropout": 0.2}, "optim": {"betas": [0.9, 0.99]}}
    assert run.params.read() == expected
    run.finish()
    assert Logbook(logdir).run(run.id).params() == expected


def test_params_take_anything_and_never_truncate(logdir):
    import torch  # here, not at collection: collecting the suite stays quick

    long_text = "x" * 10_000
    config = {
        "namespace": argparse.Namespace(a=1, b="two"),
        "dataclass": ModelConfig(),
        "enum": Color.RED,
        "path": pathlib.Path("/data/train"),
        "numpy": np.float32(0.5),
        "array": np.arange(3),
        "dtype": torch.float16,
        "to_dict": WithToDict(),
        "nested": {"tuple": (1, 2), "set": {3, 1, 2}, 5: "int key"},
        "long": long_text,
        "nan": math.nan,
        "inf": -math.inf,
    }
    run = stepline.init(project="p", dir=logdir, config=config)
    run.finish()
    params = Logbook(logdir).run(run.id).params()
    assert params["namespace"] == {"a": 1, "b": "two"}
    assert params["dataclass"] == {"layers": 2, "activation": "gelu", "path": "/models/x"}
    assert params["enum"] == "red" and params["path"] == "/data/train" and params["numpy"] == 0.5
    assert params["array"] == [0, 1, 2] and params["dtype"] == "torch.float16"
    assert params["to_dict"] == {"r": 8, "alpha": 16}
    assert params["nested"] == {"tuple": [1, 2], "set": [1, 2, 3], "5": "int key"}
    assert params["long"] == long_text
    assert math.isnan(params["nan"]) and params["inf"] == -math.inf


def test_a_param_without_json_form_is_kept_as_repr_with_one_warning(logdir):
    with pytest.warns(stepline.SteplineWarning, match=r"opaque.*repr"):
        run = stepline.init(project="p", dir=logdir, config={"opaque": Opaque(), "lr": 1})
    run.finish()
    assert Logbook(logdir).run(run.id).params() == {"opaque": "<Opaque thing>", "lr": 1}


def test_config_object_at_init(logdir):
    run = stepline.init(project="p", dir=logdir, config=argparse.Namespace(lr=0.5, epochs=3))
    run.finish()
    assert Logbook(logdir).run(run.id).params() == {"lr": 0.5, "epochs": 3}


def test_bad_params_key_names_the_fix(logdir):
    run = stepline.init(project="p", dir=logdir)
    with pytest.raises(stepline.ConfigError, match="dotted"):
        run.params.update("a..b", 1)


def test_logs_with_levels_and_context(logdir):
    run = stepline.init(project="p", dir=logdir)
    run.logs.info("started", epoch=0)
    run.warning("memory high", usage_gb=15.2)
    run.error("oops", where=pathlib.Path("/x"))
    run.debug("detail")
    run.logs.log("custom", level="info")
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert [(line["level"], line["message"], line["context"]) for line in view.logs()] == [
        ("INFO", "started", {"epoch": 0}),
        ("WARNING", "memory high", {"usage_gb": 15.2}),
        ("ERROR", "oops", {"where": "/x"}),
        ("DEBUG", "detail", {}),
        ("INFO", "custom", {}),
    ]
    assert [line["message"] for line in view.logs(level="warning")] == ["memory high"]
    with pytest.raises(stepline.ConfigError, match="level"):
        run.logs.log("x", level="LOUD")


def test_files_by_extension_round_trip(logdir, tmp_path):
    import torch  # here, not at collection: collecting the suite stays quick

    run = stepline.init(project="p", dir=logdir)
    run.files.save({"acc": 0.9, "path": pathlib.Path("/a")}, "results.json")
    run.files.save("some notes", "notes.txt")
    run.files.save(b"\x00\x01", "blob.bin")
    run.files.save({"a": [1, 2]}, "obj.pkl")
    run.files.save(np.arange(4), "arr.npy")
    run.files.save({"x": np.ones(2)}, "arrs.npz")
    checkpoints = run.files("checkpoints")
    checkpoints.save({"w": torch.ones(2)}, "epoch_1.pt")
    source = tmp_path / "plots"
    source.mkdir()
    (source / "loss.png").write_bytes(b"png")
    run.files.add(source)
    run.files.add(source / "loss.png", name="copied.png")

    assert run.files.load("results.json") == {"acc": 0.9, "path": "/a"}
    assert run.files.load("notes.txt") == "some notes"
    assert run.files.load("blob.bin") == b"\x00\x01"
    assert run.files.load("obj.pkl") == {"a": [1, 2]}
    assert run.files.load("arr.npy").tolist() == [0, 1, 2, 3]
    assert run.files.load("arrs.npz")["x"].tolist() == [1.0, 1.0]
    assert torch.equal(checkpoints.load("epoch_1.pt")["w"], torch.ones(2))
    assert checkpoints.list() == ["epoch_1.pt"]
    assert checkpoints.exists("epoch_1.pt") and not run.files.exists("epoch_1.pt")
    run.finish()
    assert Logbook(logdir).run(run.id).files() == [
        "arr.npy", "arrs.npz", "blob.bin", "checkpoints/epoch_1.pt", "copied.png", "notes.txt", "obj.pkl",
        "plots/loss.png", "results.json",
    ]


def test_saved_object_is_the_one_at_save_time(logdir):
    run = stepline.init(project="p", dir=logdir)
    state = {"epoch": 1}
    run.files.save(state, "state.json")
    state["epoch"] = 2
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert view.file_path("state.json").read_bytes().replace(b" ", b"").replace(b"\n", b"") == b'{"epoch":1}'


@pytest.mark.parametrize("name", ["../escape.json", "/abs.json", "a/../../b.json", "", "nul\x00.txt", "a\\b.txt"])
def test_file_names_never_leave_the_run(logdir, name):
    run = stepline.init(project="p", dir=logdir)
    with pytest.raises(stepline.InvalidNameError):
        run.files.save("x", name)


def test_a_file_without_a_known_format_says_which_to_use(logdir):
    run = stepline.init(project="p", dir=logdir)
    with pytest.raises(stepline.ConfigError, match=r"\.json"):
        run.files.save(object(), "thing")


def test_a_missing_numpy_or_pandas_gives_the_pip_command_and_training_goes_on(logdir):
    """Run where importing numpy and pandas fails, as on a machine without them."""
    result = run_python(f"""
        import sys
        sys.modules["numpy"] = None
        sys.modules["pandas"] = None
        import warnings, stepline
        run = stepline.init(project="p", dir={str(logdir)!r})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run.files.save([1, 2, 3], "x.npy")
        run.log({{"loss": 0.5}}, step=1)  # training goes on
        run.finish()
        print("warned:", " ".join(str(w.message) for w in caught))
        try:
            stepline.Logbook({str(logdir)!r}).run(run.id).to_pandas()
        except stepline.MissingDependencyError as err:
            print("raised:", err)
    """)
    assert result.returncode == 0, result.stderr
    assert "saving 'x.npy' needs numpy, which is not installed: pip install numpy" in result.stdout
    assert "RunView.to_pandas() needs pandas, which is not installed: pip install 'stepline[pandas]'" in result.stdout
    [view] = Logbook(logdir).runs("p")
    assert view.series("loss").values == [0.5] and view.files() == []
