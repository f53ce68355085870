"""A dataset's label names -> the class names of data.classes, by name, never by position."""
from __future__ import annotations

from a3lign_dfer.errors import ConfigError


class ClassMap:
    """Maps each label name a dataset uses to one class of data.classes, case-insensitively.

    `names` is the dataset's explicit map {label: other names it may have in data.classes}.
    Two labels that land on one class, or a label matching two classes, is an error; so is
    (with require_all) a class of data.classes that no label of the dataset maps to.
    """

    def __init__(self, dataset: str, names: dict[str, tuple[str, ...]], classes: tuple[str, ...],
                 require_all: bool = True) -> None:
        self.dataset, self.classes = dataset, tuple(classes)
        self.labels = tuple(names)
        lower = {c.lower(): c for c in classes}
        self._to_class: dict[str, str] = {}
        for label, accepted in names.items():
            hits = list(dict.fromkeys(lower[a.lower()] for a in (label, *accepted) if a.lower() in lower))
            if len(hits) > 1:
                raise ConfigError(f"{dataset} label {label!r} matches several classes of data.classes: {hits}")
            if hits:
                if hits[0] in self._to_class.values():
                    other = next(k for k, v in self._to_class.items() if v == hits[0])
                    raise ConfigError(f"{dataset} labels {other!r} and {label!r} both map to class {hits[0]!r}")
                self._to_class[label.lower()] = hits[0]
        unmapped = [c for c in classes if c not in self._to_class.values()]
        if require_all and unmapped:
            raise ConfigError(f"data.classes has {unmapped}, which {dataset} has no label for (its labels: "
                             f"{list(self.labels)}); set data.classes to the dataset's classes")

    def resolve(self, label: str) -> str | None:
        """The class name of a dataset label, None if it is not in data.classes."""
        return self._to_class.get(str(label).strip().lower())

    def unknown_reason(self, label: str) -> str:
        return (f"unknown label {label!r}: not one of the {self.dataset} labels {list(self.labels)} "
                f"that map to data.classes {list(self.classes)}")
