"""Reading trained models: attributions and faithfulness, head ablation and patching, robustness, rollout."""
