"""A Hugging Face Trainer run tracked by stepline: a tiny BERT, built from a config, on synthetic text.

    python examples/transformers_trainer.py
    stepline show bert-tiny --project examples

Runs on the CPU in well under a minute; nothing is downloaded.
"""

import tempfile

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from stepline.integrations.transformers import SteplineCallback


class SyntheticText(torch.utils.data.Dataset):
    """Token sequences labelled by whether token 7 occurs in them."""

    def __init__(self, size: int, seed: int) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (size, 16), generator=generator)
        self.labels = (self.ids == 7).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones_like(self.ids[i]), "labels": self.labels[i]}


def main() -> None:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=32, num_labels=2)
    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(output_dir=output_dir, num_train_epochs=3, per_device_train_batch_size=16,
                                 learning_rate=2e-3, logging_steps=5, eval_strategy="steps", eval_steps=20,
                                 report_to="none", use_cpu=True, disable_tqdm=True, save_strategy="no")
        callback = SteplineCallback(project="examples", name="bert-tiny", tags=["demo", "transformers"])
        trainer = Trainer(model=BertForSequenceClassification(config), args=args,
                          train_dataset=SyntheticText(512, seed=0), eval_dataset=SyntheticText(128, seed=1),
                          callbacks=[callback])
        trainer.train()
        trainer.evaluate()  # lands in the same run, at the last training step
    print(f"Tracked run {callback.run.id} in {callback.run.path}")
    print(f"Look at it with: stepline show {callback.run.id}")


if __name__ == "__main__":
    main()
