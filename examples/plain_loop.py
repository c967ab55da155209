"""A plain training loop tracked by stepline: a tiny linear regression in pure Python.

    python examples/plain_loop.py
    stepline show plain-loop --project examples
"""

import random

import stepline


def main() -> None:
    rng = random.Random(0)
    data = [(x, 3.0 * x + 1.0 + rng.gauss(0, 0.1)) for x in (rng.uniform(-1, 1) for _ in range(256))]
    config = {"lr": 0.1, "epochs": 5, "batch_size": 16, "model": {"kind": "linear", "inputs": 1}}

    with stepline.init(project="examples", name="plain-loop", config=config, tags=["demo"]) as run:
        weight, bias, step = 0.0, 0.0, 0
        train, per_epoch = run.metrics("train"), run.metrics("epoch")
        for epoch in range(config["epochs"]):
            rng.shuffle(data)
            for start in range(0, len(data), config["batch_size"]):
                batch = data[start : start + config["batch_size"]]
                errors = [(weight * x + bias - y, x) for x, y in batch]
                loss = sum(e * e for e, _ in errors) / len(batch)
                weight -= config["lr"] * 2 * sum(e * x for e, x in errors) / len(batch)
                bias -= config["lr"] * 2 * sum(e for e, _ in errors) / len(batch)
                train.log(step=step, epoch=epoch, loss=loss, lr=config["lr"])
                per_epoch.collect(loss=loss)
                step += 1
            # epoch/loss is the mean of the epoch's batch losses; weight and bias go along as they are.
            per_epoch.flush(aggregation="mean", step=step - 1, epoch=epoch, weight=weight, bias=bias)
            run.info("epoch done", epoch=epoch, weight=round(weight, 4), bias=round(bias, 4))
        run.files.save({"weight": weight, "bias": bias}, "model.json")
        print(f"Tracked run {run.id} in {run.path}")
        print(f"Look at it with: stepline show {run.id}  (or stepline list)")


if __name__ == "__main__":
    main()
