{#- The label sample: the sampled rows of int_label_candidates, balanced per
    section, free of duplicates (vars.eval_dedup) and deterministic for
    vars.eval_seed; it depends on the text spaces only. -#}
{{ sampled_rows(ref('int_label_candidates')) }}
