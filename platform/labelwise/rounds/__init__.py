"""Multi-round active learning: label a batch, finetune, rescore the rest, select again."""
