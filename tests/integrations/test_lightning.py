"""A real Lightning Trainer with stepline's logger: read back what landed."""

from __future__ import annotations

import sys
import textwrap
from argparse import Namespace

import pytest
import torch

import stepline
from stepline import Logbook
from stepline.integrations.lightning import SteplineLogger
from tests.conftest import REPO
from tests.integrations.lightning_models import loader, module_class

pytestmark = pytest.mark.slow

QUIET = dict(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1)


def trainer(package="lightning.pytorch", **kwargs):
    import importlib

    pl = importlib.import_module(package)
    return pl.Trainer(**{**QUIET, **kwargs})


def csv_points(csv_logger, key):
    import csv

    with open(f"{csv_logger.log_dir}/metrics.csv") as handle:
        return [(int(row["step"]), float(row[key]), int(row["epoch"])) for row in csv.DictReader(handle) if row[key]]


def test_fit_logs_steps_epochs_eval_params_and_finishes(tmp_path, logdir):
    from lightning.pytorch.loggers import CSVLogger

    logger = SteplineLogger(project="pl", dir=str(logdir))
    reference = CSVLogger(tmp_path / "csv")  # Lightning's own logger, beside ours in the same fit
    fit = trainer(logger=[logger, reference], max_epochs=2, accumulate_grad_batches=2)
    fit.fit(module_class()(lr=0.05), loader(), loader(16, seed=1))

    view = Logbook(logdir).run(logger.version)
    loss, val = view.series("train/loss"), view.series("eval/loss")
    assert list(zip(loss.steps, loss.values, loss.epochs)) == csv_points(reference, "train_loss")
    assert list(zip(val.steps, val.values, val.epochs)) == csv_points(reference, "val_loss")
    # 8 batches an epoch and an optimizer step every 2: one point per optimizer step, counted from 0
    assert fit.global_step == 8 and loss.steps == list(range(8)) and loss.epochs == [0] * 4 + [1] * 4
    assert val.steps == [3, 7]
    assert view.params()["lr"] == 0.05 and view.params()["hidden"] == 8
    total = sum(p.numel() for p in fit.lightning_module.parameters())
    assert view.params()["parameters"] == {"total": total, "trainable": total}
    assert "model/structure.txt" in view.files()
    assert view.status == "finished"


def test_checkpoint_folder_is_inside_the_run_and_best_is_kept(tmp_path, logdir):
    logger = SteplineLogger(project="pl", dir=str(logdir), log_checkpoints="best")
    fit = trainer(logger=logger, max_epochs=3)
    checkpoint = fit.checkpoint_callback
    checkpoint.monitor, checkpoint.save_top_k, checkpoint.mode = "val_loss", 1, "min"
    fit.fit(module_class()(), loader(), loader(16, seed=1))
    view = Logbook(logdir).run(logger.version)
    assert checkpoint.dirpath == str(view.path / "checkpoints")
    assert view.summary["best_model_path"] == checkpoint.best_model_path
    assert view.summary["best_model_score"] == pytest.approx(float(checkpoint.best_model_score))
    best_name = checkpoint.best_model_path.rsplit("/", 1)[-1]
    assert [f for f in view.files() if f.startswith("checkpoints/")] == [f"checkpoints/{best_name}"]


def test_all_checkpoints(tmp_path, logdir):
    logger = SteplineLogger(project="pl", dir=str(logdir), log_checkpoints="all")
    from lightning.pytorch.callbacks import ModelCheckpoint

    every = ModelCheckpoint(save_top_k=-1, every_n_epochs=1)
    fit = trainer(logger=logger, max_epochs=3, callbacks=[every])
    fit.fit(module_class()(), loader())
    files = Logbook(logdir).run(logger.version).files()
    assert len([f for f in files if f.startswith("checkpoints/") and f.endswith(".ckpt")]) == 3


def test_fit_validate_test_with_one_logger_continue_one_run_and_a_new_logger_starts_another(tmp_path, logdir):
    logger = SteplineLogger(project="pl", dir=str(logdir))
    fit = trainer(logger=logger, max_epochs=1)
    model = module_class()()
    fit.fit(model, loader())
    fit.validate(model, loader(16, seed=1))
    fit.test(model, loader(16, seed=2))
    runs = Logbook(logdir).runs("pl")
    assert len(runs) == 1
    view = runs[0]
    assert view.status == "finished"
    assert len(view.series("eval/loss")) == 1 and len(view.series("test/loss")) == 1
    assert view.series("test/loss").steps == [fit.global_step]

    other = SteplineLogger(project="pl", dir=str(logdir))
    trainer(logger=other, max_epochs=1).fit(module_class()(), loader())
    assert len(Logbook(logdir).runs("pl")) == 2 and other.version != logger.version


def test_hyperparams_in_every_shape(logdir):
    from lightning.pytorch.utilities.parsing import AttributeDict
    from omegaconf import OmegaConf

    logger = SteplineLogger(project="pl", dir=str(logdir))
    logger.log_hyperparams({"a": 1, "nested": {"b": [1, 2]}})
    logger.log_hyperparams(Namespace(c="three"))
    logger.log_hyperparams(AttributeDict(d=4.5))
    logger.log_hyperparams(OmegaConf.create({"e": {"f": "${g}"}, "g": 7}))
    logger.finalize("success")
    assert Logbook(logdir).run(logger.version).params() == {
        "a": 1, "nested": {"b": [1, 2]}, "c": "three", "d": 4.5, "e": {"f": 7}, "g": 7,
    }


def test_an_exception_in_training_fails_the_run(tmp_path, logdir):
    logger = SteplineLogger(project="pl", dir=str(logdir))
    with pytest.raises(RuntimeError, match="loss exploded"):
        trainer(logger=logger, max_epochs=2).fit(module_class()(explode_at_step=3), loader())
    view = Logbook(logdir).run(logger.version)
    assert view.status == "failed" and view.error["message"] == "loss exploded"
    assert len(view.series("train/loss")) == 3


def test_a_given_run_is_used_and_left_open(logdir):
    run = stepline.init(project="mine", dir=logdir)
    logger = SteplineLogger(run=run)
    trainer(logger=logger, max_epochs=1).fit(module_class()(), loader())
    assert logger.experiment is run and run.status == "running" and logger.name == "mine"
    run.finish()
    assert len(Logbook(logdir).run(run.id).series("train/loss")) == 8


def test_pytorch_lightning_package_works_too(logdir):
    pytest.importorskip("pytorch_lightning")
    logger = SteplineLogger(project="ptl", dir=str(logdir))
    trainer("pytorch_lightning", logger=logger, max_epochs=1).fit(module_class("pytorch_lightning")(), loader())
    view = Logbook(logdir).run(logger.version)
    assert view.status == "finished" and len(view.series("train/loss")) == 8


def test_ddp_on_two_processes_gives_one_run_and_no_duplicate_points(tmp_path, logdir):
    script = tmp_path / "train_ddp.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import lightning.pytorch as pl
        from stepline.integrations.lightning import SteplineLogger
        from tests.integrations.lightning_models import loader, module_class

        if __name__ == "__main__":
            trainer = pl.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_epochs=2, log_every_n_steps=1,
                                 enable_progress_bar=False, enable_model_summary=False,
                                 logger=SteplineLogger(project="ddp", dir={str(logdir)!r}))
            trainer.fit(module_class()(), loader(64), loader(16, seed=1))
    """))
    import subprocess

    result = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = Logbook(logdir).runs("ddp")
    assert len(runs) == 1
    view = runs[0]
    loss = view.series("train/loss")
    # 64 samples over 2 processes, batches of 8: 4 steps an epoch, 2 epochs
    assert loss.steps == sorted(set(loss.steps)) and len(loss) == 8
    assert len(view.series("eval/loss")) == 2
    assert view.status == "finished"


def test_tensor_values_from_lightning_are_numbers(logdir):
    logger = SteplineLogger(project="pl", dir=str(logdir))
    logger.log_metrics({"val/acc": torch.tensor(0.5), "epoch": 1}, step=3)
    logger.finalize("success")
    view = Logbook(logdir).run(logger.version)
    assert view.series("eval/acc").values == [0.5] and view.series("eval/acc").epochs == [1]


def test_images_tables_and_text_logged_as_with_lightning_s_wandb_logger(logdir):
    import numpy as np

    base = module_class()

    class Illustrated(base):
        def on_validation_epoch_end(self):
            x = next(iter(self.trainer.val_dataloaders))[0][:2]
            self.logger.log_image("samples", [x[0].reshape(2, 2), x[1].reshape(2, 2).clamp(0, 1)],
                                  step=self.global_step, caption=["first", "second"])
            self.logger.log_table("preds", columns=["id", "pred"], data=[[0, 0.5], [1, 0.25]], step=self.global_step)
            self.logger.log_text("notes", columns=["text"], data=[[f"epoch {self.current_epoch}"]])

    logger = SteplineLogger(project="pl", dir=str(logdir))
    fit = trainer(logger=logger, max_epochs=2, num_sanity_val_steps=0)
    fit.fit(Illustrated(lr=0.05), loader(), loader(16, seed=1))
    view = Logbook(logdir).run(logger.version)
    samples = view.media("samples")
    assert [record["step"] for record in samples] == [8, 16]  # the global step at each validation
    assert [item["caption"] for item in samples[0]["items"]] == ["first", "second"]
    assert all(item["path"].is_file() and item["width"] == 2 for record in samples for item in record["items"])
    preds = view.media("preds")
    assert [record["step"] for record in preds] == [8, 16] and preds[0]["items"][0]["columns"] == ["id", "pred"]
    notes = view.media("notes")
    assert [record["kind"] for record in notes] == ["table", "table"]
    import json

    assert [json.loads(r["items"][0]["path"].read_text())["rows"] for r in notes] == [[["epoch 0"]], [["epoch 1"]]]
    assert np.isfinite(view.series("train/loss").values).all()


def test_a_job_over_two_nodes_is_one_run_with_both_machines(tmp_path, logdir):
    """torchrun on two "nodes" (two agents on loopback, a process each), Lightning's DDP over both: rank zero's
    logger records the training, node 1's logger records its machine into the same run."""
    from tests.conftest import torchrun_two_nodes

    script = tmp_path / "train_nodes.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import lightning.pytorch as pl
        from stepline.integrations.lightning import SteplineLogger
        from tests.integrations.lightning_models import loader, module_class

        if __name__ == "__main__":
            trainer = pl.Trainer(accelerator="cpu", devices=1, num_nodes=2, strategy="ddp", max_epochs=2,
                                 log_every_n_steps=1, enable_progress_bar=False, enable_model_summary=False,
                                 logger=SteplineLogger(project="nodes", dir={str(logdir)!r}))
            trainer.fit(module_class()(), loader(64), loader(16, seed=1))
    """))
    ended = torchrun_two_nodes(script, "lightning-job", cwd=tmp_path,
                               env={"STEPLINE_SYSTEM_METRICS": "1", "STEPLINE_SYSTEM_INTERVAL": "0.1"})
    assert all(code == 0 for code, _, _ in ended), [err[-3000:] for _, _, err in ended]
    [view] = Logbook(logdir).runs("nodes")
    loss = view.series("train/loss")  # 64 samples over 2 processes, batches of 8: 4 steps an epoch, 2 epochs
    assert view.status == "finished" and len(loss) == 8 and loss.steps == sorted(set(loss.steps))
    assert view.series("system/node.1/memory.process_rss_mb").values
    assert view.series("system/node.0/memory.process_rss_mb").values
