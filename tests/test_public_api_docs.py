"""Every public name of ``redimnet`` documents its arguments and results (Args / Returns sections)."""

import inspect

import pytest

import redimnet


def _public_callables():
    for name in redimnet.__all__:
        if name == "__version__":
            continue
        value = getattr(redimnet, name)
        if inspect.isclass(value) and issubclass(value, BaseException):
            continue  # errors: their docstring says when they are raised
        if inspect.isclass(value) or inspect.isfunction(value):
            yield name, value


PUBLIC = sorted(_public_callables())


def _parameters(value):
    """Names of the arguments a caller passes (``**name`` for keyword catch-alls)."""
    signature = inspect.signature(value.__init__ if inspect.isclass(value) else value)
    shown = []
    for name, parameter in signature.parameters.items():
        if name in ("self", "cls"):
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            name = f"**{name}"
        elif parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            name = f"*{name}"
        shown.append(name)
    return shown


def test_the_public_api_is_found():
    names = [name for name, _ in PUBLIC]
    assert {"build", "load", "Embedder", "ReDimNet", "read_audio"} <= set(names)


@pytest.mark.parametrize("name, value", PUBLIC, ids=[name for name, _ in PUBLIC])
def test_public_name_has_argument_sections(name, value):
    doc = inspect.getdoc(value) or ""
    assert doc.strip(), f"redimnet.{name} has no docstring"
    parameters = _parameters(value)
    if parameters:
        assert "\nArgs:\n" in doc, f"redimnet.{name} takes {parameters} but its docstring has no Args: section"
        section = "\n" + doc.split("\nArgs:\n", 1)[1]
        for parameter in parameters:
            assert f"\n    {parameter}:" in section, f"redimnet.{name}: {parameter!r} is not described under Args:"
    if inspect.isfunction(value):
        returns = inspect.signature(value).return_annotation
        if returns not in (None, "None"):
            assert "\nReturns:\n" in doc, f"redimnet.{name} returns a value but its docstring has no Returns: section"
