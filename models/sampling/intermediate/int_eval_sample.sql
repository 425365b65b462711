{#- The eval sample (the gallery): the sampled rows of int_eval_candidates,
    balanced per section, free of duplicates (vars.eval_dedup) and
    deterministic for vars.eval_seed. -#}
{{ sampled_rows(ref('int_eval_candidates')) }}
