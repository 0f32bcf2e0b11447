"""RLHF in miniature, in pure JAX: a synthetic language with a hidden gold preference, a tiny
causal Transformer LM fitted by SFT, a Bradley–Terry reward model on noisy preference pairs,
then PPO with a token-level critic (or GRPO) against it with a KL leash to the reference —
a population of seeds x hyperparameters vmapped in one program.

Not imported by `import purejaxppo`; import `purejaxppo.rlhf` explicitly. The command is
`purejaxppo rlhf CONFIG.yaml` (`rlhf/cli.py`, the shell). See docs/rlhf.md.
"""

from purejaxppo.rlhf.config import (
    PopulationConfig,
    RewardConfig,
    RLConfig,
    RLHFConfig,
    RLHFHParams,
    SFTConfig,
    population_members,
    stack_rlhf_hparams,
)
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
from purejaxppo.rlhf.pipeline import (
    Evaluation,
    Pipeline,
    Prepared,
    make_pipeline,
    member_keys,
    prepare_key,
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
from purejaxppo.rlhf.trainer import Frozen, RLMetrics, RLOutput, make_rl_train

__all__ = [
    "Evaluation",
    "Frozen",
    "LanguageConfig",
    "ModelConfig",
    "Pipeline",
    "PopulationConfig",
    "PreferenceData",
    "Prepared",
    "RLConfig",
    "RLHFConfig",
    "RLHFHParams",
    "RLMetrics",
    "RLOutput",
    "RewardConfig",
    "RewardModel",
    "SFTConfig",
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
    "make_pipeline",
    "make_preference_data",
    "make_rl_train",
    "make_sft",
    "make_train_reward",
    "member_keys",
    "pairwise_accuracy",
    "population_members",
    "prepare_key",
    "sample_completions",
    "sample_corpus",
    "sample_prompts",
    "sequence_mask",
    "stack_rlhf_hparams",
    "with_torso_from",
]
