"""A real Hugging Face Trainer on a tiny BERT, with stepline's callback: read back what landed."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from transformers import Trainer

import stepline
from stepline import Logbook
from stepline.integrations.transformers import SteplineCallback
from tests.conftest import run_python
from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

pytestmark = pytest.mark.slow


def train(tmp_path, logdir, callback=None, **arg_overrides):
    callback = callback or SteplineCallback(project="hf", dir=logdir)
    trainer = Trainer(model=tiny_bert(), args=tiny_args(tmp_path / "out", **arg_overrides),
                      train_dataset=SyntheticText(64), eval_dataset=SyntheticText(16, seed=1), callbacks=[callback])
    trainer.train()
    return trainer, callback


def logged(trainer, key):
    """(step, value) of each entry of the trainer's own log history that has ``key``."""
    return [(entry["step"], entry[key]) for entry in trainer.state.log_history if key in entry]


def test_steps_are_optimizer_steps_under_gradient_accumulation(tmp_path, logdir):
    trainer, callback = train(tmp_path, logdir, gradient_accumulation_steps=2)
    view = Logbook(logdir).run(callback.run.id)
    series = view.series("train/loss")
    assert list(zip(series.steps, series.values)) == logged(trainer, "loss")
    assert series.steps == list(range(1, trainer.state.global_step + 1))  # 64 samples / (8 * 2) * 2 epochs
    assert trainer.state.global_step == 8
    assert view.series("train/learning_rate").steps == series.steps
    assert view.series("train/grad_norm").values == [v for _, v in logged(trainer, "grad_norm")]
    assert series.epochs[-1] == pytest.approx(2.0)
    assert view.status == "finished"


def test_eval_points_sit_at_the_training_step_they_follow(tmp_path, logdir):
    trainer, callback = train(tmp_path, logdir, eval_strategy="steps", eval_steps=3)
    view = Logbook(logdir).run(callback.run.id)
    eval_loss = view.series("eval/loss")
    assert list(zip(eval_loss.steps, eval_loss.values)) == logged(trainer, "eval_loss")
    assert eval_loss.steps == [3, 6, 9, 12, 15, 16]  # transformers 5 also evaluates at the last step
    assert "eval/runtime" in view.metric_keys()


def test_params_summary_and_no_secrets(tmp_path, logdir):
    trainer, callback = train(tmp_path, logdir, hub_token="hf_secret_value", run_name="tiny-bert")
    view = Logbook(logdir).run(callback.run.id)
    assert view.name == "tiny-bert"
    params = view.params()
    assert params["training_args"]["learning_rate"] == 1e-3
    assert params["training_args"]["gradient_accumulation_steps"] == 1
    assert "hub_token" not in params["training_args"]
    assert "hf_secret_value" not in json.dumps(params)
    assert params["model_config"]["hidden_size"] == 32 and params["model_config"]["num_hidden_layers"] == 2
    total = sum(p.numel() for p in trainer.model.parameters())
    assert params["parameters"] == {"total": total, "trainable": total}
    summary = view.summary
    assert summary["train_runtime"] > 0 and summary["total_flos"] > 0 and "train_samples_per_second" in summary
    assert not any(key.startswith("train/runtime") for key in view.metric_keys())


def test_a_peft_config_with_a_non_serialisable_field_is_stored(tmp_path, logdir):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["query", "value"], task_type="SEQ_CLS")
    model = get_peft_model(tiny_bert(), lora)
    model.peft_config["default"].megatron_config = object()  # a field JSON cannot hold
    callback = SteplineCallback(project="hf", dir=logdir)
    with pytest.warns(stepline.SteplineWarning, match="megatron_config") as caught:
        Trainer(model=model, args=tiny_args(tmp_path / "out", max_steps=2), train_dataset=SyntheticText(32),
                callbacks=[callback]).train()
    assert not any(w.filename.startswith(str(Path(stepline.__file__).parent)) for w in caught)
    params = Logbook(logdir).run(callback.run.id).params()
    lora_params = params["peft_config"]["default"]
    assert lora_params["r"] == 4 and sorted(lora_params["target_modules"]) == ["query", "value"]
    assert lora_params["megatron_config"].startswith("<object object")
    counts = params["parameters"]
    assert 0 < counts["trainable"] < counts["total"]


def test_evaluate_and_predict_after_training_land_in_the_same_run(tmp_path, logdir):
    trainer, callback = train(tmp_path, logdir)
    run_id = callback.run.id
    assert Logbook(logdir).run(run_id).status == "finished"
    trainer.evaluate()
    trainer.predict(SyntheticText(16, seed=2))
    assert callback.run.id == run_id
    view = Logbook(logdir).run(run_id)
    assert view.status == "finished"
    assert view.series("eval/loss").steps == [trainer.state.global_step]
    assert view.series("test/loss").steps == [trainer.state.global_step]
    assert len(Logbook(logdir).runs("hf")) == 1


def test_checkpoints_all_and_best(tmp_path, logdir):
    _, every = train(tmp_path / "a", logdir, save_strategy="steps", save_steps=4, max_steps=8,
                     callback=SteplineCallback(project="hf", dir=logdir, log_checkpoints="all"))
    files = Logbook(logdir).run(every.run.id).files()
    assert {f.split("/")[1] for f in files if f.startswith("checkpoints/")} == {f"checkpoint-{s}" for s in (4, 8)}
    assert "checkpoints/checkpoint-8/model.safetensors" in files

    trainer, best = train(tmp_path / "b", logdir, save_strategy="steps", save_steps=2, eval_strategy="steps",
                          eval_steps=2, load_best_model_at_end=True, save_total_limit=1,
                          callback=SteplineCallback(project="hf", dir=logdir, log_checkpoints="best"))
    view = Logbook(logdir).run(best.run.id)
    best_name = trainer.state.best_model_checkpoint.rsplit("/", 1)[-1]
    assert {f.split("/")[1] for f in view.files()} == {best_name}
    assert view.summary["best_model_checkpoint"] == trainer.state.best_model_checkpoint
    assert view.summary["best_metric"] == pytest.approx(trainer.state.best_metric)


def test_resume_from_checkpoint_continues_the_same_run(tmp_path, logdir):
    first = SteplineCallback(project="hf", name="long", dir=logdir)
    train(tmp_path, logdir, callback=first, max_steps=4, save_strategy="steps", save_steps=4)
    second = SteplineCallback(project="hf", name="long", dir=logdir, resume=True)
    trainer = Trainer(model=tiny_bert(), args=tiny_args(tmp_path / "out", max_steps=8),
                      train_dataset=SyntheticText(64), callbacks=[second])
    trainer.train(resume_from_checkpoint=True)
    assert second.run.id == first.run.id
    view = Logbook(logdir).run(first.run.id)
    assert view.series("train/loss").steps == list(range(1, 9))
    assert view.status == "finished" and len(view.meta["resumed_at"]) == 1


def test_hyperparameter_search_gives_one_run_per_trial(tmp_path, logdir):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    callback = SteplineCallback(project="hpo", dir=logdir)
    trainer = Trainer(model_init=lambda trial=None: tiny_bert(), args=tiny_args(tmp_path / "out", max_steps=2),
                      train_dataset=SyntheticText(32), eval_dataset=SyntheticText(16, seed=1), callbacks=[callback])
    trainer.hyperparameter_search(
        hp_space=lambda trial: {"learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)},
        backend="optuna", n_trials=2, direction="minimize",
    )
    runs = Logbook(logdir).runs("hpo")
    assert len(runs) == 2 and all(run.status == "finished" for run in runs)
    for run in runs:
        trial_lr = run.params()["trial"]["learning_rate"]
        assert run.params()["training_args"]["learning_rate"] == pytest.approx(trial_lr)
        assert run.series("train/loss").steps == [1, 2]


def test_a_run_that_raises_in_training_is_failed(tmp_path, logdir):
    result = run_python(f"""
        import torch
        from transformers import Trainer
        from stepline.integrations.transformers import SteplineCallback
        from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

        class Exploding(torch.utils.data.Dataset):
            served = 0
            def __len__(self): return 64
            def __getitem__(self, i):
                Exploding.served += 1
                if Exploding.served > 40: raise RuntimeError("corrupt shard")  # in the sixth batch
                return SyntheticText(64)[i]

        trainer = Trainer(model=tiny_bert(), args=tiny_args({str(tmp_path / "out")!r}),
                          train_dataset=Exploding(), callbacks=[SteplineCallback(project="hf", dir={str(logdir)!r})])
        trainer.args.dataloader_num_workers = 0
        trainer.train()
    """, env={"PYTHONPATH": str(__import__("pathlib").Path(__file__).parents[2])})
    assert "corrupt shard" in result.stderr
    [view] = Logbook(logdir).runs("hf")
    assert view.status == "failed" and view.error["message"] == "corrupt shard"
    assert view.series("train/loss").steps == [1, 2, 3, 4]  # the loader reads one batch ahead


def test_given_run_is_used_and_left_open(tmp_path, logdir):
    run = stepline.init(project="mine", dir=logdir)
    _, callback = train(tmp_path, logdir, callback=SteplineCallback(run=run), max_steps=2)
    assert callback.run is run and run.status == "running"
    run.log({"after/custom": 1.0})
    run.finish()
    view = Logbook(logdir).run(run.id)
    assert view.series("train/loss").steps == [1, 2] and not math.isnan(view.series("after/custom").values[0])


def ddp_script(tmp_path, logdir, project: str):
    """A training script that torchrun launches: a Trainer with the callback, over gloo."""
    import textwrap

    script = tmp_path / "train.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parents[2])!r})
        from transformers import Trainer
        from stepline.integrations.transformers import SteplineCallback
        from tests.integrations.hf_models import SyntheticText, tiny_args, tiny_bert

        args = tiny_args({str(tmp_path / "out")!r}, max_steps=6, ddp_backend="gloo")
        trainer = Trainer(model=tiny_bert(), args=args, train_dataset=SyntheticText(64),
                          callbacks=[SteplineCallback(project={project!r}, dir={str(logdir)!r})])
        trainer.train()
        print(f"world size {{trainer.args.world_size}}", flush=True)  # one write, so the ranks do not interleave
        import torch.distributed
        if torch.distributed.is_initialized():  # a clean teardown: gloo's threads can abort a rank at exit
            torch.distributed.destroy_process_group()
    """))
    return script


def test_two_process_ddp_gives_one_run_and_no_duplicate_points(tmp_path, logdir):
    import subprocess
    import sys

    script = ddp_script(tmp_path, logdir, "ddp")
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(script)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    # Under load, gloo sometimes aborts a rank in its own teardown after training has ended ("terminate called
    # without an active exception"): torch's, not stepline's. Then rank 0 must still have finished the run.
    if result.returncode != 0:
        assert "terminate called without an active exception" in result.stderr, result.stderr[-3000:]
    assert result.stdout.count("world size 2") >= 1
    [view] = Logbook(logdir).runs("ddp")
    assert view.status == "finished" and view.series("train/loss").steps == [1, 2, 3, 4, 5, 6]


def test_a_run_name_with_a_slash_is_a_label_and_a_bad_project_never_stops_training(tmp_path, logdir):
    trainer, callback = train(tmp_path, logdir, run_name="bert/lr=1e-3", max_steps=2)
    assert Logbook(logdir).run(callback.run.id).name == "bert/lr=1e-3"
    assert Logbook(logdir).run("bert/lr=1e-3", project="hf").id == callback.run.id  # found by that name too
    with pytest.warns(stepline.SteplineWarning, match="recorded as project 'team-vision'"):
        trainer, callback = train(tmp_path, logdir, SteplineCallback(project="team/vision", dir=logdir), max_steps=2)
    view = Logbook(logdir).run(callback.run.id)
    assert view.project == "team-vision" and view.series("train/loss").steps == [1, 2]


def test_a_job_over_two_nodes_is_one_run_with_both_machines(tmp_path, logdir):
    """torchrun on two "nodes" (two agents on loopback, a process each): rank zero's callback records the
    training, node 1's records its machine into the same run."""
    from tests.conftest import torchrun_two_nodes

    script = ddp_script(tmp_path, logdir, "nodes")
    ended = torchrun_two_nodes(script, "hf-job", cwd=tmp_path,
                               env={"STEPLINE_SYSTEM_METRICS": "1", "STEPLINE_SYSTEM_INTERVAL": "0.1"})
    for code, _, err in ended:  # gloo's own teardown may abort a rank after training ended
        assert code == 0 or "terminate called without an active exception" in err, err[-3000:]
    [view] = Logbook(logdir).runs("nodes")
    assert view.status == "finished" and view.series("train/loss").steps == [1, 2, 3, 4, 5, 6]
    assert view.series("system/node.1/memory.process_rss_mb").values and view.nodes()[0].status == "finished"
    assert view.series("system/node.0/memory.process_rss_mb").values
