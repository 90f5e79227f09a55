"""Code named by a routing file comes from the host's allow-list, never from the file's text
(issue 13, section 3): BATCHROUTER_ALLOWED_CHECKS (`module:function` entries, module prefixes)
and the `batchrouter.checks` entry points. Anything else is refused where the file is loaded,
with its line, before anything is imported."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from producers.submit import submit_batch
from routing.checks import CustomCheck, JsonCheck
from routing.config import ConfigError, parse_config
from tests.conftest import CHECK_FIXTURES
from tests.routing.checkfixtures import mentions
from tests.routing.checkfixtures.import_marker import MARKER_ENV
from tests.routing.test_checks_config import HEAD

MARKER_MODULE = f"{CHECK_FIXTURES}.import_marker"
DANGEROUS = ["shutil.rmtree", "shutil:rmtree", "os.system", "os:system", "subprocess:run"]


def load(check: str):  # type: ignore[no-untyped-def]
    return parse_config(HEAD + f"      - {check}\n", "rules.yaml")


def refused(check: str) -> str:
    with pytest.raises(ConfigError) as error:
        load(check)
    return str(error.value)


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The file import_marker writes when imported; the module is unloaded before and after."""
    path = tmp_path / "imported.txt"
    monkeypatch.setenv(MARKER_ENV, str(path))
    sys.modules.pop(MARKER_MODULE, None)
    yield path
    sys.modules.pop(MARKER_MODULE, None)


@pytest.mark.parametrize("name", DANGEROUS)
def test_a_custom_check_naming_library_code_is_refused_with_its_line(name: str) -> None:
    message = refused(f'{{kind: custom, function: "{name}"}}')
    assert "rules.yaml:12: task_types.tickets.checks.0.function: " in message
    assert f"{name!r} is not allowed on this host" in message
    assert "BATCHROUTER_ALLOWED_CHECKS=(empty)" in message and "nothing was imported" in message


@pytest.mark.parametrize("name", DANGEROUS)
def test_a_json_check_model_naming_library_code_is_refused_with_its_line(name: str) -> None:
    message = refused(f'{{kind: json, model: "{name}"}}')
    assert "rules.yaml:12: task_types.tickets.checks.0.model: " in message
    assert "is not allowed on this host" in message


def test_a_refused_name_is_never_imported(marker: Path, allow_checks) -> None:  # type: ignore[no-untyped-def]
    allow_checks(f"{CHECK_FIXTURES}:mentions")  # something else is allowed; not this module
    refused(f'{{kind: custom, function: "{MARKER_MODULE}:check"}}')
    assert not marker.exists() and MARKER_MODULE not in sys.modules
    # The marker works: the same file loads, and imports the module, once it is allowed.
    allow_checks(MARKER_MODULE)
    load(f'{{kind: custom, function: "{MARKER_MODULE}:check"}}')
    assert marker.exists() and MARKER_MODULE in sys.modules


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("shutil.rmtree", "'shutil.rmtree' is not allowed on this host"),
        # Issue 13, section 4: a custom check that does not import fails at submit, with its
        # line, not in a worker's log.
        (f"{CHECK_FIXTURES}.gone:check", f"module '{CHECK_FIXTURES}.gone' failed to import"),
        (f"{CHECK_FIXTURES}:gone", "has no attribute 'gone'"),
    ],
)
def test_submit_refuses_the_file_before_anything_is_registered_or_enqueued(
    use_ledger, sqlite_url: str, tmp_path: Path, allow_checkfixtures, function: str, message: str
) -> None:
    from ledger.db import session_scope
    from ledger.models import Batch

    use_ledger(sqlite_url)
    rules = tmp_path / "rules.yaml"
    rules.write_text(HEAD + f'      - {{kind: custom, function: "{function}"}}\n')
    items = tmp_path / "items.jsonl"
    items.write_text('{"text": "hello"}\n')
    with pytest.raises(ConfigError) as error:
        submit_batch(items, "tickets", config=rules)
    assert f"{rules}:12: task_types.tickets.checks.0.function: " in str(error.value)
    assert message in str(error.value)
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == 0


def test_a_module_prefix_allows_what_is_defined_under_it_only(allow_checks) -> None:  # type: ignore[no-untyped-def]
    allow_checks(CHECK_FIXTURES)
    check = load(f'{{kind: custom, function: "{CHECK_FIXTURES}:mentions"}}')
    assert check.task_type("tickets").checks[0].run  # loaded
    # Names the module merely imports are not its own: pydantic's Field, BaseModel.
    message = refused(f'{{kind: custom, function: "{CHECK_FIXTURES}:Field"}}')
    assert "is defined in module 'pydantic.fields', not under an allowed prefix" in message
    message = refused(f'{{kind: json, model: "{CHECK_FIXTURES}:BaseModel"}}')
    assert "is defined in module 'pydantic.main'" in message
    # A prefix ends at a dot: tests.routing.checkfixtures does not allow ...checkfixtures_x.
    message = refused(f'{{kind: custom, function: "{CHECK_FIXTURES}_x:f"}}')
    assert "is not allowed on this host" in message


def test_a_module_function_entry_allows_that_function_only(allow_checks) -> None:  # type: ignore[no-untyped-def]
    allow_checks(f"{CHECK_FIXTURES}:mentions", f"{CHECK_FIXTURES}:Ticket")
    load(f'{{kind: custom, function: "{CHECK_FIXTURES}.mentions"}}')  # either spelling
    load(f'{{kind: json, model: "{CHECK_FIXTURES}:Ticket"}}')
    assert "is not allowed on this host" in refused(
        f'{{kind: custom, function: "{CHECK_FIXTURES}:scored"}}'
    )


def test_private_names_cannot_be_walked_to(allow_checks) -> None:  # type: ignore[no-untyped-def]
    allow_checks(CHECK_FIXTURES)
    for name in ("mentions.__globals__", "__builtins__", "_private"):
        message = refused(f'{{kind: custom, function: "{CHECK_FIXTURES}:{name}"}}')
        assert "names starting with '_' cannot be used" in message


def test_checks_built_in_code_follow_the_same_rule(allow_checks) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="not allowed on this host"):
        CustomCheck(function="os:system")
    with pytest.raises(ValueError, match="not allowed on this host"):
        JsonCheck(model="os:system")


def test_an_entry_point_of_the_host_is_named_by_its_name(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A package installed on the host declares its checks in the `batchrouter.checks` group;
    the routing file names them, with no BATCHROUTER_ALLOWED_CHECKS at all."""
    dist = tmp_path / "acme_checks-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-checks\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[batchrouter.checks]\n"
        f"mentions_refund = {CHECK_FIXTURES}:mentions\n"
        f"ticket = {CHECK_FIXTURES}:Ticket\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = load(
        "{kind: custom, function: mentions_refund, options: {word: refund}}\n"
        "      - {kind: json, model: ticket}"
    )
    custom, json_check = config.task_type("tickets").checks
    assert custom._func is mentions
    assert json_check.output_schema()["title"] == "Ticket"
    # Other names are still refused, and the message lists what the host offers.
    assert (
        "'mentions_refnd' is neither an entry point of the 'batchrouter.checks' group on this "
        "host (it has: mentions_refund, ticket) nor a dotted path like 'package.module:name'; "
        "did you mean 'mentions_refund'?"
    ) in refused("{kind: custom, function: mentions_refnd}")


def test_reading_only_the_files_shape_imports_nothing(marker: Path) -> None:
    """Reports and `retry` read a stored file for its ladder and prices only: they load it
    without resolving its code, on hosts that may not allow (or have) that code."""
    from routing.checks import judge

    text = HEAD + f'      - {{kind: custom, function: "{MARKER_MODULE}:check"}}\n'
    text += f'      - {{kind: json, model: "{MARKER_MODULE}:Nope"}}\n'
    config = parse_config(text, "rules.yaml", resolve_code=False)
    assert config.task_type("tickets").tier_names == ["t0", "t1"]
    assert not marker.exists() and MARKER_MODULE not in sys.modules
    # Run anyway, its checks resolve under the allow-list: refused, and the checks fail.
    judgement = judge(config.task_type("tickets").checks, '{"a": 1}', "source")
    assert not judgement.passed
    assert all("is not allowed on this host" in v.reason for v in judgement.verdicts)
    assert not marker.exists() and MARKER_MODULE not in sys.modules
    # Everything else is still checked.
    with pytest.raises(ConfigError, match="unknown key 'functon'"):
        parse_config(HEAD + "      - {kind: custom, functon: x}\n", resolve_code=False)
