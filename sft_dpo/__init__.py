"""rft.sft_dpo: warm-start stages (SFT, DPO) over TRL."""
