"""Kubernetes label selectors (the `kubectl -l` syntax), parsed and matched in memory.

    app=web, tier!=db, env in (prod,staging), release notin (canary), gpu, !legacy
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_PREFIX = r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)"
LABEL_KEY = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN = re.compile(r"\s*(!=|==|=|\(|\)|,|!|[^\s!=(),]+)")


def _selector_pattern() -> str:
    """The selector syntax as one regular expression, for the OpenAPI document: every string it
    matches, `parse` accepts (it is narrower: spaces only, prefixes of at most 3 DNS labels)."""
    label = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
    name = r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?"
    key = rf"({label}(\.{label}){{0,2}}/)?{name}"
    value = name  # a label value, non-empty
    requirement = (rf"(!\x20*{key}|{key}(\x20*(=|==|!=)\x20*({value})?"
                   rf"|\x20+(in|notin)\x20*\(\x20*{value}(\x20*,\x20*{value})*\x20*\))?)")
    return rf"^(\x20*{requirement}(\x20*,\x20*{requirement})*\x20*)?$"


SELECTOR_PATTERN = _selector_pattern()
# A label (or annotation) key as one regular expression, for the OpenAPI document (prefixes of at
# most 3 DNS labels, narrower than label_key_problem).
_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
LABEL_KEY_PATTERN = rf"^({_LABEL}(\.{_LABEL}){{0,2}}/)?[A-Za-z0-9]([-A-Za-z0-9_.]{{0,61}}[A-Za-z0-9])?$"


def label_key_problem(key: str) -> str | None:
    """Why `key` is not a valid label (or annotation) key, or None."""
    if "/" in key:
        prefix, _, name = key.partition("/")
        if not prefix or len(prefix) > 253 or not re.fullmatch(_PREFIX, prefix):
            return "the prefix must be a DNS subdomain (lowercase, at most 253 characters)"
    else:
        name = key
    if not name or len(name) > 63 or not re.fullmatch(_NAME, name):
        return "the name must be at most 63 characters of letters, digits, '-', '_' or '.', beginning and ending with a letter or digit"
    return None


def label_value_problem(value: str) -> str | None:
    if len(value) > 63 or not LABEL_VALUE.match(value):
        return "must be at most 63 characters of letters, digits, '-', '_' or '.', beginning and ending with a letter or digit (or empty)"
    return None


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # = != in notin exists !exists
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        # != and notin match objects without the label, as in Kubernetes
        return not present or labels[self.key] not in self.values


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


def parse(text: str | None) -> Selector:
    """Parse a selector; ValueError names the problem."""
    if text is None or not text.strip():
        return Selector()
    if len(text) > 4096:
        raise ValueError("the selector is longer than 4096 characters")
    tokens: list[str] = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if not match:
            raise ValueError(f"unexpected character at position {position}")
        tokens.append(match.group(1))
        position = match.end()
    requirements: list[Requirement] = []
    index = 0

    def take() -> str:
        nonlocal index
        if index >= len(tokens):
            raise ValueError("the selector ends too early")
        index += 1
        return tokens[index - 1]

    def key_of(token: str) -> str:
        problem = label_key_problem(token)
        if problem:
            raise ValueError(f"invalid label key {token!r}: {problem}")
        return token

    def value_of(token: str) -> str:
        problem = label_value_problem(token)
        if problem:
            raise ValueError(f"invalid label value {token!r}: {problem}")
        return token

    while index < len(tokens):
        token = take()
        if token == "!":
            requirements.append(Requirement(key_of(take()), "!exists"))
        else:
            key = key_of(token)
            following = tokens[index] if index < len(tokens) else ","
            if following == ",":
                requirements.append(Requirement(key, "exists"))
            elif following in ("=", "==", "!="):
                take()
                upcoming = tokens[index] if index < len(tokens) else ","
                if upcoming in ("(", ")", "!", "=", "==", "!="):
                    raise ValueError(f"expected a value after {key}{following}")
                value = "" if upcoming == "," else take()  # `key=` selects the empty value
                requirements.append(Requirement(key, "=" if following != "!=" else "!=", frozenset({value_of(value)})))
            elif following in ("in", "notin"):
                take()
                if take() != "(":
                    raise ValueError(f"expected '(' after {key} {following}")
                values: set[str] = set()
                while True:
                    item = take()
                    if item == ")":
                        break
                    if item == ",":
                        continue
                    values.add(value_of(item))
                if not values:
                    raise ValueError(f"{key} {following} () needs at least one value")
                requirements.append(Requirement(key, "in" if following == "in" else "notin", frozenset(values)))
            else:
                raise ValueError(f"unexpected {following!r} after {key!r}")
        if index < len(tokens):
            if take() != ",":
                raise ValueError("requirements must be separated by ','")
            if index >= len(tokens):
                raise ValueError("the selector ends with ','")
    return Selector(tuple(requirements))
