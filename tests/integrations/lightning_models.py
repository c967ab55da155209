"""A tiny LightningModule on synthetic data, importable from ``lightning.pytorch`` or ``pytorch_lightning``."""

from __future__ import annotations

import importlib

import torch


def module_class(package: str = "lightning.pytorch"):
    pl = importlib.import_module(package)

    class TinyRegressor(pl.LightningModule):
        def __init__(self, lr: float = 0.05, hidden: int = 8, explode_at_step: int | None = None) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

        def training_step(self, batch, batch_idx):
            if self.hparams.explode_at_step is not None and self.global_step >= self.hparams.explode_at_step:
                raise RuntimeError("loss exploded")
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return TinyRegressor


def loader(size: int = 64, seed: int = 0, batch_size: int = 8):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 4, generator=generator)
    y = x.sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch_size)
