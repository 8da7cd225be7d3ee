"""A griffe extension for the API reference: neurodyn's docstrings title their doctests
``Example:`` (singular), which the Google-style parser reads as an admonition; renaming the
title to ``Examples:`` makes them an examples section, rendered as highlighted code."""

import re

import griffe

_TITLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _TITLE.sub(r"\1Examples:", obj.docstring.value)
