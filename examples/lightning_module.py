"""A Lightning run tracked by stepline: a small regressor on synthetic data.

    python examples/lightning_module.py
    stepline show lightning-regressor --project examples
"""

import lightning.pytorch as pl
import torch

from stepline.integrations.lightning import SteplineLogger


class Regressor(pl.LightningModule):
    def __init__(self, lr: float = 0.05, hidden: int = 16) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(8, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


def loader(size: int, seed: int, shuffle: bool) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(size, 8, generator=generator)
    y = (x * torch.arange(8)).sum(dim=1, keepdim=True)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=shuffle)


def main() -> None:
    pl.seed_everything(0, verbose=False)
    logger = SteplineLogger(project="examples", name="lightning-regressor", log_checkpoints="best", tags=["demo"])
    trainer = pl.Trainer(max_epochs=5, accelerator="cpu", logger=logger, log_every_n_steps=5,
                         enable_progress_bar=False)
    trainer.fit(Regressor(), loader(1024, 0, True), loader(256, 1, False))
    print(f"Tracked run {logger.version} in {logger.log_dir}")
    print(f"Look at it with: stepline show {logger.version}")


if __name__ == "__main__":
    main()
