"""Stage 05's analysis, beside its stage module (:mod:`sif_lib.stages.s05_score_rewards`): how well a scorer's
ranking of responses agrees with the verifiers' truth (:mod:`~sif_lib.stages.s05_analysis.ranking`, after the
paper's Table 6), and the generative judge whose cost and agreement the reward model is compared with
(:mod:`~sif_lib.stages.s05_analysis.judge`). Nothing below the stage layer uses them; the reward inspector widget
and ``sif bench reward`` do.
"""
