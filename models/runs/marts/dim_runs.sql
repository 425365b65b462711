{{ config(enabled=family_enabled('history'), materialized='incremental', unique_key='run_id', on_schema_change='append_new_columns') }}

{#- One row per dbt run that builds the metrics: who ran it (a label), on
    which revision of the project, and the configuration that decides whether
    two runs' figures are comparable, as a readable digest and its md5. The
    digest lists each space with its recipe and the model_refs its vectors
    were embedded with (read from the vectors, so new weights under the same
    name still change it), the pairs, the sample, the search, the dedup and
    label settings and the rerankers. Labels, revisions, ingest and timeout
    settings are left out: they do not change a figure. -#}

{%- set settings_lines = [] -%}
{%- set pairs = [] -%}
{%- for pair in embedding_pairs() | sort(attribute='name') -%}
    {%- do pairs.append(pair.name ~ ' = ' ~ pair.text_space ~ ' + ' ~ pair.image_space) -%}
{%- endfor -%}
{%- do settings_lines.append('pairs: ' ~ (pairs | join('; ') or 'none')) -%}
{%- for group, names in [
    ('sample', ['eval_sample_size', 'eval_seed', 'eval_k_values']),
    ('search', ['retrieval_search', 'hnsw_ef_search', 'exact_search_max_gallery']),
    ('dedup', ['eval_dedup', 'eval_section_min', 'eval_section_cap', 'dedup_text_variant',
               'near_duplicate_max_distance', 'near_duplicate_k']),
    ('text', ['text_max_words', 'text_strip_store_name']),
    ('labels', ['label_pca_dims', 'label_kmeans_seeds', 'bootstrap_replicates', 'bootstrap_seed']),
    ('rerank', ['rerank_candidates', 'rerankers']),
] -%}
    {%- set parts = [] -%}
    {%- for name in names -%}
        {%- do parts.append(name ~ ' ' ~ tojson(var(name, none))) -%}
    {%- endfor -%}
    {%- do settings_lines.append(group ~ ': ' ~ (parts | join(', '))) -%}
{%- endfor -%}
{%- set run_label = var('run_label', none) -%}
{%- set git_revision = var('git_revision', none) -%}

with

vectors as (
    select * from {{ ref('stg_embeddings__vectors') }}
),

model_refs as (
    select
        space,
        string_agg(distinct model_ref, ', ' order by model_ref) as model_refs
    from vectors
    group by space
),

spaces as (
    {%- for space in embedding_spaces() | sort(attribute='name') %}
        select
            {{ sql_string(space.name) }}::text as space,
            {{ sql_string(
                'space ' ~ space.name ~ ': ' ~ space.modality ~ ', ' ~ space.backend
                ~ ' ' ~ space.model ~ ' pretrained ' ~ tojson(space.get('pretrained'))
                ~ ', dim ' ~ space.dim
                ~ (', recipe ' ~ space.get('text_variant') ~ ' of ' ~ tojson(space.get('text_fields'))
                   ~ ', prompt ' ~ tojson(space.get('prompt')) ~ ', max_words ' ~ tojson(space.get('max_words'))
                   if space.modality == 'text' else '')
                ~ (', near duplicates' if space.get('near_duplicates') else '')
            ) }}::text as described
        {{ "union all" if not loop.last }}
    {%- endfor %}
    {%- if not embedding_spaces() %}
        {{ empty_relation({'space': 'text', 'described': 'text'}) }}
    {%- endif %}
),

space_lines as (
    select
        string_agg(
            spaces.described || ', model_ref ' || coalesce(model_refs.model_refs, 'none (no vectors)'),
            E'\n' order by spaces.space
        ) as described
    from spaces
    left join model_refs on spaces.space = model_refs.space
),

digest as (
    select
        concat_ws(
            E'\n',
            space_lines.described,
            {{ sql_string(settings_lines | join('\n')) }}
        ) as config_digest
    from space_lines
),

final as (
    select
        '{{ invocation_id }}'::text as run_id,
        '{{ run_started_at }}'::timestamptz as run_started_at,
        {{ sql_string(run_label) }}::text as run_label,
        {{ sql_string(git_revision) }}::text as git_revision,
        md5(digest.config_digest) as config_hash,
        digest.config_digest
    from digest
)

select * from final
