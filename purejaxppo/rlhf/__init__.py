"""PPO for a language model, in miniature (issue 12) — foundations so far: a synthetic
language with a hidden gold preference, a tiny causal Transformer LM, reward and value models,
sampling in a `lax.scan`, supervised fitting and Bradley–Terry reward modelling.

Not imported by `import purejaxppo`; import `purejaxppo.rlhf` explicitly. See docs/rlhf.md.
"""

from purejaxppo.rlhf.language import (
    LanguageConfig,
    completion_mask,
    gold_score,
    gold_score_sequences,
    sample_corpus,
    sample_prompts,
    sequence_mask,
)
from purejaxppo.rlhf.models import (
    ModelConfig,
    RewardModel,
    TransformerLM,
    ValueModel,
    init_params,
    make_models,
    with_torso_from,
)
from purejaxppo.rlhf.reward import (
    PreferenceData,
    bt_loss,
    make_preference_data,
    make_train_reward,
    pairwise_accuracy,
)
from purejaxppo.rlhf.sampling import Sample, completion_log_probs, sample_completions
from purejaxppo.rlhf.sft import SFTOutput, corpus_loss, make_sft

__all__ = [
    "LanguageConfig",
    "ModelConfig",
    "PreferenceData",
    "RewardModel",
    "SFTOutput",
    "Sample",
    "TransformerLM",
    "ValueModel",
    "bt_loss",
    "completion_log_probs",
    "completion_mask",
    "corpus_loss",
    "gold_score",
    "gold_score_sequences",
    "init_params",
    "make_models",
    "make_preference_data",
    "make_sft",
    "make_train_reward",
    "pairwise_accuracy",
    "sample_completions",
    "sample_corpus",
    "sample_prompts",
    "sequence_mask",
    "with_torso_from",
]
