"""Tiny Hugging Face models and synthetic data, built in code: no hub, no download."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, TrainingArguments


def tiny_bert(seed: int = 0) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=32, num_labels=2)
    return BertForSequenceClassification(config)


class SyntheticText(torch.utils.data.Dataset):
    """Sequences whose label is whether token 7 appears: learnable, and the same for a given seed."""

    def __init__(self, size: int, seed: int = 0, length: int = 12) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(1, 100, (size, length), generator=generator)
        self.labels = (self.ids == 7).any(dim=1).long()

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[index], "attention_mask": torch.ones_like(self.ids[index]),
                "labels": self.labels[index]}


def tiny_args(output_dir, **overrides) -> TrainingArguments:
    settings = dict(output_dir=str(output_dir), per_device_train_batch_size=8, per_device_eval_batch_size=8,
                    num_train_epochs=2, logging_steps=1, learning_rate=1e-3, report_to="none", use_cpu=True,
                    save_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0)
    settings.update(overrides)
    return TrainingArguments(**settings)
