"""Which dbt nodes a refresh builds before each job and in its final build, so that
every model is built at most once per refresh: a job's inputs are built only where an
earlier build has not made them already, and the final build makes only the rest (and
runs every test), except models downstream of a table that a job wrote since they
were built, which the final build makes again from the new rows."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from embed_udfs import contract
from embed_udfs.errors import EmbedUdfsError

# What `dbt build` makes (tests and unit tests are run, not built).
BUILT_TYPES = ("model", "seed", "snapshot")


@dataclass(frozen=True)
class DbtGraph:
    """The project's DAG as the manifest states it: parents of every node, the name
    of every buildable node, and the source node of each (schema, table)."""

    parents: Mapping[str, tuple[str, ...]]
    names: Mapping[str, str]  # unique_id -> name, for BUILT_TYPES only
    sources: Mapping[tuple[str, str], str]  # (schema, identifier) -> source unique_id

    @classmethod
    def load(cls, project_dir: Path) -> DbtGraph:
        """Read target/manifest.json, which every dbt invocation writes."""
        path = project_dir / "target" / "manifest.json"
        if not path.is_file():
            raise EmbedUdfsError(
                f"{path} is missing; every dbt invocation writes it. Run `dbt parse` in the "
                "project, then the refresh again."
            )
        manifest = json.loads(path.read_text())
        parents = {node: tuple(ups) for node, ups in manifest["parent_map"].items()}
        names = {
            node_id: node["name"]
            for node_id, node in manifest["nodes"].items()
            if node["resource_type"] in BUILT_TYPES
        }
        sources = {
            (source["schema"], source.get("identifier") or source["name"]): source_id
            for source_id, source in manifest["sources"].items()
        }
        return cls(parents, names, sources)

    def model(self, name: str) -> str:
        for node_id, node_name in self.names.items():
            if node_name == name and node_id.startswith("model."):
                return node_id
        raise EmbedUdfsError(f"dbt has no model {name!r}; run `dbt parse` and look for it.")

    def ancestors(self, node: str) -> set[str]:
        """The node and everything upstream of it."""
        seen, stack = {node}, [node]
        while stack:
            for parent in self.parents.get(stack.pop(), ()):
                if parent not in seen:
                    seen.add(parent)
                    stack.append(parent)
        return seen

    def descendants(self, nodes: Iterable[str]) -> set[str]:
        """Everything downstream of the nodes (not the nodes themselves)."""
        children: dict[str, list[str]] = {}
        for node, ups in self.parents.items():
            for parent in ups:
                children.setdefault(parent, []).append(node)
        seen: set[str] = set()
        stack = list(nodes)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def buildable(self, nodes: Iterable[str]) -> set[str]:
        return {node for node in nodes if node in self.names}

    def select(self, nodes: Iterable[str]) -> list[str]:
        """dbt --select arguments naming exactly these nodes."""
        return sorted(self.names[node] for node in nodes)


@dataclass
class BuildPlan:
    """What this refresh has built so far, and what each build still has to make."""

    graph: DbtGraph
    built: set[str] = field(default_factory=set)

    def inputs_of(self, *reads: contract.Relation) -> list[str]:
        """The models and seeds a job reading `reads` needs that no build has made yet
        (empty: the job's inputs are there already)."""
        wanted: set[str] = set()
        for relation in reads:
            wanted |= self.graph.buildable(self.graph.ancestors(self.graph.model(relation.name)))
        return self.graph.select(wanted - self.built)

    def mark_built(self, names: Iterable[str]) -> None:
        by_name = {name: node for node, name in self.graph.names.items()}
        self.built.update(by_name[name] for name in names)

    def unmark(self, names: Iterable[str]) -> None:
        """Build these again in the final build (e.g. the carried history)."""
        wanted = set(names)
        self.built = {node for node in self.built if self.graph.names[node] not in wanted}

    def wrote(self, relation: contract.Relation) -> None:
        """A job wrote `relation`: what was built from it is stale now."""
        source = self.graph.sources.get((relation.schema, relation.name))
        if source is not None:
            self.built -= self.graph.descendants([source])

    def final_selection(self) -> list[str] | None:
        """--select for the final build: every test and unit test, and the nodes not
        built yet; None when nothing was built before (a plain `dbt build`)."""
        if not self.built:
            return None
        rest = set(self.graph.names) - self.built
        return ["resource_type:test", "resource_type:unit_test", *self.graph.select(rest)]
