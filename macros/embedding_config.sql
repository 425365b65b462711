{#- The one configuration, read from vars (dbt_project.yml). Its validator is
    embed_udfs.config (a typed model); the guard below, for `dbt build` run
    directly, repeats the checks that keep a bad value out of SQL, with the same
    messages (tests/python/test_config_parity.py holds both to that). -#}

{% macro embedding_spaces() %}
    {{ return(var('embed_spaces', [])) }}
{% endmacro %}


{% macro embedding_space(name) %}
    {%- for space in embedding_spaces() -%}
        {%- if space.name == name -%}{{ return(space) }}{%- endif -%}
    {%- endfor -%}
    {{ exceptions.raise_compiler_error(
        "Unknown embedding space '" ~ name ~ "'. Configured spaces: "
        ~ (embedding_spaces() | map(attribute='name') | join(', ')) ~ ". Declare it under vars.embed_spaces in dbt_project.yml."
    ) }}
{% endmacro %}


{#- The retrieval pairs, each checked as the guard checks it (compile and
    run-operation skip on-run-start, and the models still need valid pairs). -#}
{% macro embedding_pairs() %}
    {%- set pairs = var('embed_pairs', []) -%}
    {%- for pair in pairs -%}
        {%- set problem = embedding_pair_problem(pair, loop.index0, embedding_spaces()) -%}
        {%- if problem -%}
            {{ exceptions.raise_compiler_error("Invalid embedding configuration: " ~ problem) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(pairs) }}
{% endmacro %}


{#- The spaces that some retrieval pair uses: the eval sample needs them all. -#}
{% macro paired_space_names() %}
    {%- set names = [] -%}
    {%- for pair in embedding_pairs() -%}
        {%- for name in [pair.text_space, pair.image_space] -%}
            {%- if name not in names -%}{%- do names.append(name) -%}{%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return(names) }}
{% endmacro %}


{#- Both directions of every pair: query space, gallery space, direction name. -#}
{% macro retrieval_directions() %}
    {%- set directions = [] -%}
    {%- for pair in embedding_pairs() -%}
        {%- do directions.append({'pair': pair.name, 'direction': 'text_to_image',
                                  'query': embedding_space(pair.text_space), 'gallery': embedding_space(pair.image_space)}) -%}
        {%- do directions.append({'pair': pair.name, 'direction': 'image_to_text',
                                  'query': embedding_space(pair.image_space), 'gallery': embedding_space(pair.text_space)}) -%}
    {%- endfor -%}
    {{ return(directions) }}
{% endmacro %}


{% macro max_k() %}
    {{ return(var('eval_k_values') | max) }}
{% endmacro %}


{#- on-run-start: fail the whole invocation on a bad configuration before any
    model runs, with the message embed_udfs.config gives for the same mistake. -#}
{% macro validate_embedding_config() %}
    {%- if execute -%}
        {%- set problem = embedding_config_problem() -%}
        {%- if problem -%}
            {{ exceptions.raise_compiler_error("Invalid embedding configuration: " ~ problem) }}
        {%- endif -%}
    {%- endif -%}
    select 'embedding configuration is valid' as status
{% endmacro %}


{#- `dbt run-operation check_embedding_configs --args '{configs: [{...}, ...]}'`
    prints one line per candidate set of vars (each overriding the project's):
    `embedding config <i>: ok` or the problem the guard would raise. -#}
{% macro check_embedding_configs(configs) %}
    {%- for overrides in configs -%}
        {%- set problem = embedding_config_problem(overrides) -%}
        {{ print("embedding config " ~ loop.index0 ~ ": " ~ (problem or "ok")) }}
    {%- endfor -%}
{% endmacro %}


{#- The first problem in the vars (with `overrides` on top), or an empty string. -#}
{% macro embedding_config_problem(overrides={}) %}
    {%- set ns = namespace(problem='') -%}

    {%- for name in ['products_relation', 'vectors_relation', 'backfill_errors_relation',
                     'cluster_assignments_relation'] -%}
        {%- set value = embedding_config_var(overrides, name) -%}
        {%- set parts = value.split('.') if value is string else [] -%}
        {%- if not ns.problem and (parts | length != 2 or not embedding_config_identifier(parts[0]) or not embedding_config_identifier(parts[1])) -%}
            {%- set ns.problem = "vars." ~ name ~ " is " ~ embedding_config_shown(value)
                ~ "; it must be schema.table, and " ~ embedding_config_identifier_rule() ~ "." -%}
        {%- endif -%}
    {%- endfor -%}

    {%- for name, minimum in [('eval_sample_size', 2), ('eval_seed', 0), ('hnsw_ef_search', 1),
                              ('exact_search_max_gallery', 1), ('eval_section_min', 1),
                              ('text_max_words', 1), ('near_duplicate_k', 1), ('bootstrap_seed', 0)] -%}
        {%- if not ns.problem -%}
            {%- set ns.problem = embedding_config_integer_problem("vars." ~ name, embedding_config_var(overrides, name), minimum) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- set section_cap = embedding_config_var(overrides, 'eval_section_cap') -%}
    {%- if not ns.problem and section_cap is not none and section_cap != 'auto'
          and embedding_config_integer_problem('vars.eval_section_cap', section_cap, 1) -%}
        {%- set ns.problem = "vars.eval_section_cap is " ~ embedding_config_shown(section_cap) ~ "; use a positive integer, auto or null." -%}
    {%- endif -%}
    {%- set cap_factor = embedding_config_var(overrides, 'eval_section_cap_factor') -%}
    {%- set factor_digits = cap_factor is string and modules.re.fullmatch('[0-9]+([.][0-9]*)?', cap_factor.strip()) is not none -%}
    {%- if not ns.problem and not ((factor_digits or (cap_factor is number and cap_factor is not boolean)) and (cap_factor | float) >= 1) -%}
        {%- set ns.problem = "vars.eval_section_cap_factor is " ~ embedding_config_shown(cap_factor) ~ "; it must be a number of at least 1." -%}
    {%- endif -%}
    {%- if not ns.problem -%}
        {%- set ns.problem = embedding_config_target_recall_problem(embedding_config_var(overrides, 'ann_target_recall')) -%}
    {%- endif -%}
    {%- set k_values = embedding_config_var(overrides, 'eval_k_values') -%}
    {%- if not ns.problem and (k_values is string or k_values is mapping or k_values is not iterable) -%}
        {%- set ns.problem = "vars.eval_k_values is " ~ embedding_config_shown(k_values) ~ "; it must be a list." -%}
    {%- endif -%}
    {%- for k in (k_values if not ns.problem else []) -%}
        {%- if not ns.problem -%}
            {%- set ns.problem = embedding_config_integer_problem("vars.eval_k_values[" ~ loop.index0 ~ "]", k, 1) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for name, choices in [('retrieval_search', ['auto', 'hnsw', 'exact']),
                              ('dedup_text_variant', embedding_config_text_variants())] -%}
        {%- if not ns.problem and embedding_config_var(overrides, name) not in choices -%}
            {%- set ns.problem = "vars." ~ name ~ " is " ~ embedding_config_shown(embedding_config_var(overrides, name)) ~ "; use one of " ~ choices | join(', ') ~ "." -%}
        {%- endif -%}
    {%- endfor -%}

    {%- set spaces = embedding_config_var(overrides, 'embed_spaces') or [] -%}
    {%- for space in spaces -%}
        {%- set where = "vars.embed_spaces[" ~ loop.index0 ~ "]" -%}
        {%- if not ns.problem and not embedding_config_identifier(space.name) -%}
            {%- set ns.problem = where ~ ".name is " ~ embedding_config_shown(space.name) ~ "; " ~ embedding_config_identifier_rule() ~ "." -%}
        {%- endif -%}
        {%- if not ns.problem and space.modality not in ['text', 'image'] -%}
            {%- set ns.problem = where ~ ".modality is " ~ embedding_config_shown(space.modality) ~ "; use one of text, image." -%}
        {%- endif -%}
        {%- if not ns.problem and space.get('text_variant', 'clean') not in embedding_config_text_variants() -%}
            {%- set ns.problem = where ~ ".text_variant is " ~ embedding_config_shown(space.text_variant)
                ~ "; use one of " ~ embedding_config_text_variants() | join(', ') ~ "." -%}
        {%- endif -%}
        {%- for field in space.get('text_fields') or [] -%}
            {%- if not ns.problem and not embedding_config_identifier(field) -%}
                {%- set ns.problem = where ~ ".text_fields[" ~ loop.index0 ~ "] is " ~ embedding_config_shown(field)
                    ~ "; " ~ embedding_config_identifier_rule() ~ "." -%}
            {%- endif -%}
        {%- endfor -%}
        {%- if not ns.problem -%}
            {%- set ns.problem = embedding_config_integer_problem(where ~ ".dim", space.dim, 1) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for pair in embedding_config_var(overrides, 'embed_pairs') or [] -%}
        {%- if not ns.problem and not embedding_config_identifier(pair.name) -%}
            {%- set ns.problem = "vars.embed_pairs[" ~ loop.index0 ~ "].name is " ~ embedding_config_shown(pair.name)
                ~ "; " ~ embedding_config_identifier_rule() ~ "." -%}
        {%- endif -%}
    {%- endfor -%}

    {%- set names = spaces | map(attribute='name') | list -%}
    {%- set repeated = [] -%}
    {%- for name in names | unique | sort -%}
        {%- if names | select('equalto', name) | list | length > 1 -%}{%- do repeated.append(name) -%}{%- endif -%}
    {%- endfor -%}
    {%- if not ns.problem and repeated -%}
        {%- set ns.problem = "vars.embed_spaces: space names must be unique; repeated: " ~ repeated | join(', ') ~ "." -%}
    {%- endif -%}
    {%- for pair in embedding_config_var(overrides, 'embed_pairs') or [] -%}
        {%- if not ns.problem -%}
            {%- set ns.problem = embedding_pair_problem(pair, loop.index0, spaces) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not ns.problem and (k_values | length) == 0 -%}
        {%- set ns.problem = "vars.eval_k_values is []; list at least one K, e.g. [1, 5, 10, 50]." -%}
    {%- endif -%}
    {%- if not ns.problem -%}
        {%- set max_k = k_values | map('int') | max -%}
        {%- set sample_size = embedding_config_var(overrides, 'eval_sample_size') | int -%}
        {%- if max_k >= sample_size -%}
            {%- set ns.problem = "vars.eval_k_values: the largest K (" ~ max_k ~ ") is not below vars.eval_sample_size ("
                ~ sample_size ~ "); a gallery of n products ranks every positive within n, so recall at K >= n is "
                ~ "1.0 whatever the model. Lower K or sample more products." -%}
        {%- endif -%}
    {%- endif -%}
    {%- if not ns.problem -%}
        {%- set ef = embedding_config_var(overrides, 'hnsw_ef_search') | int -%}
        {%- set max_k = k_values | map('int') | max -%}
        {%- if ef < max_k -%}
            {%- set ns.problem = "vars.hnsw_ef_search (" ~ ef ~ ") is below the largest K (" ~ max_k
                ~ "); an HNSW scan returns at most ef_search rows, so recall at K=" ~ max_k
                ~ " would be silently truncated. Raise hnsw_ef_search." -%}
        {%- endif -%}
    {%- endif -%}
    {%- if not ns.problem and execute -%}
        {%- set ns.problem = embedding_config_text_fields_problem(embedding_config_var(overrides, 'products_relation'), spaces) -%}
    {%- endif -%}
    {{ return(ns.problem) }}
{% endmacro %}


{#- The first problem with one pair: unknown or wrong-modality spaces, unequal
    dims, or model families that were not trained jointly (the alignment guard). -#}
{% macro embedding_pair_problem(pair, index, spaces) %}
    {%- set where = "vars.embed_pairs[" ~ index ~ "]" -%}
    {%- set by_name = {} -%}
    {%- for space in spaces -%}{%- do by_name.update({space.name: space}) -%}{%- endfor -%}
    {%- for role, modality in [('text_space', 'text'), ('image_space', 'image')] -%}
        {%- set name = pair.get(role) -%}
        {%- if name not in by_name -%}
            {{ return(where ~ "." ~ role ~ " is '" ~ name ~ "', which is not a configured space; known spaces: "
                ~ ((spaces | map(attribute='name') | join(', ')) or '(none)') ~ ".") }}
        {%- endif -%}
        {%- if by_name[name].modality != modality -%}
            {{ return(where ~ "." ~ role ~ " is '" ~ name ~ "', whose modality is " ~ by_name[name].modality
                ~ "; it must name a space of modality " ~ modality ~ ".") }}
        {%- endif -%}
    {%- endfor -%}
    {%- set text = by_name[pair.text_space] -%}
    {%- set image = by_name[pair.image_space] -%}
    {%- if text.dim | int != image.dim | int -%}
        {{ return(where ~ ": '" ~ text.name ~ "' has dim " ~ text.dim ~ " but '" ~ image.name ~ "' has dim "
            ~ image.dim ~ "; vectors of different dimensions cannot be compared.") }}
    {%- endif -%}
    {%- if text.family != image.family and not pair.get('alignment_override') -%}
        {{ return(where ~ ": pair '" ~ pair.name ~ "' retrieves across model families: '" ~ text.name
            ~ "' is '" ~ text.family ~ "' and '" ~ image.name ~ "' is '" ~ image.family ~ "'. Vectors from"
            ~ " models that were not trained jointly do not share a geometry, so their cross-modal recall"
            ~ " is meaningless. Pair spaces of one family, or set alignment_override: '<why these spaces"
            ~ " are aligned>' on the pair.") }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}


{#- text_fields are pasted as column names: each must be a column of the
    products relation (skipped while that relation does not exist yet). -#}
{% macro embedding_config_text_fields_problem(products_relation, spaces) %}
    {%- set schema, table = products_relation.split('.') -%}
    {%- set found = run_query(
        "select column_name from information_schema.columns where table_schema = "
        ~ dbt.string_literal(schema) ~ " and table_name = " ~ dbt.string_literal(table)
        ~ " order by column_name"
    ) -%}
    {%- set columns = found.columns[0].values() | list -%}
    {%- if not columns -%}{{ return('') }}{%- endif -%}
    {%- for space in spaces -%}
        {%- set space_index = loop.index0 -%}
        {%- for field in space.get('text_fields') or ['product_name', 'product_description'] -%}
            {%- if field not in columns -%}
                {{ return("vars.embed_spaces[" ~ space_index ~ "].text_fields[" ~ loop.index0 ~ "] is '"
                    ~ field ~ "', which is not a column of " ~ products_relation ~ "; its columns: "
                    ~ columns | join(', ') ~ ".") }}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}


{% macro embedding_config_var(overrides, name) %}
    {{ return(overrides[name] if name in overrides else var(name)) }}
{% endmacro %}


{% macro embedding_config_identifier(value) %}
    {{ return(value is string and modules.re.fullmatch('[a-z][a-z0-9_]*', value) is not none) }}
{% endmacro %}


{% macro embedding_config_identifier_rule() %}
    {{ return("names reach SQL, so they must match ^[a-z][a-z0-9_]*$") }}
{% endmacro %}


{% macro embedding_config_text_variants() %}
    {{ return(['raw', 'clean', 'clean_no_boilerplate']) }}
{% endmacro %}


{#- A value as embed_udfs.config.show prints it: strings quoted, the rest as Python's str. -#}
{% macro embedding_config_shown(value) %}
    {{ return("'" ~ value ~ "'" if value is string else "" ~ value) }}
{% endmacro %}


{#- An int, or the digits a Jinja var renders to, at least `minimum`; else the problem. -#}
{% macro embedding_config_integer_problem(where, value, minimum) %}
    {%- if minimum == 2 -%}{%- set expected = "it must be an integer of at least 2" -%}
    {%- elif minimum == 1 -%}{%- set expected = "it must be a positive integer" -%}
    {%- else -%}{%- set expected = "it must be a non-negative integer" -%}
    {%- endif -%}
    {%- set digits = value is string and modules.re.fullmatch('-?[0-9]+', value.strip()) is not none -%}
    {%- if not (digits or (value is integer and value is not boolean)) or (value | int) < minimum -%}
        {{ return(where ~ " is " ~ embedding_config_shown(value) ~ "; " ~ expected ~ ".") }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}


{#- vars.ann_target_recall (fct_ann_tuning, the tuned ef_search): a number in (0, 1]. -#}
{% macro embedding_config_target_recall_problem(value) %}
    {%- set where = "vars.ann_target_recall is " ~ embedding_config_shown(value) -%}
    {%- set decimal = value is string and modules.re.fullmatch('\\s*[-+]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][-+]?[0-9]+)?\\s*', value) is not none -%}
    {%- if not (decimal or (value is number and value is not boolean)) -%}
        {{ return(where ~ "; it must be a number.") }}
    {%- endif -%}
    {%- if not (0 < (value | float) <= 1) -%}
        {{ return(where ~ "; it must be a number in (0, 1], e.g. 0.99 (neighbour recall@10).") }}
    {%- endif -%}
    {{ return('') }}
{% endmacro %}
